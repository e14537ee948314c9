"""Windows over SSH through a REAL sshd on loopback: platform probe, one PowerShell batch, timeouts.

No Windows exists here, so the test user's login shell is a stand-in (``tests/windows_ps_standin.py``,
role ``shell``) that answers the platform probe as cmd.exe or PowerShell would and starts
``powershell.exe`` from PATH — put first by sshd's ``SetEnv`` — which is the replaying stand-in (role
``powershell``). SSH, the exec session, stdin, the frames, the timeouts and every byte of parsing after
them are real; the answers are the documented replays in ``tests/fixtures/windows_live``.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import agent.targets.ps
from agent.config.policy import load_policy
from agent.runner import collect_target, evaluate_target
from agent.targets import open_target
from agent.targets import powershell as ps
from agent.targets.powershell import PartError, PartSpec
from agent.targets.ssh import SSHTarget
from collectors.windows.live import BITLOCKER, DEFENDER, HOTFIX
from collectors.windows.settings import SCREENLOCK
from tests.conftest import finding
from tests.sshd_helpers import LoginUser, Sshd, SshdLab

pytestmark = [pytest.mark.needs_service, pytest.mark.needs_root]

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures" / "windows_live"
SCRIPTS = Path(agent.targets.ps.__file__).resolve().parent
LIVE = [DEFENDER, BITLOCKER, HOTFIX, SCREENLOCK]


class WindowsLab:
    """Two login users on one sshd: one whose default shell is "cmd.exe", one whose is "PowerShell"."""

    def __init__(self, lab: SshdLab) -> None:
        self.lab = lab
        root = lab.root / "windows"
        (root / "bin").mkdir(parents=True)
        standin = root / "windows_ps_standin.py"
        shutil.copy(HERE / "windows_ps_standin.py", standin)
        self.fixture = root / "fixture.json"
        self.log = root / "powershell.log"
        self.log.write_text("")
        self.log.chmod(0o666)
        exe = root / "bin" / "powershell.exe"
        exe.write_text(f'#!/bin/sh\nexec /usr/bin/python3 {standin} powershell "$@"\n')
        shells = {}
        for kind in ("cmd", "powershell"):
            shells[kind] = root / f"shell-{kind}"
            shells[kind].write_text(f'#!/bin/sh\nMAMORU_STANDIN_SHELL={kind}; export MAMORU_STANDIN_SHELL\n'
                                    f'exec /usr/bin/python3 {standin} shell "$@"\n')
        for p in (exe, *shells.values()):
            p.chmod(0o755)
        self.users = {"cmd": LoginUser("mm5wincmd", 45301, shell=str(shells["cmd"])),
                      "powershell": LoginUser("mm5winps", 45302, shell=str(shells["powershell"]))}
        env = {"PATH": f"{root / 'bin'}:/usr/bin:/bin", "MAMORU_PS_FIXTURE": str(self.fixture),
               "MAMORU_PS_SCRIPTS": str(SCRIPTS), "MAMORU_PS_LOG": str(self.log),
               "MAMORU_STANDIN_COMPUTERNAME": "JIMUSHO-PC01"}
        self.server: Sshd = lab.sshd(users=list(self.users.values()),
                                     extra_config="SetEnv " + " ".join(f"{k}={v}" for k, v in env.items()) + "\n")

    def use(self, fixture: str | dict[str, Any]) -> None:
        data = fixture if isinstance(fixture, dict) else json.loads((FIXTURES / fixture).read_text("utf-8"))
        self.fixture.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
        self.fixture.chmod(0o644)
        self.log.write_text("")

    def launches(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def spec(self, shell: str = "cmd") -> str:
        return self.server.spec(self.users[shell].name)


@pytest.fixture(scope="module")
def win(lab: SshdLab) -> Iterator[WindowsLab]:
    yield WindowsLab(lab)


def scan(win: WindowsLab, shell: str = "cmd", checks: tuple[str, ...] = ("AV-01", "AV-02", "AV-03", "PH-02")
         ) -> dict[str, Any]:
    from agent.registry import checks as registered

    tf = collect_target(win.spec(shell), LIVE, target_options=win.lab.options())
    assert tf.system == "windows" and tf.status == "ok", (tf.status, tf.error)
    every = registered()
    return {f.check: f for f in evaluate_target(tf, [every[c] for c in checks], load_policy())}


@pytest.mark.parametrize("shell", ["cmd", "powershell"])
def test_the_platform_is_detected_from_the_default_shell(win: WindowsLab, shell: str) -> None:
    win.use("win11_protected.json")
    target = open_target(win.spec(shell), **win.lab.options())
    try:
        assert isinstance(target, SSHTarget)
        assert target.shell_kind() == shell
        info = target.platform()
        assert info.system == "windows" and info.hostname == "JIMUSHO-PC01"
    finally:
        target.close()


def test_a_linux_host_stays_linux(win: WindowsLab) -> None:
    target = open_target(win.server.spec("root"), **win.lab.options())
    try:
        assert isinstance(target, SSHTarget)
        assert target.shell_kind() == "posix"
        assert target.platform().system == "linux"
        with pytest.raises(Exception, match="not a Windows host"):
            target.powershell()
    finally:
        target.close()


@pytest.mark.parametrize("shell", ["cmd", "powershell"])
def test_one_powershell_per_scan_over_ssh(win: WindowsLab, shell: str) -> None:
    win.use("ja_jp_passive_third_party.json")
    found = scan(win, shell, checks=("AV-01", "AV-02", "AV-03", "PH-02", "PH-01"))
    runs = win.launches()
    assert len(runs) == 1 and runs[0]["argv"] == ["-NoProfile", "-NonInteractive", "-Command", "-"]
    assert found["AV-01"].status == "pass" and "ウイルスバスター クラウド" in found["AV-01"].message["ja"]
    assert found["AV-02"].status == "pass"
    assert found["PH-02"].status == "fail" and "D:" in found["PH-02"].message["en"]
    assert found["PH-01"].status == "fail"  # registry over the same batch: the user's saver, no policy
    assert "not enforced by Group Policy" in found["PH-01"].message["en"]


def test_windows_server_and_a_user_not_logged_on_over_ssh(win: WindowsLab) -> None:
    win.use("server2022_no_security_center.json")
    found = scan(win, checks=("AV-01", "PH-02", "PH-01"))
    assert found["AV-01"].status == "pass"
    assert any("Windows Server" in n for n in found["AV-01"].evidence["notes"])
    assert found["PH-02"].status == "error"
    assert found["PH-01"].status == "error" and "not logged on" in found["PH-01"].message["en"]


def test_garbage_over_ssh_never_passes(win: WindowsLab) -> None:
    win.use("garbage.json")
    found = scan(win)
    assert {c: f.status for c, f in found.items()} == {"AV-01": "error", "AV-02": "error", "AV-03": "error",
                                                       "PH-02": "error"}


def test_a_hung_powershell_times_out_and_the_connection_survives(win: WindowsLab,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    fx = json.loads((FIXTURES / "win11_protected.json").read_text("utf-8"))
    fx["parts"]["defender"] = {"hang": 8}
    win.use(fx)
    monkeypatch.setattr(ps, "STARTUP_GRACE", 1.0)
    monkeypatch.setattr(ps, "part_specs", lambda: {n: PartSpec(n, f"{n}.ps1", 1.0)
                                                   for n in ("defender", "securitycenter", "registry")})
    target = open_target(win.spec(), **win.lab.options())
    try:
        assert isinstance(target, SSHTarget)
        batch = target.powershell()
        batch.want(["defender", "securitycenter"])
        t0 = time.monotonic()
        with pytest.raises(PartError) as e:
            batch.part("defender")
        assert e.value.kind == "timeout" and time.monotonic() - t0 < 6
        with pytest.raises(PartError):  # the same process carried it: the same timeout, no second run
            batch.part("securitycenter")
        assert batch.runs == 1
        assert target.failure is None and target.platform().system == "windows"  # the host is still there
    finally:
        target.close()


def test_full_cli_scan_of_a_windows_pc_over_ssh(win: WindowsLab, run_cli: Any) -> None:
    """Every registered collector and check, as an office runs it: one PowerShell, statuses from the replay."""
    win.use("win11_protected.json")
    rc, doc, _, err = run_cli("scan", "--target", win.spec(), *win.lab.cli(), "--lang", "en", "--no-organisation")
    assert doc is not None, err
    [t] = doc["targets"]
    assert (t["hostname"], t["status"]) == ("JIMUSHO-PC01", "ok"), t
    assert len(win.launches()) == 1  # all Windows collectors, registry included: one process
    for cid in ("AV-01", "AV-02", "AV-03", "AV-04", "PH-02", "PH-01"):
        assert finding(doc, cid)["status"] == "pass", (cid, finding(doc, cid)["message"])
    # keys the replay's registry does not hold are "missing" answers, never a pass: MpsSvc not registered,
    # Security log keys absent
    assert finding(doc, "AC-01")["status"] == "error" and "MpsSvc" in finding(doc, "AC-01")["message"]["en"]
    assert finding(doc, "LG-02")["status"] == "error"
    # the SAM is refused as on a real PC: IA-01 is judged from the localusers part (CIM) instead
    assert finding(doc, "IA-01")["status"] == "pass" and finding(doc, "IA-01")["evidence"]["accounts_source"] == "cim"
    assert finding(doc, "IA-04")["status"] == "not_applicable"  # sshd: Linux only
    # The replay's registry holds no event forwarding (no WEF policy, no agent service): MN-01 fails, so the
    # exit code is 1 (a failure wins over the checks that could not be judged)
    assert finding(doc, "MN-01")["status"] == "fail", finding(doc, "MN-01")["message"]["en"]
    assert rc == 1
