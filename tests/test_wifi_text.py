"""The operating systems' own Wi-Fi scanners (nmcli, netsh, airport), read from their real, captured output.

There is no Wi-Fi radio here, so the outputs are those published by other
projects (../shared/corpus/wifi-scan-text, read at test time): NetworkManager's
own client test transcript, Windows netsh in English, German, Spanish and
Dutch, and macOS airport (old and Monterey style).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from agent.targets.base import CommandResult
from agent.targets.wifi import WifiTarget
from collectors.base import CollectorError
from collectors.wifi import airport, netsh, nmcli
from collectors.wifi.survey import WifiSurvey
from tests.conftest import finding, require_corpus


def _text(name: str) -> str:
    return netsh.decode(require_corpus("wifi-scan-text", name).read_bytes())


def _nm_blocks() -> dict[tuple[str, str], str]:
    """NetworkManager's test transcript: (cmd, lang) -> stdout."""
    text = _text("NetworkManager__test-client_test_002.expected")
    out = {}
    for block in text.split("<<<\n"):
        if "cmd: " not in block:
            continue
        head, _, body = block.partition(">>>\n")
        cmd = re.search(r"^cmd: (.*)$", head, re.M).group(1).strip()  # type: ignore[union-attr]
        lang = re.search(r"^lang: (.*)$", head, re.M).group(1).strip()  # type: ignore[union-attr]
        out[(cmd, lang)] = body
    return out


def test_nmcli_terse_from_networkmanager_transcript() -> None:
    blocks = _nm_blocks()
    fields = ["NAME", "IN-USE", "BSSID", "SSID", "MODE", "BAND", "CHAN", "RATE", "SIGNAL", "BARS", "SECURITY"]
    for lang in ("C", "pl_PL.UTF-8"):
        nets = nmcli.parse(blocks[("$NMCLI -f AP -mode tabular -t d show wlan0", lang)], fields)
        assert [(n["bssid"], n["ssid"], n["security"]) for n in nets] == [
            ("60:b3:25:25:e2:c8", "wlan0-ap-3", "wpa3"),
            ("90:b1:5f:9e:e0:e3", "wlan0-ap-1", "wpa"),
            ("61:66:d2:e7:44:a2", "wlan0-ap-2", "wpa/wpa2"),
        ], lang


def test_nmcli_flags_from_the_all_table() -> None:
    """The -f ALL table carries WPA-FLAGS/RSN-FLAGS; re-emitted in the terse form mamoru asks for."""
    table = _nm_blocks()[("$NMCLI -f ALL d wifi", "C")].split("\n\n")[0].splitlines()
    header = table[0]
    cols = [m.start() for m in re.finditer(r"\S+", header)]
    names = header.split()

    def cell(line: str, name: str) -> str:
        i = names.index(name)
        return line[cols[i]:cols[i + 1] if i + 1 < len(cols) else None].strip()

    lines = []
    for row in table[1:]:
        values = [cell(row, f) if f != "IN-USE" else "" for f in nmcli.FIELDS]
        lines.append(":".join(v.replace("\\", "\\\\").replace(":", "\\:") for v in values))
    nets = {n["ssid"]: n for n in nmcli.parse("\n".join(lines))}
    ap3 = nets["wlan0-ap-3"]
    assert ap3["ssid_hex"] == "776c616e302d61702d33"
    assert (ap3["security"], ap3["rsn"]["akm"], ap3["rsn"]["pairwise"], ap3["rsn"]["group"]) == \
        ("wpa3", ["SAE"], ["TKIP", "CCMP"], "TKIP")
    assert nets["wlan0-ap-2"]["security"] == "wpa/wpa2" and nets["wlan0-ap-1"]["wpa"]["akm"] == ["PSK"]


def test_nmcli_security_column_only() -> None:
    nets = nmcli.parse(_text("access_points__nmcli_test.txt"), ["SSID", "BSSID", "SIGNAL", "SECURITY"])
    assert Counter(n["security"] for n in nets) == Counter({"wpa/wpa2": 4, "open": 2, "wpa": 1, "enterprise": 1,
                                                            "wpa2": 1})
    assert nets[0]["bssid"] == "00:00:xx:00:0x:x0"  # escaped colons undone, not split
    assert nmcli.split_terse(r"a\:b:c\\:d") == ["a:b", "c\\", "d"]


@pytest.mark.parametrize(("name", "ssids", "bssids", "labels"), [
    ("wifiscan__netsh_en_complex01.txt", 8, 86, {"wpa2": 85, "wpa": 1}),
    ("wifiscan__netsh_de_complex01.txt", 8, 86, {"wpa2": 85, "wpa": 1}),  # German labels, "BSSIDD"
    ("wifiscan__netsh_sp.txt", 7, 12, {"wpa2": 6, "enterprise": 3, "open": 3}),  # with Band and Bss Load
    ("access_points__windows_test.txt", 2, 37, {"enterprise": 37}),  # Dutch
])
def test_netsh_in_any_language(name: str, ssids: int, bssids: int, labels: dict[str, int]) -> None:
    nets = netsh.parse(_text(name))
    assert len({n["ssid"] for n in nets}) == ssids
    assert len(nets) == bssids and all(n["bssid"] for n in nets)
    assert Counter(n["security"] for n in nets) == Counter(labels)
    assert all(n["signal"] is not None for n in nets)


def test_netsh_english_and_german_agree() -> None:
    strip = [(n["ssid"], n["bssid"], n["security"], n["signal"]) for n in netsh.parse(_text(
        "wifiscan__netsh_en_complex01.txt"))]
    assert strip == [(n["ssid"], n["bssid"], n["security"], n["signal"]) for n in netsh.parse(_text(
        "wifiscan__netsh_de_complex01.txt"))]


def test_netsh_unknown_values_are_not_open() -> None:
    text = "SSID 1 : x\n    Network type : Infrastructure\n    Authentication : WPA9-Quantum\n" \
           "    Encryption : CCMP\n    BSSID 1 : 00:11:22:33:44:55\n         Signal : 50%\n"
    (net,) = netsh.parse(text)
    assert net["security"] == "unknown" and net["anomalies"]


@pytest.mark.parametrize(("name", "count", "labels"), [
    ("wifiscan__airport01.txt", 36, {"wpa2": 35, "wpa": 1}),
    ("wifiscan__airport02.txt", 4, {"wpa/wpa2": 3, "wpa2": 1}),
    ("access_points__osx_test.txt", 5, {"wpa/wpa2": 4, "wpa": 1}),
    ("access_points__osx_monterey_test.txt", 5, {"wpa/wpa2": 4, "wpa": 1}),
])
def test_airport(name: str, count: int, labels: dict[str, int]) -> None:
    nets = airport.parse(_text(name))
    assert len(nets) == count and Counter(n["security"] for n in nets) == Counter(labels)


def test_airport_columns_and_ciphers() -> None:
    nets = airport.parse(_text("wifiscan__airport02.txt"))
    hidden = nets[0]
    assert hidden["hidden"] and hidden["bssid"] == "7c:b7:33:ae:3b:06"
    assert (hidden["wpa"]["pairwise"], hidden["wpa"]["group"]) == (["CCMP", "TKIP"], "TKIP")
    assert nets[3]["ssid"] == "Visitor Raupo" and nets[2]["channel"] == 9  # "9,-1"
    monterey = airport.parse(_text("access_points__osx_monterey_test.txt"))
    assert all(n["bssid"] is None for n in monterey)  # redacted without location permission


class _Scanner(WifiTarget):
    """This machine has no radio: the OS scanner's real output is returned at the command boundary."""

    def __init__(self, outputs: dict[str, bytes], os_name: str, ctrl_dir: Path) -> None:
        super().__init__("wifi:", None, ctrl_dirs=[str(ctrl_dir)])
        self.outputs = outputs
        self.os = os_name
        self.calls: list[tuple[str, ...]] = []

    def run(self, argv: Any, **kw: Any) -> CommandResult:
        self.calls.append(tuple(argv))
        name = argv[0].rsplit("/", 1)[-1]
        if name not in self.outputs:
            from agent.targets.base import CommandUnavailable

            raise CommandUnavailable(f"{name}: command not found")
        return CommandResult(argv=tuple(argv), returncode=0, stdout=self.outputs[name], stderr=b"")


def test_survey_picks_the_os_scanner(tmp_path: Path) -> None:
    raw = require_corpus("wifi-scan-text", "wifiscan__netsh_de_complex01.txt").read_bytes()
    facts = WifiSurvey().collect(_Scanner({"netsh": raw}, "windows", tmp_path))
    assert facts["source"] == "netsh" and len(facts["networks"]) == 86
    raw = require_corpus("wifi-scan-text", "wifiscan__airport01.txt").read_bytes()
    t = _Scanner({"airport": raw}, "darwin", tmp_path)
    facts = WifiSurvey().collect(t)
    assert facts["source"] == "airport" and t.calls == [airport.COMMAND]


def test_survey_without_any_scanner_is_an_error(tmp_path: Path) -> None:
    t = _Scanner({}, "linux", tmp_path)
    with pytest.raises(CollectorError) as e:
        WifiSurvey().collect(t)
    assert "wpa_supplicant" in str(e.value) and "nmcli is not available" in str(e.value)
    assert t.calls == [nmcli.COMMAND]


def test_cli_wifi_without_radio_reports_error(run_cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import agent.targets.wifi as wifi_mod

    monkeypatch.setattr(wifi_mod, "DEFAULT_CTRL_DIRS", (str(tmp_path / "none"),))
    monkeypatch.setenv("PATH", str(tmp_path))  # no nmcli either
    rc, doc, _, _ = run_cli("scan", "--wifi", "--check", "WL-03", "--check", "TX-01", "--check", "WL-01")
    assert doc is not None
    assert finding(doc, "WL-03")["status"] == "error"
    assert finding(doc, "TX-01")["status"] == "error"
    # The air says nothing about MAC filters: a person must answer, once, as the organisation (OR-16).
    assert finding(doc, "WL-01")["status"] == "not_applicable"
    assert finding(doc, "OR-16", "organisation")["status"] == "manual"
    assert doc["targets"][0]["kind"] == "wifi"

