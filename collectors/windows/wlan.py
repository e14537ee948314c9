"""The Wi-Fi networks a Windows PC has saved (WLAN AutoConfig's profile files), and the one it is on now.

``ProgramData/Microsoft/Wlansvc/Profiles/Interfaces/<adapter GUID>/<profile GUID>.xml`` is one ``WLANProfile``
per saved network: its SSID, whether Windows joins it by itself, and ``MSM/security/authEncryption``
(authentication and encryption). The pre-shared key (``sharedKey/keyMaterial``) is in the same file: it is never
read into the facts, and the raw file is never kept. XML with a DTD or an entity declaration is refused before
parsing (what defusedxml's ``forbid_dtd`` does), so no entity expansion or external fetch can happen.

The files are read through the target: in an image, on the PC, or over SSH (the target maps the path,
``agent/targets/windows_paths.py``). On a running PC, the ``wlancurrent`` part of the PowerShell batch tells
which network each Wi-Fi adapter is connected to NOW (``Get-NetAdapter``: NdisPhysicalMedium 9 is
Native 802.11, its InterfaceGuid names the profiles' folder; ``Get-NetConnectionProfile``: the network on
each interface), never ``netsh wlan show interfaces`` (prose in the PC's language). TX-01 then holds the
connected network's profile against the policy too.
"""

from __future__ import annotations

import posixpath
import re
import xml.etree.ElementTree as ET
from typing import Any, ClassVar, TypedDict

from agent.targets.base import Target, TargetError
from agent.targets.registry import RegistryError
from agent.targets.registry_offline import find_ci
from collectors.base import Collector, Facts
from collectors.windows.live import live_part
from collectors.windows.text import decode_text

PROFILES = ("ProgramData", "Microsoft", "Wlansvc", "Profiles", "Interfaces")
MAX_PROFILE_BYTES = 256 * 1024
MAX_PROFILES = 500
_PROLOG = re.compile(r"^\s*<\?xml[^>]*\?>")
_FORBIDDEN = re.compile(r"<!(DOCTYPE|ENTITY)", re.IGNORECASE)
#: NDIS_PHYSICAL_MEDIUM of Wi-Fi adapters: 9 NdisPhysicalMediumNative802_11 (what WLAN AutoConfig drives), 1
#: NdisPhysicalMediumWirelessLan (older 802.11 miniports). 14 is Ethernet (802.3).
WIFI_MEDIA = frozenset({1, 9})
CURRENT_PART = "wlancurrent"


class WlanProfile(TypedDict):
    name: str | None
    ssid: str | None
    ssid_hex: str | None
    connection_type: str | None  # ESS (infrastructure) or IBSS (ad hoc)
    connection_mode: str | None  # auto: Windows joins it whenever it is in range
    authentication: str | None  # open, shared, WPA, WPAPSK, WPA2, WPA2PSK, WPA3SAE, WPA3ENT192, OWE...
    encryption: str | None  # none, WEP, TKIP, AES, GCMP, GCMP256
    one_x: bool | None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element | None, *path: str) -> ET.Element | None:
    for name in path:
        if el is None:
            return None
        el = next((c for c in el if _local(c.tag) == name), None)
    return el


def _text(el: ET.Element | None, *path: str) -> str | None:
    found = _child(el, *path)
    return found.text.strip() if found is not None and found.text is not None else None


def safe_xml(raw: bytes) -> ET.Element:
    """The root element of a Windows XML file (UTF-8 or UTF-16); ValueError for a DTD, entities or non-XML."""
    text = _PROLOG.sub("", decode_text(raw), count=1)
    if _FORBIDDEN.search(text):
        raise ValueError("XML declares a DTD or entities")
    try:
        return ET.fromstring(text)  # noqa: S314 - DTDs and entities are refused above
    except ET.ParseError as e:
        raise ValueError(f"not XML ({e})") from e


def parse_profile(raw: bytes) -> WlanProfile:
    """One ``WLANProfile`` document; ValueError when it is not one (or carries a DTD)."""
    root = safe_xml(raw)
    if _local(root.tag) != "WLANProfile":
        raise ValueError(f"root element is {_local(root.tag)[:40]!r}, not WLANProfile")
    ssid = _child(root, "SSIDConfig", "SSID")
    ssid_hex = _text(ssid, "hex")
    if ssid_hex is not None and not re.fullmatch(r"(?:[0-9A-Fa-f]{2}){1,32}", ssid_hex):
        raise ValueError("SSID hex is not 1..32 bytes of hex")
    auth = _child(root, "MSM", "security", "authEncryption")
    one_x = _text(auth, "useOneX")
    return WlanProfile(name=_text(root, "name"), ssid=_text(ssid, "name"),
                       ssid_hex=ssid_hex.upper() if ssid_hex else None,
                       connection_type=_text(root, "connectionType"), connection_mode=_text(root, "connectionMode"),
                       authentication=_text(auth, "authentication"), encryption=_text(auth, "encryption"),
                       one_x=None if one_x is None else one_x.lower() == "true")


def _str(row: dict[str, Any], key: str, where: str) -> str:
    v = row.get(key)
    if not isinstance(v, str):
        raise ValueError(f"{where}: {key} missing or not text")
    return v


def _opt(row: dict[str, Any], key: str) -> str | None:
    v = row.get(key)
    return v if isinstance(v, str) else None


def _index(row: dict[str, Any], where: str) -> int:
    v = row.get("InterfaceIndex")
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ValueError(f"{where}: InterfaceIndex missing or not a number")
    return v


def parse_current(value: Any) -> dict[str, Any]:
    """The Wi-Fi adapters and the networks they are connected to now, from the ``wlancurrent`` part's answer;
    ValueError when it has not that shape (then nothing of it is trusted)."""
    if not isinstance(value, dict):
        raise ValueError("the answer is not an object")
    adapters, connections = value.get("adapters"), value.get("connections")
    if not isinstance(adapters, list) or not isinstance(connections, list):
        raise ValueError("the answer has no 'adapters' and 'connections' lists")
    wifi: dict[int, dict[str, Any]] = {}
    for i, a in enumerate(adapters):
        where = f"adapters[{i}]"
        if not isinstance(a, dict):
            raise ValueError(f"{where}: not an object")
        medium = a.get("NdisPhysicalMedium")
        if not isinstance(medium, int) or isinstance(medium, bool):
            raise ValueError(f"{where}: NdisPhysicalMedium missing or not a number")
        index, guid = _index(a, where), _str(a, "InterfaceGuid", where)
        name, status = _str(a, "Name", where), _str(a, "Status", where)
        if medium in WIFI_MEDIA:
            wifi[index] = {"name": name, "guid": guid, "status": status, "index": index,
                           "media": _opt(a, "PhysicalMediaType")}
    connected = []
    for i, c in enumerate(connections):
        where = f"connections[{i}]"
        if not isinstance(c, dict):
            raise ValueError(f"{where}: not an object")
        index, network = _index(c, where), _str(c, "Name", where)
        if index in wifi:
            connected.append({"network": network, "adapter": wifi[index]["name"],
                              "adapter_guid": wifi[index]["guid"], "interface": _opt(c, "InterfaceAlias"),
                              "category": _opt(c, "NetworkCategory")})
    return {"wifi_adapters": list(wifi.values()), "connected": connected}


def current_wifi(target: Target) -> dict[str, Any]:
    """Facts of the Wi-Fi association now: live, or why not (offline image, part error, garbage)."""
    value, err, via = live_part(target, CURRENT_PART)
    out: dict[str, Any] = {"live": via is not None, "via": via, "error": err, "wifi_adapters": [], "connected": []}
    if via is None:
        out["error"] = {"kind": "offline", "message": "the current Wi-Fi association needs a running PC"}
    elif err is None:
        try:
            out.update(parse_current(value))
        except ValueError as e:
            out["error"] = {"kind": "garbage", "message": f"PowerShell part {CURRENT_PART!r}: {e}"}
    return out


class WlanProfilesCollector(Collector):
    """Every saved Wi-Fi profile, per adapter; a file that cannot be read or parsed is kept as an error beside
    the others, so a judge never passes over it. Live, also the network each Wi-Fi adapter is on now."""

    id = "win_wifi_profiles"
    version = "2"  # 2: read live too; the current association ("current")
    platforms: ClassVar[frozenset[str]] = frozenset({"windows"})
    timeout: ClassVar[float] = 90.0  # live: waits for the scan's one PowerShell batch

    def announce(self, target: Target) -> None:
        try:
            target.powershell().want((CURRENT_PART,))
        except TargetError:
            return

    def collect(self, target: Target) -> Facts:
        out: dict[str, Any] = {"folder": None, "profiles": [], "problems": [], "live": target.kind != "rootfs"}
        out["current"] = current_wifi(target)
        self._profiles(target, out)
        return out

    @staticmethod
    def _profiles(target: Target, out: dict[str, Any]) -> None:
        try:
            folder = find_ci(target, PROFILES)
        except RegistryError as e:
            out["problems"].append({"path": "/".join(PROFILES), "error": str(e)})
            return
        out["folder"] = folder
        if folder is None:
            return  # WLAN AutoConfig never saved a profile (no Wi-Fi adapter ever used)
        try:
            adapters = sorted(target.list_dir(folder))
        except TargetError as e:
            out["problems"].append({"path": folder, "error": str(e)})
            return
        for adapter in adapters:
            here = posixpath.join(folder, adapter)
            try:
                names = sorted(target.list_dir(here))
            except TargetError as e:
                out["problems"].append({"path": here, "error": str(e)})
                continue
            for name in names:
                if not name.lower().endswith(".xml"):
                    continue
                path = posixpath.join(here, name)
                if len(out["profiles"]) >= MAX_PROFILES:
                    out["problems"].append({"path": path, "error": f"more than {MAX_PROFILES} profiles"})
                    return
                try:
                    profile = parse_profile(target.read_file(path, max_bytes=MAX_PROFILE_BYTES))
                except (TargetError, ValueError) as e:
                    out["problems"].append({"path": path, "error": str(e)})
                    continue
                out["profiles"].append({"path": path, "adapter": adapter, **profile})


WIFI_PROFILES = WlanProfilesCollector()
