"""A damaged capture never passes (issue 10, item 3).

Every case starts from a real public capture (../shared/corpus/wifi-pcap, read
where it lies) and damages a copy the way disks, transfers and tools do: one
flipped bit in a header, a cut at any offset, a beacon snapped by the snap
length, a gzip stream broken off. What was read may still fail; what was read
only in part never passes. The property tests at the end let hypothesis do
the damaging, and check each result against an independent walk of the
damaged file's record lengths.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config.policy import load_policy
from agent.targets.wifi import CaptureTarget
from checks.base import FactSet, Outcome, Status
from checks.wireless import TX_01, WL_03
from collectors.base import CollectorError
from collectors.wifi.frames import analyse
from collectors.wifi.pcap import CaptureError
from collectors.wifi.survey import COLLECTOR as SURVEY
from tests.conftest import finding, require_corpus

#: A real street scan, 1112 records, plain 802.11 (DLT 105). Its networks (EXPECTED.md): "im human 2015" is
#: WPA2-PSK (beacon at record 18), "HOME-1102" WPA1+WPA2 with TKIP (its one beacon is record 22), "xfinitywifi"
#: open (first beacon at record 24, byte 1535), "orangefloss" WPA1-PSK (record 40).
STREET = "wifite2__handshake_not_exists.cap"
TRANSITION = "wifi-example-captures__wpa3_transition_wpa3client_24ghz.pcapng"  # WPA3-AP-Transition passes
LINKSYS = "aircrack-ng__wpa2-psk-linksys.cap"  # linksys, WPA2-PSK: passes
PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}


# --- helpers ---------------------------------------------------------------------------------------

def corpus(name: str) -> bytes:
    return require_corpus("wifi-pcap", name).read_bytes()


def pcap_records(data: bytes) -> list[tuple[int, int, int]]:
    """(header offset, captured length, original length) of every whole record of a pcap."""
    endian = PCAP_MAGICS[data[:4]]
    out, off = [], 24
    while off + 16 <= len(data):
        incl, orig = struct.unpack_from(endian + "II", data, off + 8)
        if off + 16 + incl > len(data):
            break
        out.append((off, incl, orig))
        off += 16 + incl
    return out


def pcapng_blocks(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, length) of every block of a little-endian pcapng."""
    out, off = [], 0
    while off + 12 <= len(data):
        btype, blen = struct.unpack_from("<II", data, off)
        out.append((off, btype, blen))
        off += blen
    return out


def whole(data: bytes) -> bool:
    """Independently of mamoru's reader: does the file parse completely (lengths chain exactly to its end)?"""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except Exception:
            return False
    if data[:4] in PCAP_MAGICS:
        endian = PCAP_MAGICS[data[:4]]
        if len(data) < 24 or struct.unpack_from(endian + "H", data, 4)[0] != 2:
            return False
        off = 24
        while off < len(data):
            if off + 16 > len(data):
                return False
            incl, orig = struct.unpack_from(endian + "II", data, off + 8)
            if incl > orig:
                return False
            off += 16 + incl
        return off == len(data)
    if data[:4] == b"\x0a\x0d\x0d\x0a" and data[8:12] == b"\x4d\x3c\x2b\x1a":
        off = 0
        while off < len(data):
            if off + 12 > len(data):
                return False
            btype, blen = struct.unpack_from("<II", data, off)
            if blen < 12 or blen % 4 or off + blen > len(data):
                return False
            if struct.unpack_from("<I", data, off + blen - 4)[0] != blen:
                return False
            if btype == 6 and (blen < 32 or 32 + struct.unpack_from("<I", data, off + 20)[0] > blen):
                return False
            off += blen
        return True
    return False


def survey(path: Path) -> FactSet:
    """The real collector on the file, as the runner would hold its outcome."""
    try:
        facts = SURVEY.collect(CaptureTarget(f"wifi-capture:{path}", str(path)))
    except CollectorError as e:
        return FactSet({}, {"wifi_survey": str(e)})
    return FactSet({"wifi_survey": facts}, {})


def judge(path: Path, ssids: list[str]) -> dict[str, Outcome]:
    facts = survey(path)
    policy = load_policy(overrides={"wifi": {"ssids": ssids}})
    return {"WL-03": WL_03.evaluate(facts, policy), "TX-01": TX_01.evaluate(facts, policy)}


def statuses(path: Path, ssids: list[str]) -> set[Status]:
    return {o.status for o in judge(path, ssids).values()}


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def flip(data: bytes, offset: int, mask: int) -> bytes:
    out = bytearray(data)
    out[offset] ^= mask
    return bytes(out)


def put32(data: bytes, offset: int, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("<I", out, offset, value)
    return bytes(out)


def unread(outcome: Outcome) -> list[dict[str, Any]]:
    assert isinstance(outcome.evidence, dict)
    problems: list[dict[str, Any]] = outcome.evidence["unread"]
    return problems


# --- one flipped bit in a record length --------------------------------------------------------------

def test_flipped_record_length_stops_the_read_and_is_an_error_not_a_pass(run_cli: Any, tmp_path: Path) -> None:
    data = corpus(STREET)
    off, incl, _ = pcap_records(data)[23]  # record 24: the first xfinitywifi beacon (open)
    assert off == 1535
    broken = write(tmp_path, "broken.cap", flip(data, off + 11, 0x80))  # top bit of its captured length
    policy = tmp_path / "policy.yaml"
    policy.write_text('wifi:\n  ssids: ["im human 2015", "xfinitywifi"]\n', encoding="utf-8")

    rc, doc, _, _ = run_cli("scan", "--wifi-capture", str(require_corpus("wifi-pcap", STREET)), "--policy",
                            str(policy), "--check", "WL-03", "--check", "TX-01")
    assert rc == 1 and doc is not None and finding(doc, "WL-03")["status"] == "fail"  # the intact file fails

    rc, doc, _, _ = run_cli("scan", "--wifi-capture", str(broken), "--policy", str(policy), "--check", "WL-03",
                            "--check", "TX-01", "--lang", "en")
    assert doc is not None
    for check in ("WL-03", "TX-01"):
        f = finding(doc, check)
        assert f["status"] == "error", check
        assert "Only part of the" in f["message"]["en"] and "byte 1535 (after 23 whole records)" in f["message"]["en"]
        assert "1535 バイト目" in f["message"]["ja"]
        (problem,) = f["evidence"]["unread"]
        assert problem["kind"] == "length" and problem["record"] == 24 and problem["offset"] == 1535
        assert str(incl | 0x80000000) in problem["problem"]


def test_damage_after_a_weak_network_still_fails_and_says_what_was_not_read(tmp_path: Path) -> None:
    data = corpus(STREET)
    off, _, _ = pcap_records(data)[40]  # record 41, just after orangefloss's beacon (WPA1-PSK)
    broken = write(tmp_path, "broken.cap", flip(data, off + 11, 0x80))
    out = judge(broken, ["orangefloss"])
    for check, outcome in out.items():
        assert outcome.status is Status.FAIL, check
        assert [(p["kind"], p["record"], p["offset"]) for p in unread(outcome)] == [("length", 41, off)]
    assert "WPA1 allowed" in out["WL-03"].message.en


def test_a_flipped_original_length_is_caught_too(tmp_path: Path) -> None:
    data = corpus(STREET)
    off, incl, orig = pcap_records(data)[23]
    smaller = write(tmp_path, "orig.cap", put32(data, off + 12, incl - 1))  # captured more than the frame had
    assert statuses(smaller, ["im human 2015"]) == {Status.ERROR}
    assert analyse(io.BytesIO(smaller.read_bytes()))["problems"][0]["kind"] == "inconsistent"


# --- the corpus files documented with a truncated last record -------------------------------------

def test_truncated_corpus_captures_fail_on_what_was_read_else_error() -> None:
    # aircrack-ng__pmkid-not-recognized.cap: every WML announcement read is WPA2 or WPA2/WPA3 (PMF capable),
    # but the last record (a 427-byte frame with 195 bytes present) is cut off: was a pass, now an error.
    out = judge(require_corpus("wifi-pcap", "aircrack-ng__pmkid-not-recognized.cap"), ["WML"])
    assert {o.status for o in out.values()} == {Status.ERROR}
    assert [(p["kind"], p["record"], p["offset"]) for p in unread(out["WL-03"])] == [("truncated", 20057, 1432616)]
    assert "Only part of the capture" in out["WL-03"].message.en
    # wifite2__handshake_has_1234.cap: YZWifi is WPA1+WPA2 in the 117 frames read, a failure whatever the cut
    # last record (a probe response of YZWifi whose RSN and WPA elements are missing) said.
    out = judge(require_corpus("wifi-pcap", "wifite2__handshake_has_1234.cap"), ["YZWifi"])
    assert {o.status for o in out.values()} == {Status.FAIL}
    assert "WPA1 allowed" in out["WL-03"].message.en
    assert [(p["kind"], p["record"]) for p in unread(out["TX-01"])] == [("truncated", 2190)]
    # scapy__bad_rsn_parsing_overrides_ssid.pcap: one WPA2 beacon, then 1 byte of a next record header (tshark:
    # "cut short in the middle of a packet"): was a pass, now an error.
    out = judge(require_corpus("wifi-pcap", "scapy__bad_rsn_parsing_overrides_ssid.pcap"), ["ROUTE-821E295"])
    assert {o.status for o in out.values()} == {Status.ERROR}
    (problem,) = unread(out["WL-03"])
    assert problem["kind"] == "truncated" and problem["problem"].startswith("the file ends inside the header of "
                                                                           "record 2 at byte 359")


def test_every_whole_corpus_capture_reads_completely() -> None:
    cut = {"aircrack-ng__pmkid-not-recognized.cap", "wifite2__handshake_has_1234.cap",
           "scapy__bad_rsn_parsing_overrides_ssid.pcap"}
    for path in sorted(require_corpus("wifi-pcap").iterdir()):
        if path.suffix == ".md":
            continue
        facts = SURVEY.collect(CaptureTarget(f"wifi-capture:{path}", str(path)))
        integrity = facts["integrity"]
        assert integrity["complete"] is (path.name not in cut), (path.name, integrity["problems"])
        if not integrity["compressed"] and path.name not in cut:
            assert integrity["bytes_read"] == integrity["file_size"] == path.stat().st_size, path.name


# --- frames cut by the snap length -------------------------------------------------------------------

def _snap(data: bytes, index: int, keep: int) -> bytes:
    """The capture with record ``index`` cut to ``keep`` bytes as a snap length would (its original length kept)."""
    off, incl, orig = pcap_records(data)[index]
    header = data[off:off + 8] + struct.pack("<II", keep, orig)
    return data[:off] + header + data[off + 16:off + 16 + keep] + data[off + 16 + incl:]


def test_a_snapped_beacon_of_an_organisation_network_is_not_a_pass(tmp_path: Path) -> None:
    data = corpus(STREET)
    ssids = ["im human 2015", "HOME-1102"]
    assert statuses(write(tmp_path, "whole.cap", data), ssids) == {Status.FAIL}  # HOME-1102 allows TKIP
    # HOME-1102's one beacon (record 22) cut after its SSID element: its RSN and WPA elements are lost.
    snapped = write(tmp_path, "snapped.cap", _snap(data, 21, 60))
    out = judge(snapped, ssids)
    assert {o.status for o in out.values()} == {Status.ERROR}
    assert [(p["kind"], p["record"], p["count"]) for p in unread(out["WL-03"])] == [("snapped", 22, 1)]
    assert "cut short by the snap length" in out["WL-03"].message.en and "スナップ長" in out["WL-03"].message.ja


def test_a_snapped_frame_that_is_not_an_announcement_loses_nothing(tmp_path: Path) -> None:
    data = corpus(STREET)
    index = next(i for i, (off, incl, _) in enumerate(pcap_records(data))
                 if incl > 40 and data[off + 16] not in (0x80, 0x50))  # a data or control frame
    snapped = write(tmp_path, "snapped.cap", _snap(data, index, 30))
    assert statuses(snapped, ["im human 2015"]) == {Status.PASS}
    assert SURVEY.collect(CaptureTarget(f"wifi-capture:{snapped}", str(snapped)))["integrity"]["complete"]


# --- the pcap global header ----------------------------------------------------------------------------

def test_pcap_header_bit_flips(tmp_path: Path) -> None:
    data = corpus(STREET)
    ssids = ["im human 2015"]
    assert statuses(write(tmp_path, "whole.cap", data), ssids) == {Status.PASS}
    for bit in range(32):
        # snaplen (bytes 16-19): the records say their own lengths, so a damaged snaplen changes nothing
        path = write(tmp_path, "snap.cap", flip(data, 16 + bit // 8, 1 << bit % 8))
        assert statuses(path, ssids) == {Status.PASS}, bit
        # link type (bytes 20-23): another link type, or reserved bits set, is never a pass; the FCS-length
        # bits (26, 28-31) do not change how 802.11 frames are read
        path = write(tmp_path, "lt.cap", flip(data, 20 + bit // 8, 1 << bit % 8))
        expected = {Status.PASS} if bit in (26, 28, 29, 30, 31) else {Status.ERROR}
        assert statuses(path, ssids) == expected, bit
    for offset in (4, 5, 6, 7):  # version 2.4: another version is not a file libpcap would read
        for mask in (0x01, 0x02, 0x08, 0x80):
            assert statuses(write(tmp_path, "ver.cap", flip(data, offset, mask)), ssids) == {Status.ERROR}


# --- pcapng block lengths --------------------------------------------------------------------------

def test_pcapng_block_lengths_are_checked_before_any_field_is_read(tmp_path: Path) -> None:
    data = corpus(TRANSITION)
    ssids = ["WPA3-AP-Transition"]
    assert statuses(write(tmp_path, "whole.pcapng", data), ssids) == {Status.PASS}
    blocks = pcapng_blocks(data)
    idb = next(b for b in blocks if b[1] == 1)
    beacon = next(b for b in blocks[len(blocks) // 2:]  # after the radiotap header (its length at bytes 2-3)
                  if b[1] == 6 and data[b[0] + 28 + struct.unpack_from("<H", data, b[0] + 30)[0]] == 0x80)
    last = blocks[-1]
    for off, btype, blen in (idb, beacon, last):
        cases = {
            "too small": put32(data, off + 4, 12),
            "too small for its fields": put32(data, off + 4, 16),
            "not a multiple of 4": put32(data, off + 4, blen + 2),
            "beyond the end of the file": put32(data, off + 4, blen + 1024 * 1024),
            "absurd": put32(data, off + 4, 0xFFFFFFF0),
            "trailing length differs": put32(data, off + blen - 4, blen + 4),
            "leading length differs": put32(data, off + 4, blen + 4),
        }
        for what, damaged in cases.items():
            r = analyse(io.BytesIO(damaged))  # never struct.error, never the next block's bytes read as fields
            assert not r["complete"] and r["problems"][0]["offset"] == off, (btype, what, r["problems"])
            assert Status.PASS not in statuses(write(tmp_path, "d.pcapng", damaged), ssids), (btype, what)
    shb_len = blocks[0][2]
    for damaged in (put32(data, 4, 12), put32(data, 4, shb_len + 2), put32(data, shb_len - 4, shb_len + 4),
                    data[:20]):
        with pytest.raises(CaptureError):
            analyse(io.BytesIO(damaged))
        assert statuses(write(tmp_path, "shb.pcapng", damaged), ssids) == {Status.ERROR}


def test_a_pcapng_block_of_unknown_type_may_have_been_a_packet(tmp_path: Path) -> None:
    data = corpus(TRANSITION)
    off, _, _ = next(b for b in pcapng_blocks(data) if b[1] == 6)
    damaged = write(tmp_path, "t.pcapng", flip(data, off, 0x08))  # EPB (6) becomes type 14
    (problem,) = analyse(io.BytesIO(damaged.read_bytes()))["problems"]
    assert problem["kind"] == "unknown_block" and problem["offset"] == off
    assert statuses(damaged, ["WPA3-AP-Transition"]) == {Status.ERROR}


# --- gzip ---------------------------------------------------------------------------------------------

def test_gzip_cut_mid_stream_keeps_what_was_read(tmp_path: Path) -> None:
    gz = gzip.compress(corpus(STREET))
    cut = write(tmp_path, "cut.cap.gz", gz[:len(gz) // 2])
    out = judge(cut, ["HOME-1102"])  # its beacon is near the start: what was read already fails
    assert {o.status for o in out.values()} == {Status.FAIL}
    (problem,) = unread(out["WL-03"])
    assert problem["kind"] == "stream" and problem["record"] > 22
    assert statuses(cut, ["im human 2015"]) == {Status.ERROR}  # WPA2 in what was read: not a pass
    bad_crc = write(tmp_path, "crc.cap.gz", flip(gz, len(gz) - 8, 0x01))  # every byte there, CRC wrong
    assert statuses(bad_crc, ["im human 2015"]) == {Status.ERROR}
    junk = write(tmp_path, "junk.cap.gz", gz + b"not gzip")
    assert statuses(junk, ["im human 2015"]) == {Status.ERROR}
    assert statuses(write(tmp_path, "ok.cap.gz", gz), ["im human 2015"]) == {Status.PASS}


# --- property: any damage --------------------------------------------------------------------------

def _header_bytes(data: bytes) -> list[int]:
    """Offsets of the bytes of every record or block header (and pcapng trailer): where a flip does harm."""
    raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    if raw[:4] in PCAP_MAGICS:
        return list(range(24)) + [o + i for o, _, _ in pcap_records(raw) for i in range(16)]
    return [o + i for o, _, blen in pcapng_blocks(raw) for i in (*range(28), *range(blen - 4, blen))]


@pytest.fixture(scope="module")
def samples() -> list[tuple[str, bytes, list[str]]]:
    """(name, bytes, organisation SSIDs) of captures that pass whole: pcap, pcapng and gzip."""
    return [(STREET, corpus(STREET), ["im human 2015"]), (TRANSITION, corpus(TRANSITION), ["WPA3-AP-Transition"]),
            (LINKSYS + ".gz", gzip.compress(corpus(LINKSYS), mtime=0), ["linksys"])]


@settings(max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(which=st.integers(0, 2), where=st.integers(0, 2**31), header=st.booleans(), mask=st.integers(1, 255),
       truncate=st.booleans())
def test_any_flip_or_cut_raises_only_capture_error_and_never_passes_unless_whole(
        samples: list[tuple[str, bytes, list[str]]], tmp_path_factory: pytest.TempPathFactory, which: int,
        where: int, header: bool, mask: int, truncate: bool) -> None:
    name, data, ssids = samples[which]
    if truncate:
        damaged = data[:where % len(data)]
    else:
        spots = _header_bytes(data) if header and not name.endswith(".gz") else range(len(data))
        damaged = flip(data, spots[where % len(spots)], mask)
    with contextlib.suppress(CaptureError):  # the one exception the reader may raise
        analyse(io.BytesIO(damaged))
    path = write(tmp_path_factory.getbasetemp(), "mutant-" + name, damaged)
    # the collector raises nothing but CollectorError: survey() lets anything else out, failing the test
    for check, outcome in judge(path, ssids).items():
        if outcome.status is Status.PASS:
            assert whole(damaged) and not unread(outcome), (check, where, mask, truncate)
