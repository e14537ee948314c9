"""802.11 captures: real public captures against their documented ground truth, and beacons made with scapy.

The corpus is read where it lies (../shared/corpus/wifi-pcap) at test time;
its EXPECTED.md table (cross-checked with tshark when it was made) is parsed
here and every row is compared with what mamoru reads, frame counts included.
"""

from __future__ import annotations

import gzip
import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from collectors.wifi.frames import analyse
from tests.conftest import finding, require_corpus
from tests.wifi_frames import HOSTILE_SSIDS, SYNTHETIC, beacon, rsn, wpa, write_pcap, write_pcapng

# --- ground truth from EXPECTED.md ---------------------------------------------------------------

def _ssid(cell: str) -> bytes:
    cell = cell.strip()
    if cell.startswith("`"):
        return cell.strip("`").encode()
    m = re.search(r"non-UTF-8 bytes b'([^']*)'", cell)
    if m:
        return bytes(int(h, 16) for h in re.findall(r"\\x([0-9a-f]{2})", m.group(1)))
    m = re.search(r"hidden: (\d+) NUL", cell)
    if m:
        return b"\x00" * int(m.group(1))
    if "empty SSID" in cell:
        return b""
    raise AssertionError(f"unknown SSID cell {cell!r}")


def _suites(cell: str) -> tuple[str, tuple[str, ...], tuple[str, ...]] | None:
    if cell.strip() == "—":
        return None
    group, pairwise, akm = (p.strip() for p in cell.split("/"))
    return group, tuple(pairwise.split("+")), tuple(akm.split("+"))


LABELS = [("WPA1-PSK + WPA2", "wpa/wpa2"), ("WPA1-Enterprise + WPA2", "wpa/wpa2"), ("WPA1-", "wpa"),
          ("WPA2/WPA3 transition", "wpa2/wpa3"), ("WPA2-Enterprise", "enterprise"), ("WPA2-FILS", "enterprise"),
          ("WPA2-PSK", "wpa2"), ("WPA3-SAE", "wpa3"), ("WEP", "wep"), ("Open", "open")]


def expected_rows() -> list[dict[str, Any]]:
    text = require_corpus("wifi-pcap", "EXPECTED.md").read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split(" | ")]
        if len(cells) != 9 or not cells[0].startswith("| `") or cells[1] == "—":
            continue
        count = int(re.search(r"×(\d+)", cells[3]).group(1))  # type: ignore[union-attr]
        rows.append({
            "file": cells[0].strip("| `"), "bssid": cells[1].strip("`"), "ssid": _ssid(cells[2]),
            "count": count, "privacy": cells[4] == "1", "rsn": _suites(cells[5]),
            "mfp": {"MFPR": "required", "MFPC": "capable", "no": "no", "—": None, "n/a": None}[cells[6]],
            "wpa": _suites(cells[7]),
            "label": next(lab for prefix, lab in LABELS if cells[8].rstrip(" |").startswith(prefix)),
        })
    return rows


#: Documented differences (EXPECTED.md, "Edge cases"): the WEP-looking row is a record cut off by the end of
#: the file; mamoru drops an incomplete record as tshark does, instead of reading half a frame as WEP.
DROPPED = {("wifite2__handshake_has_1234.cap", "18:d6:c7:6d:6b:18", "wep")}


def _mine(rec: dict[str, Any]) -> dict[str, Any]:
    def suites(ie: dict[str, Any] | None) -> tuple[str, tuple[str, ...], tuple[str, ...]] | None:
        return None if ie is None else (ie["group"], tuple(ie["pairwise"]), tuple(ie["akm"]))

    return {"bssid": rec["bssid"], "ssid": bytes.fromhex(rec["ssid_hex"]), "count": rec["frames"],
            "privacy": rec["privacy"], "rsn": suites(rec["rsn"]), "mfp": rec["pmf"], "wpa": suites(rec["wpa"]),
            "label": rec["security"]}


def _analyse(path: Path) -> dict[str, Any]:
    with path.open("rb") as f:
        return analyse(f)


def test_every_corpus_capture_matches_expected() -> None:
    rows = expected_rows()
    assert len(rows) >= 90, "EXPECTED.md table not parsed"
    by_file: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_file.setdefault(r["file"], []).append(r)
    for name, want in sorted(by_file.items()):
        got = [_mine(n) for n in _analyse(require_corpus("wifi-pcap", name))["networks"]]
        want = [{k: v for k, v in w.items() if k != "file"} for w in want
                if (name, w["bssid"], w["label"]) not in DROPPED]
        key = lambda r: (r["bssid"], r["ssid"], r["label"], r["count"])  # noqa: E731
        assert sorted(got, key=key) == sorted(want, key=key), name


def test_all_corpus_files_are_covered() -> None:
    files = {p.name for p in require_corpus("wifi-pcap").iterdir() if p.name != "EXPECTED.md"}
    documented = {r["file"] for r in expected_rows()} | {"wifi-example-captures__wireshark-wpa-eap-tls.pcap"}
    assert files == documented


def test_link_types_and_formats() -> None:
    cases = {"aircrack-ng__wpa.cap": ([119], "pcap", False),  # Prism header
             "aircrack-ng__test1.pcap": ([127], "pcap", False),  # radiotap
             "aircrack-ng__wpa2.eapol.cap": ([105], "pcap", False),  # plain 802.11
             "wifi-example-captures__wpa3.pcapng": ([127], "pcapng", False),
             "Pyrit__wpa2psk-2WIRE972.dump.gz": ([105], "pcap", True)}
    for name, (lts, fmt, gz) in cases.items():
        r = _analyse(require_corpus("wifi-pcap", name))
        assert (r["linktypes"], r["format"], r["compressed"]) == (lts, fmt, gz), name


def test_truncated_last_record_is_dropped_not_misread() -> None:
    # The cut record is dropped, never half-read; and the read is not complete, so the judges may fail on what
    # was read but never pass (the findings are in test_capture_integrity.py).
    r = _analyse(require_corpus("wifi-pcap", "wifite2__handshake_has_1234.cap"))
    assert r["file_truncated"] is True and r["complete"] is False
    assert [(p["kind"], p["record"], p["offset"]) for p in r["problems"]] == [("truncated", 2190, 124931)]
    assert [n["security"] for n in r["networks"]] == ["wpa/wpa2"]  # no phantom WEP network
    r = _analyse(require_corpus("wifi-pcap", "aircrack-ng__pmkid-not-recognized.cap"))
    assert r["file_truncated"] is True and r["records"] == 20056  # tshark's count, not scapy's 20057
    assert r["complete"] is False and r["bytes_read"] == 1432616


def test_header_only_probe_responses_are_counted_as_malformed() -> None:
    r = _analyse(require_corpus("wifi-pcap", "Pyrit__wpapsk-virgin_broadband.dump.gz"))
    assert r["malformed"] > 0
    assert [(n["ssid"], n["security"], n["frames"]) for n in r["networks"]] == [("virgin broadband", "wpa", 335)]


def test_two_rsn_elements_use_the_first_and_say_so() -> None:
    r = _analyse(require_corpus("wifi-pcap", "aircrack-ng__pmkid-not-recognized.cap"))
    odd = [n for n in r["networks"] if n["anomalies"]]
    assert len(odd) == 1 and odd[0]["security"] == "wpa2" and odd[0]["frames"] == 3
    assert "2 RSN elements" in odd[0]["anomalies"][0]


def test_zero_bssid_and_hidden_ssids() -> None:
    nets = _analyse(require_corpus("wifi-pcap", "wifite2__handshake_not_exists.cap"))["networks"]
    zero = next(n for n in nets if n["bssid"] == "00:00:00:00:00:00")
    assert zero["hidden"] and any("all-zero BSSID" in a for a in zero["anomalies"])
    nul12 = next(n for n in nets if n["bssid"] == "46:32:c8:5c:0e:3d")
    assert nul12["hidden"] and nul12["ssid_hex"] == "00" * 12


def test_non_utf8_ssid_is_kept_exact() -> None:
    (net,) = _analyse(require_corpus("wifi-pcap", "aircrack-ng__Chinese-SSID-Name.pcap"))["networks"]
    assert net["ssid"] is None and net["ssid_hex"] == "b2e2cad4" and not net["hidden"]


def test_capture_without_beacons_has_no_networks() -> None:
    r = _analyse(require_corpus("wifi-pcap", "wifi-example-captures__wireshark-wpa-eap-tls.pcap"))
    assert r["records"] == 86 and r["networks"] == []


def test_cache_changes_nothing_but_speed() -> None:
    path = require_corpus("wifi-pcap", "aircrack-ng__pmkid-not-recognized.cap")
    with path.open("rb") as f:
        slow = analyse(f, cache=False)
    assert slow == _analyse(path)


# --- beacons made with scapy --------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("scapy")
    packets = [beacon(b, s, **kw) for b, s, kw, _, _ in SYNTHETIC]
    packets += [beacon(f"02:6e:00:00:00:{i:02x}", s, privacy=True, rsn_body=rsn()) for i, s in
                enumerate(HOSTILE_SSIDS)]
    return write_pcap(tmp_path_factory.mktemp("syn") / "synthetic.pcap", packets)


def test_synthetic_security_labels(synthetic: Path) -> None:
    nets = {n["bssid"]: n for n in _analyse(synthetic)["networks"]}
    for bssid, ssid, _, label, pmf in SYNTHETIC:
        assert (nets[bssid]["ssid_hex"], nets[bssid]["security"], nets[bssid]["pmf"]) == (ssid.hex(), label, pmf)
    assert nets["02:6d:00:00:00:04"]["owe_transition"] is True
    assert nets["02:6d:00:00:00:05"]["rsn"]["akm_suites"] == ["00-0f-ac:12"]


def test_pcapng_gzip_and_plain_80211_read_the_same(synthetic: Path, tmp_path: Path) -> None:
    from scapy.utils import rdpcap

    packets = rdpcap(str(synthetic))
    ng = write_pcapng(tmp_path / "s.pcapng", packets)
    gz = tmp_path / "s.pcap.gz"
    gz.write_bytes(gzip.compress(synthetic.read_bytes()))
    plain = write_pcap(tmp_path / "plain.pcap", [p.payload for p in packets])  # DLT 105, no radiotap
    base = _analyse(synthetic)["networks"]
    for other in (ng, gz, plain):
        assert _analyse(other)["networks"] == base, other.name


def _radiotap(flags: int, frame: bytes) -> bytes:
    # version, pad, length 9, present = Flags only, the flags byte
    return struct.pack("<BBHIB", 0, 0, 9, 0x2, flags) + frame


def test_radiotap_fcs_flag_and_bad_fcs(tmp_path: Path) -> None:
    pytest.importorskip("scapy")
    from scapy.utils import RawPcapWriter

    raw = bytes(beacon("02:6f:00:00:00:01", b"fcs", privacy=True, rsn_body=rsn(), radiotap=False))
    path = tmp_path / "fcs.pcap"
    with RawPcapWriter(str(path), linktype=127) as w:
        w.write(_radiotap(0x10, raw + b"\xde\xad\xbe\xef"))  # FCS present: must be stripped
        w.write(_radiotap(0x10 | 0x40, raw + b"\x00\x00\x00\x00"))  # bad FCS: must be ignored
    r = _analyse(path)
    assert r["bad_link"] == 1
    assert [(n["ssid"], n["security"], n["frames"]) for n in r["networks"]] == [("fcs", "wpa2", 1)]


def test_snapped_and_garbage_frames_are_never_guessed(tmp_path: Path) -> None:
    pytest.importorskip("scapy")
    from scapy.utils import RawPcapWriter

    raw = bytes(beacon("02:6f:00:00:00:02", b"snap", privacy=True, rsn_body=rsn(), radiotap=False))
    path = tmp_path / "snap.pcap"
    with RawPcapWriter(str(path), linktype=105, snaplen=60) as w:
        w.write(raw[:60])  # cut by snaplen before the RSN element: it would read as WEP
    path.write_bytes(path.read_bytes()[:-(60 + 16)] + struct.pack("<IIII", 0, 0, 60, len(raw)) + raw[:60])
    r = _analyse(path)
    assert r["snapped"] == 1 and r["networks"] == []
    assert r["complete"] is False and [p["kind"] for p in r["problems"]] == ["snapped"]  # and so never a pass
    garbage = raw[:42] + bytes([48, 200]) + b"\x01" * 20  # an element that overruns the frame
    bad = tmp_path / "bad.pcap"
    with RawPcapWriter(str(bad), linktype=105) as w:
        w.write(garbage)
    assert _analyse(bad)["malformed"] == 1 and _analyse(bad)["networks"] == []


def test_not_a_capture_and_absurd_record_lengths(tmp_path: Path) -> None:
    from collectors.wifi.pcap import CaptureError

    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture")
    with pytest.raises(CaptureError):
        _analyse(junk)
    huge = tmp_path / "huge.pcap"
    huge.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 105)
                     + struct.pack("<IIII", 0, 0, 2**31, 2**31))
    r = _analyse(huge)
    assert r["corrupt"] and r["networks"] == [] and r["complete"] is False


def test_wpa_element_defaults_and_broken_elements() -> None:
    from collectors.wifi import ie

    assert ie.parse_rsn(b"\x01\x00")["akm"] == ["802.1X"]  # all optional fields absent: the defaults
    with pytest.raises(ie.ElementError):
        ie.parse_rsn(b"\x01\x00" + b"\x00\x0f\xac\x04" + b"\x05\x00\x00\x0f\xac\x04")  # 5 suites announced, 1 there
    w = ie.parse_wpa(wpa()[4:])
    assert (w["group"], w["pairwise"], w["akm"]) == ("TKIP", ["TKIP"], ["PSK"])


# --- end to end through the CLI ------------------------------------------------------------------

def _policy(tmp_path: Path, ssids: list[str], extra: str = "") -> Path:
    p = tmp_path / "policy.yaml"
    p.write_text("wifi:\n  ssids: " + json.dumps(ssids) + "\n" + extra, encoding="utf-8")
    return p


def test_cli_capture_weak_org_network_fails(run_cli: Any, tmp_path: Path) -> None:
    cap = require_corpus("wifi-pcap", "ssid-logger__beacons.pcap")
    rc, doc, out, _ = run_cli("scan", "--wifi-capture", str(cap), "--policy",
                              str(_policy(tmp_path, ["FreeWifi_secure", "Freebox-898539"])),
                              "--check", "WL-03", "--check", "TX-01", "--lang", "en")
    assert rc == 1 and doc is not None
    wl = finding(doc, "WL-03")
    assert wl["status"] == "fail"
    # ce:e2:… is WPA1-Enterprise, e4:9e:…:3c is WPA2-Enterprise allowing TKIP; Freebox-898539 is fine.
    assert "ce:e2:1b:9b:a7:ae" in wl["message"]["en"] and "WPA1 allowed" in wl["message"]["en"]
    assert "e4:9e:12:89:85:3c" in wl["message"]["en"] and "TKIP allowed" in wl["message"]["en"]
    assert "Freebox-898539 [BSSID" not in wl["message"]["en"]
    assert len(wl["evidence"]["organisation"]) == 3 and wl["evidence"]["neighbours_total"] == 26
    assert finding(doc, "TX-01")["status"] == "fail"


def test_cli_capture_transition_network_passes(run_cli: Any, tmp_path: Path) -> None:
    cap = require_corpus("wifi-pcap", "wifi-example-captures__wpa3_transition_wpa3client_24ghz.pcapng")
    rc, doc, _, _ = run_cli("scan", "--wifi-capture", str(cap), "--policy",
                            str(_policy(tmp_path, ["WPA3-AP-Transition"])), "--check", "WL-03")
    assert rc == 0 and doc is not None
    wl = finding(doc, "WL-03")
    assert wl["status"] == "pass" and "PSK+SAE" in wl["message"]["en"]
    (org,) = wl["evidence"]["organisation"]
    assert org["rsn"]["akm_suites"] == ["00-0f-ac:2", "00-0f-ac:8"] and org["pmf"] == "capable"
    assert [n["ssid"] for n in wl["evidence"]["neighbours"]] == ["NETGEAR82"]  # listed, not judged


def test_cli_require_pmf(run_cli: Any, tmp_path: Path) -> None:
    cap = require_corpus("wifi-pcap", "aircrack-ng__wpa2-psk-linksys.cap")
    pol = _policy(tmp_path, ["linksys"], "  require_pmf: true\n")
    rc, doc, _, _ = run_cli("scan", "--wifi-capture", str(cap), "--policy", str(pol), "--check", "WL-03")
    assert doc is not None and finding(doc, "WL-03")["status"] == "fail"
    assert "PMF" in finding(doc, "WL-03")["message"]["en"]


def test_cli_org_ssid_not_seen_and_no_ssids_are_errors(run_cli: Any, tmp_path: Path) -> None:
    cap = require_corpus("wifi-pcap", "aircrack-ng__wpa2.eapol.cap")
    _, doc, _, _ = run_cli("scan", "--wifi-capture", str(cap), "--policy", str(_policy(tmp_path, ["office"])),
                           "--check", "WL-03")
    assert doc is not None and finding(doc, "WL-03")["status"] == "error"
    _, doc, _, _ = run_cli("scan", "--wifi-capture", str(cap), "--check", "WL-03")
    assert doc is not None and finding(doc, "WL-03")["status"] == "error"
    assert "wifi.ssids" in finding(doc, "WL-03")["message"]["en"]
    cap = require_corpus("wifi-pcap", "wifi-example-captures__wireshark-wpa-eap-tls.pcap")
    _, doc, _, _ = run_cli("scan", "--wifi-capture", str(cap), "--policy", str(_policy(tmp_path, ["x"])),
                           "--check", "WL-03")
    assert doc is not None and finding(doc, "WL-03")["status"] == "error"


def test_cli_garbage_capture_is_an_error_not_a_pass(run_cli: Any, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"\x00" * 100)
    _, doc, _, _ = run_cli("scan", "--wifi-capture", str(junk), "--policy", str(_policy(tmp_path, ["x"])),
                           "--check", "WL-03", "--check", "TX-01")
    assert doc is not None
    assert {finding(doc, c)["status"] for c in ("WL-03", "TX-01")} == {"error"}


def test_cli_hostile_ssids_are_exact_in_json_and_escaped_on_screen(run_cli: Any, synthetic: Path,
                                                                   tmp_path: Path) -> None:
    pol = tmp_path / "hostile.yaml"
    # Two of the hostile SSIDs are the organisation's (e.g. an attacker-controlled name in the ledger).
    pol.write_text('wifi:\n  ssids: ["\\e[31mEVIL\\e]0;pwned\\a", "[bold red]rich[/]"]\n', encoding="utf-8")
    rc, doc, out, _ = run_cli("scan", "--wifi-capture", str(synthetic), "--policy", str(pol), "--check", "WL-03",
                              "--lang", "en")
    assert doc is not None
    wl = finding(doc, "WL-03")
    assert wl["status"] == "pass"
    assert {o["ssid"] for o in wl["evidence"]["organisation"]} == {"\x1b[31mEVIL\x1b]0;pwned\x07", "[bold red]rich[/]"}
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[31mEVIL" in out
    assert "[bold red]rich[/]" in out  # shown literally, not interpreted as markup
    assert "\x1b" not in wl["message"]["en"]  # messages are escaped; evidence stays exact
    neighbours = {n["ssid_hex"]: n for n in wl["evidence"]["neighbours"]}
    assert neighbours["fffe80626164"]["ssid"] is None  # invalid UTF-8: hex only
    assert "6f66666963652d7769666900" in neighbours  # 'office-wifi\0' is not 'office-wifi'


def test_capture_target_refuses_fifo_and_missing(tmp_path: Path) -> None:
    import os

    from agent.errors import ConfigError
    from agent.targets.base import FileUnreadable
    from agent.targets.wifi import CaptureTarget

    with pytest.raises(ConfigError):
        CaptureTarget.from_spec(f"wifi-capture:{tmp_path / 'nope.pcap'}")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    t = CaptureTarget(f"wifi-capture:{fifo}", str(fifo))
    with pytest.raises(FileUnreadable):
        t.open_capture()
