"""macOS: ``airport -s`` (the private Apple80211 tool; removed in macOS 14.4, where no CLI replaces it).

The SSID column is right-aligned to the BSSID column, so columns are cut by
the header's positions rather than by whitespace (SSIDs contain spaces). From
macOS 12 the BSSID may be blank unless the tool has location permission.
SECURITY is a list like ``WPA(PSK/AES,TKIP/TKIP) WPA2(PSK/AES/AES)``:
protocol(auth/unicast ciphers/group cipher).
"""

from __future__ import annotations

import re
from typing import Any

from collectors.wifi import ie

COMMAND = ("/System/Library/PrivateFrameworks/Apple80211.framework/Versions/Current/Resources/airport", "-s")

_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_ITEM = re.compile(r"([A-Z0-9]+)\(([^)]*)\)|\b(NONE|WEP|OPEN)\b")
AUTH = {"PSK": "PSK", "802.1X": "802.1X", "SAE": "SAE", "OWE": "OWE", "FT-PSK": "FT-PSK", "FT-SAE": "FT-SAE"}
CIPHER = {"AES": "CCMP", "TKIP": "TKIP", "WEP": "WEP-104", "GCMP": "GCMP-128", "GCMP256": "GCMP-256"}


def _suites(inner: str) -> tuple[dict[str, Any], bool]:
    parts = inner.split("/")
    if len(parts) != 3:
        return ie.suites(akm=[], pairwise=[], group=None), False
    auth, uni, grp = parts
    akms = [AUTH.get(a.upper(), a) for a in auth.split(",") if a]
    pairwise = [CIPHER.get(c.upper(), c) for c in uni.split(",") if c]
    known = all(a.upper() in AUTH for a in auth.split(",") if a) and all(
        c.upper() in CIPHER for c in uni.split(",") if c)
    return ie.suites(akm=akms, pairwise=pairwise, group=CIPHER.get(grp.upper(), grp or None)), known


def parse(text: str) -> list[dict[str, Any]]:
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if "BSSID" in line and "SSID" in line), None)
    if header is None:
        return []
    col = lines[header].index("BSSID")
    nets = []
    for line in lines[header + 1:]:
        if not line.strip():
            continue
        ssid = line[:col].strip(" ")
        bssid_text = line[col:col + 17].strip()
        rest = line[col + 17:].split(None, 4)
        if len(rest) < 5:
            continue
        rssi, channel, _ht, _cc, security = rest
        rsn = wpa = None
        privacy = False
        understood = True
        for proto, inner, bare in ((m.group(1), m.group(2), m.group(3)) for m in _ITEM.finditer(security)):
            if bare:
                privacy = privacy or bare == "WEP"
                continue
            suites, ok = _suites(inner)
            understood &= ok
            privacy = True
            if proto == "WPA":
                wpa = suites
            elif proto in ("WPA2", "WPA3", "RSN"):
                if rsn is not None:  # "WPA2(PSK/…) WPA3(SAE/…)": one RSN element listing both
                    suites["akm"] = rsn["akm"] + suites["akm"]
                rsn = suites
            else:
                understood = False
        rec = ie.network(bssid=bssid_text.lower() if _MAC.match(bssid_text) else None, ssid=ssid.encode("utf-8"),
                         privacy=privacy, rsn=rsn, wpa=wpa, signal=_int(rssi),
                         channel=_int(channel.split(",")[0]), security_text=security.strip())
        if not understood or not _ITEM.search(security):
            rec["security"] = "unknown"
            rec["anomalies"].append(f"unrecognised SECURITY {security.strip()!r}")
        nets.append(rec)
    return nets


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None
