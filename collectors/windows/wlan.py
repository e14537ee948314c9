"""The Wi-Fi networks a Windows PC has saved, from the WLAN AutoConfig profile files of an offline image.

``ProgramData/Microsoft/Wlansvc/Profiles/Interfaces/<adapter GUID>/<profile GUID>.xml`` is one ``WLANProfile``
per saved network: its SSID, whether Windows joins it by itself, and ``MSM/security/authEncryption``
(authentication and encryption). The pre-shared key (``sharedKey/keyMaterial``) is in the same file: it is never
read into the facts, and the raw file is never kept. XML with a DTD or an entity declaration is refused before
parsing (what defusedxml's ``forbid_dtd`` does), so no entity expansion or external fetch can happen.
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
from collectors.windows.text import decode_text

PROFILES = ("ProgramData", "Microsoft", "Wlansvc", "Profiles", "Interfaces")
MAX_PROFILE_BYTES = 256 * 1024
MAX_PROFILES = 500
_PROLOG = re.compile(r"^\s*<\?xml[^>]*\?>")
_FORBIDDEN = re.compile(r"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


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


class WlanProfilesCollector(Collector):
    """Every saved Wi-Fi profile in the image, per adapter; a file that cannot be read or parsed is kept as an
    error beside the others, so a judge never passes over it."""

    id = "win_wifi_profiles"
    platforms: ClassVar[frozenset[str]] = frozenset({"windows"})

    def collect(self, target: Target) -> Facts:
        out: dict[str, Any] = {"folder": None, "profiles": [], "problems": [], "live": target.kind != "rootfs"}
        if target.kind != "rootfs":
            # Live, WLAN AutoConfig answers (netsh wlan / WlanGetProfile); not read by this collector yet.
            out["problems"].append({"path": None, "error": "saved Wi-Fi profiles are read from an image only"})
            return out
        try:
            folder = find_ci(target, PROFILES)
        except RegistryError as e:
            out["problems"].append({"path": "/".join(PROFILES), "error": str(e)})
            return out
        out["folder"] = folder
        if folder is None:
            return out  # WLAN AutoConfig never saved a profile (no Wi-Fi adapter ever used)
        try:
            adapters = sorted(target.list_dir(folder))
        except TargetError as e:
            out["problems"].append({"path": folder, "error": str(e)})
            return out
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
                    return out
                try:
                    profile = parse_profile(target.read_file(path, max_bytes=MAX_PROFILE_BYTES))
                except (TargetError, ValueError) as e:
                    out["problems"].append({"path": path, "error": str(e)})
                    continue
                out["profiles"].append({"path": path, "adapter": adapter, **profile})
        return out


WIFI_PROFILES = WlanProfilesCollector()
