"""Beacons made with scapy, for the cases no public capture has (WPA3-only, OWE, hostile SSIDs, odd headers).

The security elements are written byte by byte from IEEE 802.11-2020 (9.4.2.24),
not through scapy's RSN helpers, so a test states exactly which suites and
capability bits are on the air. Used by the Wi-Fi tests and by
benchmarks/wifi_capture.py.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

IEEE = b"\x00\x0f\xac"
MS = b"\x00\x50\xf2"
CIPHER = {"WEP-40": 1, "TKIP": 2, "CCMP": 4, "WEP-104": 5, "GCMP-128": 8, "GCMP-256": 9}
AKM = {"802.1X": 1, "PSK": 2, "FT-802.1X": 3, "FT-PSK": 4, "PSK-SHA256": 6, "SAE": 8, "FT-SAE": 9,
       "802.1X-SUITE-B-192": 12, "OWE": 18, "SAE-EXT-KEY": 24}


def rsn(*, group: str = "CCMP", pairwise: Sequence[str] = ("CCMP",), akm: Sequence[str] = ("PSK",),
        mfpr: bool = False, mfpc: bool = False) -> bytes:
    """RSN element body."""
    caps = (0x40 if mfpr else 0) | (0x80 if mfpc else 0)
    return (struct.pack("<H", 1) + IEEE + bytes([CIPHER[group]])
            + struct.pack("<H", len(pairwise)) + b"".join(IEEE + bytes([CIPHER[c]]) for c in pairwise)
            + struct.pack("<H", len(akm)) + b"".join(IEEE + bytes([AKM[a]]) for a in akm)
            + struct.pack("<H", caps))


def wpa(*, group: str = "TKIP", pairwise: Sequence[str] = ("TKIP",), akm: Sequence[str] = ("PSK",)) -> bytes:
    """WPA vendor element body (OUI and type included)."""
    return (MS + b"\x01" + struct.pack("<H", 1) + MS + bytes([CIPHER[group]])
            + struct.pack("<H", len(pairwise)) + b"".join(MS + bytes([CIPHER[c]]) for c in pairwise)
            + struct.pack("<H", len(akm)) + b"".join(MS + bytes([AKM[a]]) for a in akm))


def beacon(bssid: str, ssid: bytes, *, privacy: bool, rsn_body: bytes | None = None, wpa_body: bytes | None = None,
           owe_transition: bool = False, probe_response: bool = False, channel: int = 6, radiotap: bool = True,
           seq: int = 0) -> Any:
    """A scapy packet (RadioTap / Dot11 / Beacon or ProbeResp / elements)."""
    from scapy.layers.dot11 import Dot11, Dot11Beacon, Dot11Elt, Dot11ProbeResp, RadioTap

    cap = 0x0001 | (0x0010 if privacy else 0)
    # scapy writes this 16-bit field big-endian; on the air it is little-endian (802.11 9.2.2): swap.
    cap = int.from_bytes(cap.to_bytes(2, "little"), "big")
    body = Dot11ProbeResp(cap=cap) if probe_response else Dot11Beacon(cap=cap)
    dst = "02:00:00:00:00:01" if probe_response else "ff:ff:ff:ff:ff:ff"
    pkt = Dot11(type=0, subtype=5 if probe_response else 8, addr1=dst, addr2=bssid, addr3=bssid, SC=seq << 4) / body
    pkt = pkt / Dot11Elt(ID=0, info=ssid) / Dot11Elt(ID=1, info=b"\x82\x84\x8b\x96") / Dot11Elt(ID=3,
                                                                                             info=bytes([channel]))
    if rsn_body is not None:
        pkt = pkt / Dot11Elt(ID=48, info=rsn_body)
    if wpa_body is not None:
        pkt = pkt / Dot11Elt(ID=221, info=wpa_body)
    if owe_transition:
        pkt = pkt / Dot11Elt(ID=221, info=b"\x50\x6f\x9a\x1c" + bytes.fromhex("020000000010") + b"\x09owe-inner")
    return RadioTap() / pkt if radiotap else pkt


#: Every security the corpus lacks, as (bssid, ssid, beacon keyword arguments, expected label, expected pmf).
SYNTHETIC: list[tuple[str, bytes, dict[str, Any], str, str | None]] = [
    ("02:6d:00:00:00:01", b"wpa3-only", {"privacy": True, "rsn_body": rsn(akm=["SAE"], mfpr=True, mfpc=True)},
     "wpa3", "required"),
    ("02:6d:00:00:00:02", b"transition", {"privacy": True, "rsn_body": rsn(akm=["PSK", "SAE"], mfpc=True)},
     "wpa2/wpa3", "capable"),
    ("02:6d:00:00:00:03", b"owe", {"privacy": True, "rsn_body": rsn(akm=["OWE"], mfpr=True, mfpc=True)},
     "owe", "required"),
    ("02:6d:00:00:00:04", b"owe-open", {"privacy": False, "owe_transition": True}, "open", None),
    ("02:6d:00:00:00:05", b"suite-b", {"privacy": True, "rsn_body": rsn(group="GCMP-256", pairwise=["GCMP-256"],
                                                                         akm=["802.1X-SUITE-B-192"], mfpr=True,
                                                                         mfpc=True)}, "enterprise", "required"),
    ("02:6d:00:00:00:06", b"sae-ext", {"privacy": True, "rsn_body": rsn(akm=["SAE-EXT-KEY"], pairwise=["GCMP-256"],
                                                                         group="GCMP-256", mfpr=True, mfpc=True)},
     "wpa3", "required"),
    ("02:6d:00:00:00:07", b"wpa2-pmf", {"privacy": True, "rsn_body": rsn(akm=["PSK"], mfpc=True, mfpr=True)},
     "wpa2", "required"),
    ("02:6d:00:00:00:08", b"wpa2-tkip", {"privacy": True, "rsn_body": rsn(group="TKIP", pairwise=["CCMP", "TKIP"])},
     "wpa2", "no"),
    ("02:6d:00:00:00:09", b"wep-in-rsn", {"privacy": True, "rsn_body": rsn(group="WEP-104", pairwise=["WEP-104"])},
     "wep", "no"),
]

#: SSIDs an attacker might broadcast: terminal escapes, markup, bidi override, invalid UTF-8, a trailing NUL.
HOSTILE_SSIDS = [b"\x1b[31mEVIL\x1b]0;pwned\x07", b"<script>alert(1)</script>", "\u202eevil".encode(),
                 b"\xff\xfe\x80bad", b"office-wifi\x00", b"[bold red]rich[/]"]


def write_pcap(path: Path, packets: Iterable[Any]) -> Path:
    from scapy.utils import wrpcap

    wrpcap(str(path), list(packets))
    return path


def write_pcapng(path: Path, packets: Iterable[Any]) -> Path:
    from scapy.utils import wrpcapng

    wrpcapng(str(path), list(packets))
    return path
