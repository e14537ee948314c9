"""wpa_supplicant's control socket: a real daemon where one can run, a protocol-speaking fake for scan results.

This machine has no radio, so a real wpa_supplicant (``-Dwired`` on a veth)
answers PING, STATUS, ATTACH, SCAN and an empty SCAN_RESULTS, but never finds
a network. Scan results therefore come from a fake daemon at the lowest
boundary: a unix datagram socket speaking the same text protocol, with flag
strings in wpa_supplicant's own format and ``BSS`` replies carrying the raw
elements of real beacons (taken from a public capture) and scapy-made ones.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.targets.wifi import WifiTarget
from collectors.wifi import wpa_ctrl
from collectors.wifi.survey import WifiSurvey
from tests.conftest import finding, require, require_corpus, require_root, require_tool
from tests.wifi_frames import beacon, rsn


def printf_encode(raw: bytes) -> str:
    """wpa_supplicant's printf_encode (src/utils/common.c), for SSIDs in replies."""
    out = []
    for b in raw:
        if b == 0x22:
            out.append('\\"')
        elif b == 0x5C:
            out.append("\\\\")
        elif b == 0x1B:
            out.append("\\e")
        elif b == 0x0A:
            out.append("\\n")
        elif b == 0x0D:
            out.append("\\r")
        elif b == 0x09:
            out.append("\\t")
        elif 32 <= b < 127:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def _elements(pkt: Any) -> tuple[int, str]:
    """(capability, element hex) of a scapy beacon."""
    raw = bytes(pkt)
    return int.from_bytes(raw[34:36], "little"), raw[36:].hex()


def _corpus_beacon(name: str, ssid: bytes) -> tuple[str, int, str]:
    """(bssid, capability, element hex) of the first beacon of ``ssid`` in a real capture."""
    from collectors.wifi.frames import strip_link
    from collectors.wifi.pcap import ReadStats, read_records

    with require_corpus("wifi-pcap", name).open("rb") as f:
        for lt, frame, _ in read_records(f, ReadStats()):
            d = strip_link(lt, frame)
            if d and d[0] == 0x80 and ssid in d:
                return d[16:22].hex(":"), int.from_bytes(d[34:36], "little"), d[36:].hex()
    raise AssertionError("beacon not found")


class FakeWpaSupplicant:
    """A unix datagram server that answers like wpa_supplicant 2.10 (replies, events to ATTACHed clients)."""

    def __init__(self, path: Path, bss: list[dict[str, Any]], status: dict[str, str]) -> None:
        self.path = path
        self.bss = bss
        self.status = status
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.attached: set[str] = set()
        self.commands: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _bss_reply(self, b: dict[str, Any]) -> str:
        lines = [f"id={b['id']}", f"bssid={b['bssid']}", f"freq={b['freq']}", "beacon_int=100",
                 f"capabilities=0x{b['cap']:04x}", "qual=0", "noise=-89", f"level={b['level']}",
                 "tsf=0000000000000000", "age=3"]
        if b.get("ie"):
            lines.append(f"ie={b['ie']}")
        lines += [f"flags={b['flags']}", f"ssid={printf_encode(b['ssid'])}", "snr=45", "est_throughput=65000"]
        return "\n".join(lines) + "\n"

    def answer(self, cmd: str) -> str:
        if cmd == "PING":
            return "PONG\n"
        if cmd in ("ATTACH", "DETACH", "SCAN"):
            return "OK\n"
        if cmd == "SCAN_RESULTS":
            rows = ["bssid / frequency / signal level / flags / ssid"]
            rows += [f"{b['bssid']}\t{b['freq']}\t{b['level']}\t{b['flags']}\t{printf_encode(b['ssid'])}"
                     for b in self.bss]
            return "\n".join(rows) + "\n"
        if cmd == "STATUS":
            return "".join(f"{k}={v}\n" for k, v in self.status.items())
        if cmd == "BSS FIRST":
            return self._bss_reply(self.bss[0]) if self.bss else ""
        if cmd.startswith("BSS NEXT-"):
            ids = [b["id"] for b in self.bss]
            i = ids.index(int(cmd[9:])) + 1
            return self._bss_reply(self.bss[i]) if i < len(self.bss) else ""
        return "UNKNOWN COMMAND\n"

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                data, client = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            cmd = data.decode()
            self.commands.append(cmd)
            if cmd == "ATTACH":
                self.attached.add(client)
            elif cmd == "DETACH":
                self.attached.discard(client)
            with contextlib.suppress(OSError):
                self.sock.sendto(self.answer(cmd).encode(), client)
            if cmd == "SCAN":
                for c in list(self.attached):
                    with contextlib.suppress(OSError):
                        self.sock.sendto(b"<3>CTRL-EVENT-SCAN-STARTED ", c)
                        self.sock.sendto(b"<2>CTRL-EVENT-SCAN-RESULTS ", c)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def ctrl_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="mm6wpa-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


WEIRD = b'office "wifi"\\\x1b\xe2\x9c\x93'


@pytest.fixture
def fake(ctrl_dir: Path) -> Iterator[FakeWpaSupplicant]:
    pytest.importorskip("scapy")
    t_bssid, t_cap, t_ie = _corpus_beacon("wifi-example-captures__wpa3_transition_wpa3client_24ghz.pcapng",
                                         b"WPA3-AP-Transition")
    wep_cap, wep_ie = _elements(beacon("02:77:00:00:00:02", WEIRD, privacy=True, radiotap=False))
    sae_cap, sae_ie = _elements(beacon("02:77:00:00:00:05", b"sae-only", privacy=True, radiotap=False,
                                       rsn_body=rsn(akm=["SAE"], mfpr=True, mfpc=True)))
    bss = [
        {"id": 3, "bssid": t_bssid, "freq": 2437, "level": -40, "cap": t_cap, "ie": t_ie,
         "flags": "[WPA2-PSK+SAE-CCMP][ESS]", "ssid": b"WPA3-AP-Transition"},
        {"id": 7, "bssid": "02:77:00:00:00:02", "freq": 2412, "level": -60, "cap": wep_cap, "ie": wep_ie,
         "flags": "[WEP][ESS]", "ssid": WEIRD},
        {"id": 8, "bssid": "02:77:00:00:00:03", "freq": 2462, "level": -70, "cap": 0x0411, "ie": "",
         "flags": "[WPA-PSK-TKIP][WPA2-PSK-CCMP+TKIP-preauth][WPS][ESS]", "ssid": b"old-router"},
        {"id": 9, "bssid": "02:77:00:00:00:04", "freq": 5180, "level": -50, "cap": 0x0001, "ie": "",
         "flags": "[OWE-TRANS-OPEN][ESS]", "ssid": b"cafe"},
        {"id": 12, "bssid": "02:77:00:00:00:05", "freq": 5200, "level": -55, "cap": sae_cap, "ie": sae_ie,
         "flags": "[WPA2-SAE-CCMP][SAE-H2E][ESS]", "ssid": b"sae-only"},
    ]
    status = {"bssid": t_bssid, "freq": "2437", "ssid": "WPA3-AP-Transition", "id": "0", "mode": "station",
              "pairwise_cipher": "CCMP", "group_cipher": "CCMP", "key_mgmt": "SAE", "wpa_state": "COMPLETED",
              "address": "02:77:00:00:00:99"}
    server = FakeWpaSupplicant(ctrl_dir / "wlan0", bss, status)
    yield server
    server.close()


def test_survey_reads_exact_elements_and_flags(fake: FakeWpaSupplicant, ctrl_dir: Path) -> None:
    facts = WifiSurvey().collect(WifiTarget("wifi:", None, ctrl_dirs=[str(ctrl_dir)]))
    assert facts["source"] == "wpa_supplicant" and facts["interfaces"] == ["wlan0"]
    nets = {n["bssid"]: n for n in facts["networks"]}
    transition = nets["00:a0:57:3b:41:18"]
    assert transition["security"] == "wpa2/wpa3" and transition["pmf"] == "capable"
    assert transition["rsn"]["akm_suites"] == ["00-0f-ac:2", "00-0f-ac:8"]  # from the raw elements
    weird = nets["02:77:00:00:00:02"]
    assert weird["security"] == "wep" and bytes.fromhex(weird["ssid_hex"]) == WEIRD
    old = nets["02:77:00:00:00:03"]  # no elements in BSS: the flags are parsed
    assert old["security"] == "wpa/wpa2" and old["wpa"]["pairwise"] == ["TKIP"]
    assert old["rsn"]["pairwise"] == ["CCMP", "TKIP"] and old["rsn"]["akm"] == ["PSK"]
    cafe = nets["02:77:00:00:00:04"]
    assert cafe["security"] == "open" and cafe["owe_transition"] is True
    assert nets["02:77:00:00:00:05"]["security"] == "wpa3" and nets["02:77:00:00:00:05"]["pmf"] == "required"
    (link,) = facts["connected"]
    assert (link["ssid"], link["security"], link["pairwise"]) == ("WPA3-AP-Transition", "wpa3", ["CCMP"])
    assert fake.commands[:4] == ["PING", "ATTACH", "SCAN", "DETACH"]
    assert not any(c.startswith(("GET_NETWORK", "SET", "ADD_NETWORK")) for c in fake.commands)


def test_cli_live_survey_against_the_fake(fake: FakeWpaSupplicant, ctrl_dir: Path, run_cli: Any,
                                          monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import agent.targets.wifi as wifi_mod

    monkeypatch.setattr(wifi_mod, "DEFAULT_CTRL_DIRS", (str(ctrl_dir),))
    pol = tmp_path / "p.yaml"
    pol.write_text('wifi:\n  ssids: ["WPA3-AP-Transition", "old-router", "office \\"wifi\\"\\\\\\e✓"]\n',
                   encoding="utf-8")
    rc, doc, out, _ = run_cli("scan", "--wifi", "--policy", str(pol), "--check", "WL-03", "--check", "TX-01",
                              "--lang", "en")
    assert rc == 1 and doc is not None
    wl = finding(doc, "WL-03")
    assert wl["status"] == "fail" and "old-router" in wl["message"]["en"] and "TKIP" in wl["message"]["en"]
    assert "WPA3-AP-Transition [BSSID" not in wl["message"]["en"]
    tx = finding(doc, "TX-01")
    assert tx["status"] == "fail" and tx["evidence"]["connected"][0]["security"] == "wpa3"
    assert "\x1b" not in out and "\x1b" not in wl["message"]["en"]  # ESC in an SSID is shown escaped
    assert 'office "wifi"\\\\x1b✓ [BSSID 02:77:00:00:00:02]: WEP' in wl["message"]["en"]
    assert {bytes.fromhex(o["ssid_hex"]) for o in wl["evidence"]["organisation"]} >= {WEIRD}


@pytest.mark.parametrize(("flags", "label"), [
    ("[WPA2-PSK+SAE-CCMP][ESS]", "wpa2/wpa3"), ("[WPA2-SAE-CCMP][ESS]", "wpa3"), ("[RSN-SAE-CCMP][MESH]", "wpa3"),
    ("[WPA2-EAP-CCMP][ESS]", "enterprise"), ("[WPA2-EAP-SUITE-B-192-GCMP-256][ESS]", "enterprise"),
    ("[WPA2-OWE-CCMP][OWE-TRANS][ESS]", "owe"), ("[WEP][ESS]", "wep"), ("[ESS]", "open"),
    ("[WPA-PSK-CCMP+TKIP][ESS]", "wpa"), ("[WPA2-FT/PSK+PSK-CCMP][ESS]", "wpa2"),
    ("[WPA2-?][ESS]", "unknown"), ("[WPA2-PSK-SHA256-CCMP-256][ESS]", "wpa2"),
])
def test_flag_strings(flags: str, label: str) -> None:
    table = f"bssid / frequency / signal level / flags / ssid\n02:00:00:00:00:01\t2412\t-50\t{flags}\tx\n"
    (net,) = wpa_ctrl.parse_scan_results(table)
    assert net["security"] == label


def test_flag_ciphers_with_dashes() -> None:
    table = "bssid / frequency / signal level / flags / ssid\n" \
            "02:00:00:00:00:01\t2412\t-50\t[WPA2-PSK-SHA256-CCMP-256][ESS]\tx\n"
    (net,) = wpa_ctrl.parse_scan_results(table)
    assert net["rsn"]["akm"] == ["PSK-SHA256"] and net["rsn"]["pairwise"] == ["CCMP-256"]


def test_printf_decode_round_trip() -> None:
    for raw in (WEIRD, b"\x00\x01\xff", "日本語".encode(), b"plain"):
        assert wpa_ctrl.printf_decode(printf_encode(raw)) == raw


def test_silent_socket_is_an_error(ctrl_dir: Path) -> None:
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    mute.bind(str(ctrl_dir / "wlan9"))
    try:
        with wpa_ctrl.WpaCtrl(str(ctrl_dir / "wlan9"), timeout=0.3) as c, pytest.raises(wpa_ctrl.CtrlError):
            c.request("PING")
    finally:
        mute.close()


def test_not_a_scan_table_is_an_error() -> None:
    with pytest.raises(wpa_ctrl.CtrlError):
        wpa_ctrl.parse_scan_results("FAIL\n")


@pytest.mark.needs_service
@pytest.mark.needs_root
def test_real_wpa_supplicant_speaks_the_same_protocol(ctrl_dir: Path) -> None:
    require_root()
    require_tool("wpa_supplicant", "ip")
    ns = f"mm6wpa{os.getpid() % 10000}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    proc = None
    try:
        subprocess.run(["ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "up"], check=True)
        proc = subprocess.Popen(["ip", "netns", "exec", ns, "wpa_supplicant", "-Dwired", "-ieth0", "-C",
                                 str(ctrl_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.monotonic() + 10
        while not (ctrl_dir / "eth0").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        require((ctrl_dir / "eth0").exists(), "wpa_supplicant did not create its control socket")
        result = wpa_ctrl.survey(str(ctrl_dir / "eth0"), scan_timeout=1.0)
        assert result["interface"] == "eth0" and result["networks"] == [] and result["connected"] is None
        assert wpa_ctrl.control_sockets((str(ctrl_dir),), None) == [str(ctrl_dir / "eth0")]
    finally:
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait(5)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def test_silent_daemon_falls_back_to_networkmanager(ctrl_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from collectors.base import CollectorError

    mute = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    mute.bind(str(ctrl_dir / "wlan0"))
    monkeypatch.setenv("PATH", str(ctrl_dir))  # and no nmcli either
    try:
        with pytest.raises(CollectorError) as e:
            WifiSurvey().collect(WifiTarget("wifi:", None, ctrl_dirs=[str(ctrl_dir)]))
        assert "no reply to PING" in str(e.value) and "nmcli is not available" in str(e.value)
    finally:
        mute.close()
