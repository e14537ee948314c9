"""wpa_supplicant's control interface, spoken directly over its unix datagram socket.

pywifi can list interfaces and start a scan, but it reduces the scan flags to
a few substrings: open, WEP and WPA3-SAE networks all come back with no AKM
at all. So mamoru speaks the text protocol itself (as ``wpa_cli`` does):
``PING``/``PONG``, ``SCAN``, ``SCAN_RESULTS``, ``BSS`` (whose ``ie=`` field
carries the raw elements, decoded here exactly as in a capture) and
``STATUS`` for the network this machine is connected to. Only read-only
commands are sent; nothing that reveals a stored passphrase is ever asked.
An unexpected reply is described, never quoted (only a protocol word such as
``FAIL`` is shown): whatever a daemon sends must not reach a report verbatim.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import stat
import string
import tempfile
import time
from typing import Any

from collectors.wifi import ie
from collectors.wifi.frames import network_from_elements

REPLY_MAX = 65536
MAX_BSS = 2000


class CtrlError(Exception):
    """The control socket is gone, silent, or answered something that is not the protocol."""


class WpaCtrl:
    """One client connection to one interface's control socket."""

    def __init__(self, path: str, *, timeout: float = 3.0) -> None:
        self.path = path
        self.timeout = timeout
        self._dir = tempfile.mkdtemp(prefix="mamoru-wpa-")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            # The daemon answers to the client's own address, so the client must bind one.
            self._sock.bind(os.path.join(self._dir, "client"))
            self._sock.connect(path)
        except OSError as e:
            self.close()
            raise CtrlError(f"{path}: {e.strerror or e}") from e

    def request(self, command: str, *, timeout: float | None = None) -> str:
        """Send one command and return its reply; unsolicited ``<N>EVENT`` messages are skipped."""
        try:
            self._sock.send(command.encode("ascii"))
        except OSError as e:
            raise CtrlError(f"{self.path}: {e.strerror or e}") from e
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._recv(deadline)
            if reply is None:
                raise CtrlError(f"{self.path}: no reply to {command.split()[0]} within {timeout or self.timeout:g} s")
            if not _is_event(reply):
                return reply

    def wait_event(self, names: tuple[str, ...], timeout: float) -> str | None:
        """After ATTACH: wait for the first event whose name is in ``names``."""
        deadline = time.monotonic() + timeout
        while True:
            reply = self._recv(deadline)
            if reply is None:
                return None
            if _is_event(reply) and any(n in reply for n in names):
                return reply

    def _recv(self, deadline: float) -> str | None:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        self._sock.settimeout(left)
        try:
            data = self._sock.recv(REPLY_MAX)
        except TimeoutError:
            return None
        except OSError as e:
            raise CtrlError(f"{self.path}: {e.strerror or e}") from e
        return data.decode("utf-8", "replace")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> WpaCtrl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_PROTOCOL_WORD = re.compile(r"[A-Z][A-Z0-9_-]{0,31}( [A-Z][A-Z0-9_-]{0,31})?")


def describe_reply(reply: str) -> str:
    """A reply for a message: a protocol word (``FAIL``, ``UNKNOWN COMMAND``) as is, anything else by size."""
    text = reply.strip()
    if _PROTOCOL_WORD.fullmatch(text):
        return repr(text)
    return f"an unexpected reply of {len(reply.encode('utf-8', 'surrogateescape'))} bytes (not shown)"


def _is_event(reply: str) -> bool:
    return len(reply) > 2 and reply[0] == "<" and reply[1].isdigit()


def control_sockets(dirs: tuple[str, ...], interface: str | None) -> list[str]:
    """Per-interface control sockets in the usual directories (``p2p-dev-*`` helpers are skipped)."""
    found: list[str] = []
    seen: set[str] = set()
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for name in names:
            if name.startswith("p2p-dev-") or (interface and name != interface) or name in seen:
                continue
            path = os.path.join(d, name)
            try:
                if stat.S_ISSOCK(os.stat(path).st_mode):
                    found.append(path)
                    seen.add(name)
            except OSError:
                continue
    return found


# --- decoding -----------------------------------------------------------------------------------

#: \\ \" \n \r \t \e as printf_encode writes them.
_SIMPLE_ESCAPES = {0x5C: 0x5C, 0x22: 0x22, 0x6E: 0x0A, 0x72: 0x0D, 0x74: 0x09, 0x65: 0x1B}


def printf_decode(text: str) -> bytes:
    """Undo wpa_supplicant's printf_encode: SSIDs come back as the exact bytes the AP sent."""
    out = bytearray()
    raw = text.encode("utf-8", "surrogateescape")
    i = 0
    while i < len(raw):
        c = raw[i]
        if c != 0x5C or i + 1 >= len(raw):
            out.append(c)
            i += 1
            continue
        nxt = raw[i + 1]
        if nxt in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[nxt])
            i += 2
        elif nxt == 0x78:
            k = 0
            while k < 2 and i + 2 + k < len(raw) and chr(raw[i + 2 + k]) in string.hexdigits:
                k += 1
            if k:
                out.append(int(raw[i + 2:i + 2 + k], 16))
                i += 2 + k
            else:
                out.append(c)
                i += 1
        elif 0x30 <= nxt <= 0x37:
            j = i + 1
            while j < len(raw) and j < i + 4 and 0x30 <= raw[j] <= 0x37:
                j += 1
            out.append(int(raw[i + 1:j], 8) & 0xFF)
            i = j
        else:
            out.append(c)
            i += 1
    return bytes(out)


FLAG_AKM = {
    "EAP": "802.1X", "PSK": "PSK", "None": "NONE", "SAE": "SAE", "FT/EAP": "FT-802.1X", "FT/PSK": "FT-PSK",
    "FT/SAE": "FT-SAE", "EAP-SHA256": "802.1X-SHA256", "PSK-SHA256": "PSK-SHA256",
    "EAP-SUITE-B": "802.1X-SUITE-B", "EAP-SUITE-B-192": "802.1X-SUITE-B-192", "FILS-SHA256": "FILS-SHA256",
    "FILS-SHA384": "FILS-SHA384", "FT-FILS-SHA256": "FT-FILS-SHA256", "FT-FILS-SHA384": "FT-FILS-SHA384",
    "OWE": "OWE", "DPP": "DPP", "OSEN": "OSEN", "SAE-EXT-KEY": "SAE-EXT-KEY", "FT-SAE-EXT-KEY": "FT-SAE-EXT-KEY",
    "EAP-SHA384": "802.1X-SHA384", "FT/EAP-SHA384": "FT-802.1X-SHA384", "PASN": "PASN",
}
FLAG_CIPHERS = {"CCMP-256", "GCMP-256", "CCMP", "GCMP", "TKIP", "WEP104", "WEP40", "NONE"}
CIPHER_NAMES = {"WEP104": "WEP-104", "WEP40": "WEP-40", "GCMP": "GCMP-128"}
_FLAG = re.compile(r"\[([^\]]*)\]")


def _ie_flag(rest: str) -> dict[str, Any] | None:
    """'PSK+SAE-CCMP' (the part after 'WPA2-') -> suites; None when wpa_supplicant printed '?'."""
    rest = rest.removesuffix("-preauth")
    if rest == "?":
        return None
    ciphers: list[str] = []
    for cut in range(len(rest)):
        if rest[cut] != "-":
            continue
        tail = rest[cut + 1:].split("+")
        if tail and all(t in FLAG_CIPHERS for t in tail):
            ciphers = [CIPHER_NAMES.get(t, t) for t in tail]
            rest = rest[:cut]
            break
    akms = [FLAG_AKM.get(a, a) for a in rest.split("+") if a]
    return ie.suites(akm=akms, pairwise=ciphers, group=None)


def parse_flags(flags: str) -> dict[str, Any]:
    """``[WPA-PSK-TKIP][WPA2-PSK+SAE-CCMP][ESS]`` -> privacy, rsn, wpa, owe_transition, mesh."""
    out: dict[str, Any] = {"privacy": False, "rsn": None, "wpa": None, "owe_transition": False, "mesh": False,
                           "unparsed": False}
    for item in _FLAG.findall(flags):
        proto, _, rest = item.partition("-")
        if proto == "WPA" and rest:
            out["wpa"] = _ie_flag(rest)
            out["privacy"] = True
            out["unparsed"] |= out["wpa"] is None
        elif proto in ("WPA2", "RSN") and rest and not rest.startswith("TRANS"):
            out["rsn"] = _ie_flag(rest)
            out["privacy"] = True
            out["unparsed"] |= out["rsn"] is None
        elif item == "WEP":
            out["privacy"] = True
        elif item.startswith("OWE-TRANS"):
            out["owe_transition"] = True
        elif item == "MESH":
            out["mesh"] = True
    return out


def parse_scan_results(text: str) -> list[dict[str, Any]]:
    """``SCAN_RESULTS``: header line, then bssid TAB freq TAB level TAB flags TAB ssid."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("bssid"):
        raise CtrlError(f"SCAN_RESULTS reply is not a scan table: {describe_reply(text)}")
    nets = []
    for line in lines[1:]:
        parts = line.split("\t", 4)
        if len(parts) < 4:
            continue
        bssid, freq, level, flags = parts[:4]
        ssid = printf_decode(parts[4]) if len(parts) > 4 else b""
        parsed = parse_flags(flags)
        anomalies = ["scanner could not parse a security element"] if parsed.pop("unparsed") else []
        rec = ie.network(bssid=bssid.lower(), ssid=ssid, privacy=parsed.pop("privacy"), rsn=parsed.pop("rsn"),
                         wpa=parsed.pop("wpa"), flags=flags, frequency=_int(freq), signal=_int(level),
                         anomalies=anomalies, **parsed)
        if anomalies:
            rec["security"] = "unknown"
        nets.append(rec)
    return nets


def parse_kv(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key] = value
    return out


def network_from_bss(kv: dict[str, str]) -> dict[str, Any] | None:
    """A ``BSS`` reply with its raw elements, decoded like a captured beacon; None if it carries none."""
    try:
        bssid = bytes.fromhex(kv["bssid"].replace(":", ""))
        cap = int(kv.get("capabilities", "0"), 16)
        elements = bytes.fromhex(kv["ie"])
    except (KeyError, ValueError):
        return None
    if len(bssid) != 6:
        return None
    rec = network_from_elements(bssid, cap, elements)
    if rec is None:
        return None
    rec["flags"] = kv.get("flags", "")
    rec["frequency"] = _int(kv.get("freq", ""))
    rec["signal"] = _int(kv.get("level", ""))
    return rec


KEY_MGMT_LABEL = [
    ("IEEE 802.1X (no WPA)", "wep"), ("WPA/", "wpa"), ("WPA-", "wpa"), ("SAE", "wpa3"), ("DPP", "wpa3"),
    ("OWE", "owe"),
    ("PSK", "wpa2"), ("EAP", "enterprise"), ("FILS", "enterprise"), ("OSEN", "enterprise"),
]


def connection_from_status(kv: dict[str, str], interface: str) -> dict[str, Any] | None:
    """The network this interface is associated with (wpa_state COMPLETED), from ``STATUS``."""
    if kv.get("wpa_state") != "COMPLETED":
        return None
    key_mgmt = kv.get("key_mgmt", "")
    pairwise = CIPHER_NAMES.get(kv.get("pairwise_cipher", ""), kv.get("pairwise_cipher", ""))
    group = CIPHER_NAMES.get(kv.get("group_cipher", ""), kv.get("group_cipher", ""))
    if key_mgmt == "NONE":
        label = "wep" if group.startswith("WEP") else "open"
    else:
        label = next((lab for prefix, lab in KEY_MGMT_LABEL if prefix in key_mgmt), "unknown")
    return {"interface": interface, "bssid": kv.get("bssid", "").lower() or None,
            **ie.ssid_fields(printf_decode(kv.get("ssid", ""))), "key_mgmt": key_mgmt, "pairwise": [pairwise],
            "group": group, "security": label, "source": "wpa_supplicant"}


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


def survey(path: str, *, trigger: bool = True, scan_timeout: float = 10.0) -> dict[str, Any]:
    """Networks seen by one interface, with the most exact data the daemon gives, and its connection."""
    interface = os.path.basename(path)
    notes: list[str] = []
    with WpaCtrl(path) as ctrl:
        if ctrl.request("PING").strip() != "PONG":
            raise CtrlError(f"{path}: did not answer PING with PONG")
        if trigger:
            attached = ctrl.request("ATTACH").strip() == "OK"
            answer = ctrl.request("SCAN").strip()
            if answer not in ("OK", "FAIL-BUSY"):
                notes.append(f"SCAN answered {describe_reply(answer)}; using the results already cached")
            elif attached and ctrl.wait_event(("CTRL-EVENT-SCAN-RESULTS", "CTRL-EVENT-SCAN-FAILED"),
                                              scan_timeout) is None:
                notes.append(f"no scan finished within {scan_timeout:g} s; using the results already cached")
            if attached:
                ctrl.request("DETACH")
        listed = parse_scan_results(ctrl.request("SCAN_RESULTS"))
        exact: dict[str, dict[str, Any]] = {}
        reply = ctrl.request("BSS FIRST")
        for _ in range(MAX_BSS):
            kv = parse_kv(reply)
            if "id" not in kv or "bssid" not in kv:
                break
            rec = network_from_bss(kv)
            if rec is not None:
                exact[rec["bssid"]] = rec
            reply = ctrl.request(f"BSS NEXT-{kv['id']}")
        status = parse_kv(ctrl.request("STATUS"))
    networks = [exact.get(n["bssid"], n) for n in listed]
    networks += [n for b, n in exact.items() if b not in {x["bssid"] for x in listed}]
    return {"interface": interface, "networks": networks, "connected": connection_from_status(status, interface),
            "exact": len(exact), "notes": notes}
