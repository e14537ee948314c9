"""NetworkManager's view of the air: ``nmcli -t`` terse output.

Terse mode separates fields with ``:`` and escapes ``:`` and ``\\`` inside
values, so an SSID containing a colon cannot shift the columns. SSID-HEX gives
the exact SSID bytes; the WPA-FLAGS/RSN-FLAGS columns give ciphers and key
management (NetworkManager does not report PMF, so it stays unknown).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collectors.wifi import ie

FIELDS = ("IN-USE", "BSSID", "SSID", "SSID-HEX", "CHAN", "SIGNAL", "SECURITY", "WPA-FLAGS", "RSN-FLAGS")
COMMAND = ("nmcli", "-t", "-e", "yes", "-f", ",".join(FIELDS), "device", "wifi", "list")

NM_AKM = {"psk": "PSK", "802.1X": "802.1X", "sae": "SAE", "owe": "OWE", "eap_suite_b_192": "802.1X-SUITE-B-192"}
NM_CIPHER = {"wep40": "WEP-40", "wep104": "WEP-104", "tkip": "TKIP", "ccmp": "CCMP"}


def split_terse(line: str) -> list[str]:
    """Split one terse line on unescaped colons and undo the backslash escapes."""
    fields, cur, i = [], [], 0
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            cur.append(line[i + 1])
            i += 2
            continue
        if c == ":":
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    fields.append("".join(cur))
    return fields


def _flags(text: str) -> dict[str, Any] | None:
    words = text.split()
    if not words or words == ["(none)"]:
        return None
    akm = [NM_AKM[w] for w in words if w in NM_AKM]
    pairwise = [NM_CIPHER[w[5:]] for w in words if w.startswith("pair_") and w[5:] in NM_CIPHER]
    groups = [NM_CIPHER[w[6:]] for w in words if w.startswith("group_") and w[6:] in NM_CIPHER]
    # NetworkManager ORs the group flags of every beacon seen: the weakest is the one that matters.
    order = ["WEP-40", "WEP-104", "TKIP", "CCMP"]
    group = min(groups, key=order.index) if groups else None
    return ie.suites(akm=akm, pairwise=pairwise, group=group)


def _security_words(text: str) -> set[str]:
    return {w for w in text.split() if w not in ("--",)}


def parse(text: str, fields: Sequence[str] = FIELDS) -> list[dict[str, Any]]:
    """Networks from ``nmcli -t -f FIELDS dev wifi list`` (any subset of FIELDS, in the given order)."""
    names = [f.upper() for f in fields]
    nets = []
    for line in text.splitlines():
        if not line.strip():
            continue
        values = split_terse(line)
        if len(values) != len(names):
            continue
        row = dict(zip(names, values, strict=True))
        if row.get("SSID-HEX"):
            try:
                ssid = bytes.fromhex(row["SSID-HEX"])
            except ValueError:
                ssid = row.get("SSID", "").encode()
        else:
            ssid = row.get("SSID", "").encode()
        words = _security_words(row.get("SECURITY", ""))
        wpa = _flags(row.get("WPA-FLAGS", ""))
        rsn = _flags(row.get("RSN-FLAGS", ""))
        if "WPA-FLAGS" not in row and "RSN-FLAGS" not in row:
            wpa, rsn = _from_security_words(words)
        owe_tm = "owe_transition_mode" in row.get("RSN-FLAGS", "").split() or "OWE-TM" in words
        privacy = bool(wpa or rsn or "WEP" in words or "802.1X" in words)
        bssid = row.get("BSSID", "").lower() or None
        rec = ie.network(bssid=bssid, ssid=ssid, privacy=privacy, rsn=rsn, wpa=wpa, owe_transition=owe_tm,
                         security_text=row.get("SECURITY", ""), signal=_int(row.get("SIGNAL", "")),
                         channel=_int(row.get("CHAN", "")))
        if rec["security"] == "open" and words - {"OWE-TM"}:
            rec["security"] = "unknown"  # words we do not understand must not read as "open"
            rec["anomalies"].append(f"unrecognised SECURITY {row.get('SECURITY', '')!r}")
        rec["in_use"] = row.get("IN-USE", "").strip() == "*"
        nets.append(rec)
    return nets


def _from_security_words(words: set[str]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """Only the SECURITY column (e.g. ``WPA1 WPA2``, ``WPA2 802.1X``, ``WPA3``): coarser, ciphers unknown."""
    enterprise = "802.1X" in words
    akm = ["802.1X"] if enterprise else ["PSK"]
    wpa = ie.suites(akm=akm, pairwise=[], group=None) if "WPA1" in words else None
    rsn_akm: list[str] = []
    if "WPA2" in words:
        rsn_akm += akm
    if "WPA3" in words:
        rsn_akm += ["802.1X-SUITE-B-192"] if enterprise else ["SAE"]
    if "OWE" in words:
        rsn_akm.append("OWE")
    rsn = ie.suites(akm=rsn_akm, pairwise=[], group=None) if rsn_akm else None
    return wpa, rsn


def _int(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None
