"""802.11 information elements that say how a network is protected, and the label that follows from them.

Only three things decide a network's security as a station sees it before
joining: the Privacy bit of the capability field, the RSN element (48) and
the WPA vendor element (221, 00:50:F2 type 1). The suite numbers are kept raw
(``00-0f-ac:8``) next to their names so that a report can always be checked
against the standard (IEEE 802.11-2020 Tables 9-149 and 9-151) or tshark.
"""

from __future__ import annotations

import struct
from typing import Any

IEEE_OUI = b"\x00\x0f\xac"
MS_OUI = b"\x00\x50\xf2"
WFA_OUI = b"\x50\x6f\x9a"

CIPHERS = {
    0: "USE-GROUP", 1: "WEP-40", 2: "TKIP", 4: "CCMP", 5: "WEP-104", 6: "BIP-CMAC-128",
    7: "GROUP-NOT-ALLOWED", 8: "GCMP-128", 9: "GCMP-256", 10: "CCMP-256", 11: "BIP-GMAC-128",
    12: "BIP-GMAC-256", 13: "BIP-CMAC-256",
}
AKMS = {
    1: "802.1X", 2: "PSK", 3: "FT-802.1X", 4: "FT-PSK", 5: "802.1X-SHA256", 6: "PSK-SHA256", 7: "TDLS",
    8: "SAE", 9: "FT-SAE", 10: "AP-PEERKEY", 11: "802.1X-SUITE-B", 12: "802.1X-SUITE-B-192",
    13: "FT-802.1X-SHA384", 14: "FILS-SHA256", 15: "FILS-SHA384", 16: "FT-FILS-SHA256",
    17: "FT-FILS-SHA384", 18: "OWE", 19: "FT-PSK-SHA384", 20: "PSK-SHA384", 21: "PASN",
    22: "FT-802.1X-SHA384-2", 23: "802.1X-SHA384", 24: "SAE-EXT-KEY", 25: "FT-SAE-EXT-KEY",
}
#: Wi-Fi Alliance suites seen in RSN elements (DPP, OSEN).
WFA_AKMS = {1: "OSEN", 2: "DPP"}

PERSONAL_PSK = {"PSK", "FT-PSK", "PSK-SHA256", "FT-PSK-SHA384", "PSK-SHA384"}
#: SAE and DPP (Wi-Fi Easy Connect): the WPA3-generation personal key managements.
PERSONAL_SAE = {"SAE", "FT-SAE", "SAE-EXT-KEY", "FT-SAE-EXT-KEY", "DPP"}
ENTERPRISE = {
    "802.1X", "FT-802.1X", "802.1X-SHA256", "802.1X-SUITE-B", "802.1X-SUITE-B-192", "FT-802.1X-SHA384",
    "FT-802.1X-SHA384-2", "802.1X-SHA384", "FILS-SHA256", "FILS-SHA384", "FT-FILS-SHA256",
    "FT-FILS-SHA384", "OSEN",
}
WEAK_CIPHERS = {"TKIP", "WEP-40", "WEP-104"}

#: Every security label a network can get. Judges decide which are acceptable.
LABELS = ("open", "owe", "wep", "wpa", "wpa/wpa2", "wpa2", "wpa2/wpa3", "wpa3", "enterprise", "unknown")


class ElementError(ValueError):
    """An RSN or WPA element whose fields do not fit its length."""


def _suite(raw: bytes, names: dict[int, str]) -> tuple[str, str]:
    """(raw selector "00-0f-ac:4", name) for a 4-byte suite selector."""
    oui, kind = raw[:3], raw[3]
    selector = f"{oui.hex('-')}:{kind}"
    if oui in (IEEE_OUI, MS_OUI):
        return selector, names.get(kind, selector)
    if oui == WFA_OUI and names is AKMS:
        return selector, WFA_AKMS.get(kind, selector)
    return selector, selector


def _suite_list(body: bytes, pos: int, names: dict[int, str]) -> tuple[list[str], list[str], int]:
    if pos + 2 > len(body):
        raise ElementError("suite count missing")
    (count,) = struct.unpack_from("<H", body, pos)
    pos += 2
    if pos + 4 * count > len(body):
        raise ElementError(f"{count} suites announced but the element ends before them")
    raws, labels = [], []
    for i in range(count):
        raw, label = _suite(body[pos + 4 * i:pos + 4 * i + 4], names)
        raws.append(raw)
        labels.append(label)
    return raws, labels, pos + 4 * count


def parse_rsn(body: bytes) -> dict[str, Any]:
    """The RSN element body (after id and length). Omitted trailing fields take their defaults (CCMP, 802.1X)."""
    if len(body) < 2:
        raise ElementError("RSN element shorter than its version field")
    (version,) = struct.unpack_from("<H", body, 0)
    out: dict[str, Any] = {"version": version, "group": "CCMP", "group_suite": "00-0f-ac:4",
                           "pairwise": ["CCMP"], "pairwise_suites": ["00-0f-ac:4"],
                           "akm": ["802.1X"], "akm_suites": ["00-0f-ac:1"], "mfpr": None, "mfpc": None}
    pos = 2
    if pos + 4 <= len(body):
        out["group_suite"], out["group"] = _suite(body[pos:pos + 4], CIPHERS)
        pos += 4
    elif pos != len(body):
        raise ElementError("RSN group cipher suite is cut off")
    if pos < len(body):
        out["pairwise_suites"], out["pairwise"], pos = _suite_list(body, pos, CIPHERS)
    if pos < len(body):
        out["akm_suites"], out["akm"], pos = _suite_list(body, pos, AKMS)
    if pos + 2 <= len(body):
        (caps,) = struct.unpack_from("<H", body, pos)
        out["mfpr"] = bool(caps & 0x40)
        out["mfpc"] = bool(caps & 0x80)
    return out


def parse_wpa(body: bytes) -> dict[str, Any]:
    """The WPA vendor element body after its OUI and type (00:50:F2:01). Defaults are TKIP and 802.1X."""
    if len(body) < 2:
        raise ElementError("WPA element shorter than its version field")
    (version,) = struct.unpack_from("<H", body, 0)
    out: dict[str, Any] = {"version": version, "group": "TKIP", "group_suite": "00-50-f2:2",
                           "pairwise": ["TKIP"], "pairwise_suites": ["00-50-f2:2"],
                           "akm": ["802.1X"], "akm_suites": ["00-50-f2:1"]}
    pos = 2
    if pos + 4 <= len(body):
        out["group_suite"], out["group"] = _suite(body[pos:pos + 4], CIPHERS)
        pos += 4
    elif pos != len(body):
        raise ElementError("WPA multicast cipher suite is cut off")
    if pos < len(body):
        out["pairwise_suites"], out["pairwise"], pos = _suite_list(body, pos, CIPHERS)
    if pos < len(body):
        out["akm_suites"], out["akm"], pos = _suite_list(body, pos, AKMS)
    return out


def classify(*, privacy: bool | None, rsn: dict[str, Any] | None, wpa: dict[str, Any] | None) -> str:
    """The security label (one of LABELS) a station would see, from the raw elements."""
    if rsn is None and wpa is None:
        if privacy is None:
            return "unknown"
        return "wep" if privacy else "open"
    ciphers = set()
    for ie in (rsn, wpa):
        if ie is not None:
            ciphers.update(ie["pairwise"])
    if ciphers and ciphers <= {"WEP-40", "WEP-104"}:
        return "wep"
    if wpa is not None:
        return "wpa/wpa2" if rsn is not None else "wpa"
    assert rsn is not None
    return rsn_label(set(rsn["akm"]))


def rsn_label(akms: set[str]) -> str:
    """Label for an RSN network from its AKM names (shared with the flag-based parsers)."""
    if not akms:
        return "unknown"
    if akms == {"OWE"}:
        return "owe"
    psk, sae = akms & PERSONAL_PSK, akms & PERSONAL_SAE
    if psk and sae:
        return "wpa2/wpa3"
    if sae:
        return "wpa3"
    if psk:
        return "wpa2"
    if akms & ENTERPRISE:
        return "enterprise"
    return "unknown"


def pmf(rsn: dict[str, Any] | None) -> str | None:
    """'required', 'capable', 'no', or None when there is no RSN capabilities field to say."""
    if rsn is None or rsn.get("mfpc") is None:
        return None
    if rsn["mfpr"]:
        return "required"
    return "capable" if rsn["mfpc"] else "no"


def ssid_fields(raw: bytes) -> dict[str, Any]:
    """SSIDs are attacker-chosen bytes: exact hex always, text only when it is valid UTF-8."""
    try:
        text: str | None = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {"ssid": text, "ssid_hex": raw.hex(), "hidden": not raw or not raw.strip(b"\x00")}


def suites(*, akm: list[str], pairwise: list[str], group: str | None,
           mfpr: bool | None = None, mfpc: bool | None = None) -> dict[str, Any]:
    """An RSN/WPA description from a scanner's text output (no raw selectors are known there)."""
    return {"group": group, "pairwise": pairwise, "akm": akm, "mfpr": mfpr, "mfpc": mfpc}


def network(*, bssid: str | None, ssid: bytes, privacy: bool | None, rsn: dict[str, Any] | None,
            wpa: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    """A network record in the same shape whatever the source (capture, wpa_supplicant, nmcli, netsh, airport)."""
    rec: dict[str, Any] = {
        "bssid": bssid, **ssid_fields(ssid), "privacy": privacy, "rsn": rsn, "wpa": wpa,
        "security": classify(privacy=privacy, rsn=rsn, wpa=wpa), "pmf": pmf(rsn),
        "owe_transition": False, "mesh": False, "channel": None, "frames": None, "seen_in": ["scan"],
        "anomalies": [],
    }
    rec.update(extra)
    return rec
