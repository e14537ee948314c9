"""Find every network announced in an 802.11 capture, fast.

The hot path touches each record once: strip the link-layer header
(radiotap, Prism, AVS, PPI or none), keep only beacons and probe responses,
and walk their tagged elements for the four that matter (SSID, RSN, the WPA
vendor element, the OWE transition element). An AP repeats the same beacon
body ten times a second, so bodies already seen are counted through a dict
lookup and not walked again; the elements are decoded once per distinct
network. Frames that cannot be trusted (cut by snaplen, bad FCS, elements
overrunning the frame) are counted and left out, never guessed at; those
that may have been an announcement we cannot read (a beacon cut by the snap
length, a record whose radio header cannot be decoded) are also recorded as
problems, so the read is not ``complete`` and no judge can pass on it.
"""

from __future__ import annotations

import struct
from typing import Any, BinaryIO

from collectors.wifi import ie
from collectors.wifi.pcap import ReadStats, read_records

DLT_IEEE802_11 = 105
DLT_PRISM = 119
DLT_RADIOTAP = 127
DLT_AVS = 163
DLT_PPI = 192
WIRELESS_LINKTYPES = {DLT_IEEE802_11, DLT_PRISM, DLT_RADIOTAP, DLT_AVS, DLT_PPI}

BEACON = 0x80
PROBE_RESPONSE = 0x50
KIND = {BEACON: "beacon", PROBE_RESPONSE: "probe_response"}
WPA_PREFIX = b"\x00\x50\xf2\x01"
OWE_TRANSITION_PREFIX = b"\x50\x6f\x9a\x1c"

#: Distinct networks kept; a hostile capture with millions of fake SSIDs is summarised, not stored.
MAX_NETWORKS = 5000
#: Distinct beacon bodies remembered for the fast path before the memory is reset.
MAX_BODIES = 200_000


def _radiotap_header(frame: bytes) -> tuple[int, int] | None:
    """(header length, the Flags field or 0) of a radiotap header; None when it cannot be decoded."""
    if len(frame) < 8:
        return None
    rlen = frame[2] | (frame[3] << 8)
    present = int.from_bytes(frame[4:8], "little")
    if rlen < 8 or rlen > len(frame):
        return None
    if not present & 0x2:  # no Flags field
        return rlen, 0
    off = 8
    word = present
    while word & 0x80000000 and off + 4 <= rlen:
        word = int.from_bytes(frame[off:off + 4], "little")
        off += 4
    if present & 0x1:  # TSFT, 8 bytes aligned to 8, comes first
        off = ((off + 7) & ~7) + 8
    if off >= rlen:
        return None
    return rlen, frame[off]


def _radiotap(frame: bytes) -> bytes | None:
    """The 802.11 frame inside a radiotap header; None when the header is undecodable or the FCS was bad."""
    header = _radiotap_header(frame)
    if header is None:
        return None
    rlen, flags = header
    if flags & 0x40:  # frame failed its FCS check
        return None
    end = len(frame) - 4 if flags & 0x10 else len(frame)
    return frame[rlen:end]


def strip_link(linktype: int, frame: bytes) -> bytes | None:
    if linktype == DLT_RADIOTAP:
        return _radiotap(frame)
    if linktype == DLT_IEEE802_11:
        return frame
    if linktype == DLT_PRISM:
        if len(frame) < 8:
            return None
        hlen = struct.unpack_from("<I", frame, 4)[0]
        return frame[hlen:] if 8 <= hlen <= len(frame) else None
    if linktype == DLT_AVS:
        if len(frame) < 8:
            return None
        hlen = struct.unpack_from(">I", frame, 4)[0]
        return frame[hlen:] if 8 <= hlen <= len(frame) else None
    if linktype == DLT_PPI:
        if len(frame) < 8:
            return None
        hlen, dlt = struct.unpack_from("<HI", frame, 2)
        if 8 <= hlen <= len(frame) and dlt in (DLT_IEEE802_11, DLT_RADIOTAP):
            return strip_link(dlt, frame[hlen:])
        return None
    return None


def _walk(body: bytes) -> tuple[bytes | None, bytes | None, bytes | None, int, bool, bool, int | None] | None:
    """(ssid, rsn body, wpa body, RSN element count, owe transition, mesh, channel); None if malformed."""
    ssid = rsn = wpa = None
    rsn_count = 0
    owe = mesh = False
    channel = None
    n = len(body)
    i = 12  # timestamp (8), beacon interval (2), capability (2)
    while i + 2 <= n:
        eid = body[i]
        end = i + 2 + body[i + 1]
        if end > n:
            break
        if eid == 0:
            if ssid is None:
                ssid = body[i + 2:end]
        elif eid == 48:
            rsn_count += 1
            if rsn is None:
                rsn = body[i + 2:end]
        elif eid == 221:
            prefix = body[i + 2:i + 6]
            if prefix == WPA_PREFIX:
                if wpa is None:
                    wpa = body[i + 6:end]
            elif prefix == OWE_TRANSITION_PREFIX:
                owe = True
        elif eid == 3:
            if end - i == 3:
                channel = body[i + 2]
        elif eid == 114:
            mesh = True
        i = end
    # A frame carrying its FCS without saying so leaves up to 4 stray bytes at the end; more is garbage.
    if n - i > 4:
        return None
    return ssid, rsn, wpa, rsn_count, owe, mesh, channel


def _network(bssid: bytes, privacy: bool, walked: tuple[Any, ...]) -> dict[str, Any]:
    ssid, rsn_raw, wpa_raw, rsn_count, owe, mesh, channel = walked
    rec: dict[str, Any] = {"bssid": bssid.hex(":"), **ie.ssid_fields(ssid or b""), "privacy": privacy}
    anomalies: list[str] = []
    if ssid is None:
        anomalies.append("no SSID element")
    if not any(bssid):
        anomalies.append("all-zero BSSID: not a real transmitter address")
    rsn = wpa = None
    try:
        rsn = ie.parse_rsn(rsn_raw) if rsn_raw is not None else None
    except ie.ElementError as e:
        anomalies.append(f"RSN element: {e}")
    try:
        wpa = ie.parse_wpa(wpa_raw) if wpa_raw is not None else None
    except ie.ElementError as e:
        anomalies.append(f"WPA element: {e}")
    if rsn_count > 1:
        anomalies.append(f"{rsn_count} RSN elements (the first is used, as stations do)")
    rec["rsn"] = rsn
    rec["wpa"] = wpa
    if (rsn_raw is not None and rsn is None) or (wpa_raw is not None and wpa is None):
        rec["security"] = "unknown"
    else:
        rec["security"] = ie.classify(privacy=privacy, rsn=rsn, wpa=wpa)
    rec["pmf"] = ie.pmf(rsn)
    rec["owe_transition"] = owe
    rec["mesh"] = mesh
    rec["channel"] = channel
    rec["frames"] = 0
    rec["seen_in"] = []
    rec["anomalies"] = anomalies
    return rec


def network_from_elements(bssid: bytes, capability: int, elements: bytes) -> dict[str, Any] | None:
    """One network record from a BSS's raw elements, as scanners (wpa_supplicant ``BSS``) report them."""
    walked = _walk(bytes(10) + capability.to_bytes(2, "little") + elements)
    if walked is None:
        return None
    rec = _network(bssid, bool(capability & 0x10), walked)
    rec["frames"] = None
    rec["seen_in"] = ["scan"]
    return rec


def analyse(stream: BinaryIO, *, cache: bool = True) -> dict[str, Any]:
    """Every distinct (BSSID, SSID, security) announced in the capture, with frame counts and read statistics."""
    stats = ReadStats()
    bodies: dict[tuple[int, bytes, bytes], dict[str, Any]] = {}
    networks: dict[tuple[Any, ...], dict[str, Any]] = {}
    counts = {"beacons": 0, "probe_responses": 0, "snapped": 0, "bad_link": 0, "malformed": 0,
              "not_80211": 0, "networks_dropped": 0}
    cut: list[tuple[int, int]] = []  # (record, offset) of frames that may be beacons, cut by the snap length
    undecodable: list[tuple[int, int]] = []  # ... and of complete records whose link header cannot be decoded
    for linktype, frame, complete in read_records(stream, stats):
        if linktype == DLT_RADIOTAP:
            header = _radiotap_header(frame)
            if header is None:
                dot11 = None
            elif header[1] & 0x40:  # the frame failed its FCS check: noise in the air, not damage to the file
                counts["bad_link"] += 1
                continue
            else:
                dot11 = frame[header[0]:len(frame) - 4 if header[1] & 0x10 else len(frame)]
        elif linktype == DLT_IEEE802_11:
            dot11 = frame
        elif linktype in WIRELESS_LINKTYPES:
            dot11 = strip_link(linktype, frame)
        else:
            counts["not_80211"] += 1
            continue
        if dot11 is None or len(dot11) < 2:
            if not complete:  # cut before its type could be read: it may have been a beacon
                counts["snapped"] += 1
                cut.append((stats.records, stats.record_offset))
            elif dot11 is None:
                counts["bad_link"] += 1
                undecodable.append((stats.records, stats.record_offset))
            continue
        fc0 = dot11[0]
        if fc0 != BEACON and fc0 != PROBE_RESPONSE:
            continue
        counts["beacons" if fc0 == BEACON else "probe_responses"] += 1
        if not complete:
            counts["snapped"] += 1
            cut.append((stats.records, stats.record_offset))
            continue
        hdr = 28 if dot11[1] & 0x80 else 24  # +HTC: an HT Control field follows the header
        if len(dot11) < hdr + 12:
            counts["malformed"] += 1
            continue
        bssid = dot11[16:22]
        tail = dot11[hdr + 10:]  # capability + elements: what identifies a network's announcement
        key = (fc0, bssid, tail)
        rec = bodies.get(key) if cache else None
        if rec is None:
            body = dot11[hdr:]
            walked = _walk(body)
            if walked is None:
                counts["malformed"] += 1
                continue
            privacy = bool(body[10] & 0x10)
            nkey = (bssid, privacy, *walked[:5])
            rec = networks.get(nkey)
            if rec is None:
                if len(networks) >= MAX_NETWORKS:
                    counts["networks_dropped"] += 1
                    continue
                rec = networks[nkey] = _network(bssid, privacy, walked)
            if cache:
                if len(bodies) >= MAX_BODIES:
                    bodies.clear()
                bodies[key] = rec
        rec["frames"] += 1
        kind = KIND[fc0]
        if kind not in rec["seen_in"]:
            rec["seen_in"].append(kind)
    if cut:
        stats.problem("snapped", cut[0][1], f"{len(cut)} beacons or probe responses (or frames cut too short to "
                                            f"tell) lost their tail to the capture's snap length, the first at "
                                            f"record {cut[0][0]}: the elements they announced are unknown",
                      record=cut[0][0], count=len(cut))
    if undecodable:
        stats.problem("undecodable", undecodable[0][1], f"{len(undecodable)} records have a link-layer header that "
                                                        f"cannot be decoded, the first at record {undecodable[0][0]}: "
                                                        "they may have been beacons", record=undecodable[0][0],
                      count=len(undecodable))
    found = sorted(networks.values(), key=lambda r: (r["bssid"], r["ssid_hex"], r["security"]))
    return {
        "format": stats.format,
        "compressed": stats.compressed,
        "records": stats.records,
        "linktypes": sorted(stats.linktypes),
        "file_truncated": stats.file_truncated,
        "corrupt": stats.corrupt,
        "complete": stats.complete,
        "bytes_read": stats.bytes_read,
        "problems": sorted(stats.problems, key=lambda p: p["offset"]),
        **counts,
        "networks": found,
    }
