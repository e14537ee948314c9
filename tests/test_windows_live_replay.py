"""The PowerShell batch and the live Windows judges, on replays of documented outputs (no Windows here).

The batch runs a REAL subprocess (``powershell_batch``, the runner the PC itself uses, given the replaying
stand-in ``tests/windows_ps_standin.py`` instead of ``powershell.exe``): the stand-in checks that stdin is
the shipped driver and part scripts, and answers from ``tests/fixtures/windows_live/*.json`` (sources in
that folder's README and each fixture's ``_sources``). Everything after the bytes (frames, JSON, registry
answers, facts, verdicts) is the production code. Every status asserted follows from the fixture's facts.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agent.targets.ps
from agent.config.policy import load_policy
from agent.runner import evaluate_target
from agent.targets import powershell as ps
from agent.targets.base import FileStat, PlatformInfo, Target
from agent.targets.local import powershell_batch
from agent.targets.powershell import PartError, PartSpec, PowerShellBatch
from agent.targets.registry import RegistryReader, RegQuery
from agent.targets.registry_powershell import PowerShellRegistry
from collectors.windows.live import BITLOCKER, DEFENDER, HOTFIX
from collectors.windows.settings import SCREENLOCK
from reports.model import Finding
from tests.windows_collect import collect_windows

STANDIN = Path(__file__).resolve().parent / "windows_ps_standin.py"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "windows_live"
SCRIPTS = Path(agent.targets.ps.__file__).resolve().parent
STANDIN_ARGV = [sys.executable, str(STANDIN), "powershell", "-NoProfile", "-NonInteractive", "-Command", "-"]
LIVE = [DEFENDER, BITLOCKER, HOTFIX, SCREENLOCK]


class ReplayTarget(Target):
    """A Windows PC as the batch shows it: parts and registry both from one PowerShell batch (as over SSH)."""

    kind = "replay"

    def __init__(self, batch: PowerShellBatch) -> None:
        super().__init__("replay:pc01")
        self.batch = batch

    def platform(self) -> PlatformInfo:
        return PlatformInfo(system="windows", hostname="PC01")

    def read_file(self, path: str, *, max_bytes: int = 0) -> bytes:
        raise NotImplementedError

    def list_dir(self, path: str) -> list[str]:
        raise NotImplementedError

    def stat(self, path: str) -> FileStat | None:
        raise NotImplementedError

    def powershell(self) -> PowerShellBatch:
        return self.batch

    def registry(self) -> RegistryReader:
        return self.shared("windows-registry", lambda: PowerShellRegistry(self.batch))


@pytest.fixture
def replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], PowerShellBatch]]:
    log = tmp_path / "powershell.log"
    monkeypatch.setenv("MAMORU_PS_SCRIPTS", str(SCRIPTS))
    monkeypatch.setenv("MAMORU_PS_LOG", str(log))

    def make(fixture: str) -> PowerShellBatch:
        monkeypatch.setenv("MAMORU_PS_FIXTURE", str(FIXTURES / fixture))
        return powershell_batch(STANDIN_ARGV)

    yield make


def launches(tmp_path: Path) -> int:
    log = tmp_path / "powershell.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def scan(batch: PowerShellBatch, checks: tuple[str, ...] = ("AV-01", "AV-02", "AV-03", "PH-02", "PH-01"),
         policy: Any = None) -> dict[str, Finding]:
    """Announce, collect concurrently (as the runner does), judge with the registered checks."""
    from agent.registry import checks as registered

    target = ReplayTarget(batch)
    tf = collect_windows(target, LIVE)
    every = registered()
    return {f.check: f for f in evaluate_target(tf, [every[c] for c in checks], policy or load_policy())}


# -- the batch itself ------------------------------------------------------------------------------------


def test_one_process_answers_every_announced_part_and_the_registry(replay: Any, tmp_path: Path) -> None:
    found = scan(replay("win11_protected.json"))
    assert launches(tmp_path) == 1  # four collectors, five parts (registry included): one PowerShell
    assert found["AV-01"].status == "pass" and "Microsoft Defender" in found["AV-01"].message["en"]
    assert found["AV-02"].status == "pass"
    assert found["AV-03"].status == "pass" and found["AV-03"].evidence["defender_signature_age_days"] == 1.0
    assert found["PH-02"].status == "pass" and "C:" in found["PH-02"].message["en"]
    assert [v["volume"] for v in found["PH-02"].evidence["volumes"]] == ["C:"]  # E: is removable: not judged
    assert found["PH-01"].status == "pass"  # the logged-on user locks after 300 s, set by Group Policy
    assert "BitLocker" in found["PH-02"].remediation["en"]  # the Windows remediation, not LUKS


def test_stdin_is_one_ascii_line_and_parameters_are_data() -> None:
    line = ps.batch_stdin("00ff", [("registry", {"queries": [{"key": "HKLM\\SOFTWARE\\x'; rm -rf /", "values": None,
                                                              "subkeys": False}]})])
    text = line.decode("ascii")
    assert text.count("\n") == 1 and text.endswith("\n")
    assert "rm -rf" not in text and "x'" not in text  # the key travels base64-encoded, never as code


def test_japanese_pc_judged_from_json_only(replay: Any) -> None:
    found = scan(replay("ja_jp_passive_third_party.json"))
    # Defender passive is not protection; the third-party product Security Center reports on (0x041000) is.
    av1 = found["AV-01"]
    assert av1.status == "pass" and av1.message["en"].endswith("ウイルスバスター クラウド")
    assert "Microsoft Defender" not in av1.message["en"]
    assert found["AV-02"].status == "pass"  # the product's on-state (Defender's own real-time is off)
    assert found["AV-03"].status == "pass"  # judged by the active product (up to date), not passive Defender
    ph2 = found["PH-02"]  # D: is decrypted: the method says 0 although the cached property says 1
    assert ph2.status == "fail" and "D:" in ph2.message["en"] and "C:" not in ph2.message["en"]
    d = next(v for v in ph2.evidence["volumes"] if v["volume"] == "D:")
    assert d["cached_ProtectionStatus"] == 1 and d["ProtectionStatus"] == 0
    ph1 = found["PH-01"]  # the user's own screen saver locks, but nothing enforces it (require_system_lock)
    assert ph1.status == "fail" and "not enforced by Group Policy" in ph1.message["en"]


def test_a_failed_part_is_an_error_for_its_collector_only_and_its_prose_is_not_parsed(replay: Any) -> None:
    batch = replay("ja_jp_passive_third_party.json")
    with pytest.raises(PartError) as e:
        batch.part("hotfix")
    assert e.value.kind == "error" and "アクセスが拒否されました" in e.value.detail
    assert batch.part("defender")["AMRunningMode"] == "Passive"  # the other parts are intact


def test_defender_passive_beside_a_snoozed_product_fails(replay: Any, tmp_path: Path) -> None:
    fx = json.loads((FIXTURES / "ja_jp_passive_third_party.json").read_text("utf-8"))
    fx["parts"]["securitycenter"]["ok"]["products"][1]["productState"] = 270336  # 0x042000: snoozed
    path = tmp_path / "snoozed.json"
    path.write_text(json.dumps(fx, ensure_ascii=False), "utf-8")
    found = scan(replay(str(path)))
    assert found["AV-01"].status == "fail"
    assert "Passive" in found["AV-01"].message["en"] and "snoozed" in found["AV-01"].message["en"]
    assert found["AV-02"].status == "fail"
    assert found["AV-03"].status == "fail"  # nothing active whose signatures count


def test_windows_server_without_security_center_says_so(replay: Any, tmp_path: Path) -> None:
    found = scan(replay("server2022_no_security_center.json"))
    assert found["AV-01"].status == "pass"  # Defender itself is on
    assert any("Windows Server" in n for n in found["AV-01"].evidence["notes"])
    assert found["PH-02"].status == "error" and "no BitLocker WMI class" in found["PH-02"].message["en"]
    ph1 = found["PH-01"]  # the only profile is not logged on: its settings cannot be read
    assert ph1.status == "error" and "not logged on" in ph1.message["en"]
    # Defender passive on a Server: another product may protect it, Security Center cannot tell: not a fail
    fx = json.loads((FIXTURES / "server2022_no_security_center.json").read_text("utf-8"))
    fx["parts"]["defender"]["ok"]["AMRunningMode"] = "Passive"
    path = tmp_path / "server-passive.json"
    path.write_text(json.dumps(fx), "utf-8")
    found = scan(replay(str(path)), checks=("AV-01", "AV-02"))
    assert found["AV-01"].status == "error" and "Security Center" in found["AV-01"].message["en"]
    assert found["AV-02"].status == "error"


def test_a_user_with_no_hive_loaded_is_never_a_pass(replay: Any) -> None:
    found = scan(replay("user_not_logged_on.json"), checks=("PH-01",))
    ph1 = found["PH-01"]
    assert ph1.status == "error"
    assert "S-1-5-21-2911318562-3451765133-1093620893-1002" in ph1.message["en"]
    assert "not logged on" in ph1.message["en"]


def test_garbage_never_passes(replay: Any) -> None:
    batch = replay("garbage.json")
    found = scan(batch)
    for cid in ("AV-01", "AV-02", "AV-03", "PH-02"):
        assert found[cid].status == "error", (cid, found[cid].message)
    with pytest.raises(PartError) as e:
        batch.part("defender")
    assert e.value.kind == "garbage"
    with pytest.raises(PartError) as e:
        batch.part("hotfix")  # a truncated JSON document
    assert e.value.kind == "garbage"
    with pytest.raises(PartError) as e:
        batch.part("bitlocker")
    assert e.value.kind == "timeout"
    # a DWORD of -1 is not a registry value: that answer is an error (never "DisableAntiSpyware unset")
    reg = PowerShellRegistry(batch)
    [pol] = reg.read([RegQuery(r"HKLM\SOFTWARE\Policies\Microsoft\Windows Defender", ("DisableAntiSpyware",))])
    assert pol.status == "error" and pol.error is not None and pol.error.kind == "hive_corrupted"


def test_values_of_the_wrong_types_never_pass(replay: Any) -> None:
    found = scan(replay("wrong_types.json"), checks=("AV-01", "AV-02", "AV-03", "PH-02"))
    for cid in ("AV-01", "AV-02", "AV-03", "PH-02"):
        assert found[cid].status == "error", (cid, found[cid].message)


def test_a_crash_midway_leaves_the_earlier_parts_and_errors_the_rest(replay: Any, tmp_path: Path) -> None:
    fx = json.loads((FIXTURES / "win11_protected.json").read_text("utf-8"))
    fx["crash_after"] = 1
    path = tmp_path / "crash.json"
    path.write_text(json.dumps(fx), "utf-8")
    batch = replay(str(path))
    batch.want(["defender", "bitlocker"])
    assert batch.part("defender")["AMRunningMode"] == "Normal"
    with pytest.raises(PartError) as e:
        batch.part("bitlocker")
    assert e.value.kind == "missing" and "exit code 1" in e.value.detail


def test_a_hung_powershell_is_killed_at_the_batch_timeout(replay: Any, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    fx = json.loads((FIXTURES / "win11_protected.json").read_text("utf-8"))
    fx["parts"]["defender"] = {"hang": 60}
    path = tmp_path / "hang.json"
    path.write_text(json.dumps(fx), "utf-8")
    monkeypatch.setattr(ps, "STARTUP_GRACE", 0.5)
    monkeypatch.setattr(ps, "part_specs", lambda: {"defender": PartSpec("defender", "defender.ps1", 1.0)})
    batch = replay(str(path))
    with pytest.raises(PartError) as e:
        batch.part("defender")
    assert e.value.kind == "timeout" and "did not finish" in e.value.detail


def test_av04_newest_installed_update(replay: Any, tmp_path: Path) -> None:
    found = scan(replay("win11_protected.json"), checks=("AV-04",))
    assert found["AV-04"].status == "pass" and "KB5034441" in found["AV-04"].message["en"]
    assert found["AV-04"].evidence["age_days"] == 9
    fx = json.loads((FIXTURES / "win11_protected.json").read_text("utf-8"))
    fx["parts"]["hotfix"]["ok"]["hotfixes"] = [
        {"HotFixID": "KB5031356", "Description": "Security Update", "InstalledOn": "@days_ago:60"},
        {"HotFixID": "KB5000000", "Description": "Update", "InstalledOn": None}]  # no date: never "newest"
    path = tmp_path / "old.json"
    path.write_text(json.dumps(fx), "utf-8")
    found = scan(replay(str(path)), checks=("AV-04",))
    assert found["AV-04"].status == "fail" and "KB5031356" in found["AV-04"].message["en"]
    assert "60" in found["AV-04"].message["ja"]  # default max_pending_days 14 + the monthly cycle: 45 days
    for fixture in ("ja_jp_passive_third_party.json", "garbage.json", "wrong_types.json"):
        assert scan(replay(fixture), checks=("AV-04",))["AV-04"].status == "error", fixture


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.lists(st.sampled_from(["defender", "bitlocker", "x"]), max_size=3))
def test_any_output_is_answers_or_part_errors_never_a_crash(noise: bytes, names: list[str]) -> None:
    from agent.targets.base import CommandResult

    nonce = "0123456789abcdef"
    frames = b"".join(f"MAMORU-PART {nonce} {n} ok ".encode() + noise[:40] + b"\n" for n in names)
    result = CommandResult(argv=("powershell.exe",), returncode=0, stdout=noise + frames + noise, stderr=noise)
    out = ps.parse_frames(result, nonce, ["defender", "bitlocker"])
    assert set(out) == {"defender", "bitlocker"}
    for v in out.values():
        assert isinstance(v, PartError) or v is None or isinstance(v, (dict, list, str, int, float, bool))


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=12))
def test_any_registry_json_is_an_answer_never_a_crash(junk: Any) -> None:
    q = RegQuery(r"HKLM\SOFTWARE\Policies\Microsoft\Windows Defender", ("DisableAntiSpyware",))
    for answer in (junk, {"status": "ok", "values": junk}, {"status": "ok", "values": {"DisableAntiSpyware": junk}}):
        a = PowerShellRegistry(None)._answer(q, answer if isinstance(answer, dict) else {"status": junk}, {})  # type: ignore[arg-type]
        assert a.status in ("ok", "missing", "error")
        v = a.value("DisableAntiSpyware")
        if v is not None and v.type == 4:
            assert isinstance(v.data, int) and 0 <= v.data < 2**32
