"""Windows: ``netsh wlan show networks mode=bssid``, read without knowing the display language.

The labels are translated (Authentication, Authentifizierung, Autenticación,
Verificatie, 認証 …) and even misspelt in some builds ("BSSIDD"), so fields
are found by position and shape instead: a block starts at ``SSID n : name``;
its first three ``label : value`` lines are always network type,
authentication and encryption; a line whose value is a MAC address starts a
BSSID; inside it, the value ending in ``%`` is the signal. The values that
decide security (``WPA2-Personal``, ``CCMP`` …) are technical tokens that
Windows does not translate; anything else there is treated as "none".
"""

from __future__ import annotations

import re
from typing import Any

from collectors.wifi import ie

_SSID = re.compile(r"^SSID\s+\d+\s*:\s?(.*)$")
_KV = re.compile(r"^(\s+)([^:]+?)\s*:\s?(.*)$")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
COMMAND = ("netsh", "wlan", "show", "networks", "mode=bssid")

CIPHER_TOKENS = {"CCMP": "CCMP", "TKIP": "TKIP", "WEP": "WEP-104", "GCMP": "GCMP-128", "GCMP-256": "GCMP-256",
                 "CCMP-256": "CCMP-256"}


def decode(raw: bytes) -> str:
    """netsh writes in the console code page; UTF-8 first, then the OEM page on Windows, else Latin-1."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("oem")
    except (LookupError, UnicodeDecodeError):
        return raw.decode("latin-1")


def _security(auth: str, enc: str) -> tuple[bool, dict[str, Any] | None, dict[str, Any] | None, bool]:
    """(privacy, rsn, wpa, understood) from the Authentication and Encryption values."""
    a = auth.upper().replace(" ", "")
    cipher = CIPHER_TOKENS.get(enc.strip().upper())
    pairwise = [cipher] if cipher and not cipher.startswith("WEP") else []
    enterprise = "ENTERPRISE" in a or "802.1X" in a
    personal = "PERSONAL" in a or "PSK" in a
    if a.startswith("WPA3"):
        akm = ["802.1X-SUITE-B-192"] if enterprise else ["SAE"]
        if "TRANSITION" in a:
            akm = ["PSK", "SAE"]
        return True, ie.suites(akm=akm, pairwise=pairwise, group=None), None, True
    if a.startswith("WPA2"):
        return True, ie.suites(akm=["802.1X"] if enterprise else ["PSK"], pairwise=pairwise, group=None), None, \
            enterprise or personal
    if a.startswith("WPA"):
        return True, None, ie.suites(akm=["802.1X"] if enterprise else ["PSK"], pairwise=pairwise,
                                     group=None), enterprise or personal
    if a == "OWE":
        return True, ie.suites(akm=["OWE"], pairwise=pairwise, group=None), None, True
    if (cipher and cipher.startswith("WEP")) or a in ("SHARED", "SHAREDKEY"):
        return True, None, None, True
    # "Open"/"Offen"/"Abierta"… with "None"/"Keine"/"Ninguna": no technical token at all.
    return False, None, None, cipher is None and not re.search(r"WPA|WEP|RSN|PSK|SAE", a)


def parse(text: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    block: dict[str, Any] | None = None
    bss: dict[str, Any] | None = None
    for line in text.splitlines():
        m = _SSID.match(line.strip()) if not line[:1].isspace() else None
        if m:
            block = {"ssid": m.group(1).rstrip("\r"), "values": [], "bssids": []}
            blocks.append(block)
            bss = None
            continue
        kv = _KV.match(line)
        if block is None or kv is None:
            continue
        indent, value = len(kv.group(1)), kv.group(3).strip()
        if _MAC.match(value):
            bss = {"bssid": value.lower(), "signal": None}
            block["bssids"].append(bss)
        elif bss is not None and indent > 4 and value.endswith("%") and value[:-1].isdigit():
            bss["signal"] = int(value[:-1])
        elif bss is None and len(block["values"]) < 3:
            block["values"].append(value)
    return [rec for b in blocks for rec in _records(b)]


def _records(block: dict[str, Any]) -> list[dict[str, Any]]:
    values = block["values"]
    auth, enc = (values[1], values[2]) if len(values) >= 3 else ("", "")
    privacy, rsn, wpa, understood = _security(auth, enc)
    out = []
    for b in block["bssids"] or [{"bssid": None, "signal": None}]:
        rec = ie.network(bssid=b["bssid"], ssid=block["ssid"].encode("utf-8"), privacy=privacy, rsn=rsn, wpa=wpa,
                         signal=b["signal"], authentication=auth, encryption=enc)
        if not understood or len(values) < 3:
            rec["security"] = "unknown"
            rec["anomalies"].append(f"unrecognised authentication {auth!r} / encryption {enc!r}")
        out.append(rec)
    return out
