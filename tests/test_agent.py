"""``mamoru agent install|run|status|uninstall`` (issue 14): real files, real scheduler tools where they exist.

Runs that must be killed or overlap are real ``mamoru agent run`` processes of this worktree's code.
"""

from __future__ import annotations

import json
import os
import plistlib
import random
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent import install as gen
from agent.agent_run import EXIT_LOCKED, LOG_NAME, prune
from agent.config.agentfile import DEFAULT_PATHS, AgentConfig
from agent.targets.rootfs import RootfsTarget
from checks import monitoring
from checks.base import FactSet
from collectors.schedule_state import COLLECTOR as SCHEDULE
from collectors.windows.tasks import parse_task
from reports.chain import PRUNED_NAME, ReportFile, verify_chain
from reports.signing.publish import TEST_PAUSE_ENV
from tests.conftest import finding, require_tool

Cli = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
MAMORU = str(Path(sys.executable).parent / "mamoru")
TREE = Path(__file__).resolve().parent.parent
NS = {"t": gen.TASK_NS}


def agent_proc(config: Path, **env: str) -> subprocess.Popen[bytes]:
    """A real ``mamoru agent run`` of this worktree's code."""
    return subprocess.Popen([sys.executable, "-c", "from agent.cli.main import run; run()", "agent", "run",
                             "--config", str(config)], cwd=TREE, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture
def setup(tmp_path: Path, run_cli: Cli) -> tuple[Path, Path, Path]:
    """(agent.yaml, reports dir, allowed_signers) for a signed agent that runs one quick check."""
    key = tmp_path / "key"
    assert run_cli("keygen", "--output", str(key), "--identity", "agent@example.jp", report=False)[0] == 0
    allowed = tmp_path / "allowed_signers"
    pub = (tmp_path / "key.pub").read_text().split()
    allowed.write_text(f'agent@example.jp namespaces="mamoru-report" {pub[0]} {pub[1]}\n')
    reports = tmp_path / "reports"
    config = tmp_path / "agent.yaml"
    config.write_text(f"reports: {reports}\nsign_key: {key}\nchecks: [PM-01]\n")
    return config, reports, allowed


def signature_check(allowed: Path) -> Callable[[ReportFile], str | None]:
    from reports.signing import allowed_signers, sshsig
    from reports.signing.errors import VerificationError

    signers = allowed_signers.load(str(allowed))

    def check(r: ReportFile) -> str | None:
        try:
            sshsig.verify(r.data, Path(f"{r.path}.sig").read_bytes(), signers)
        except (OSError, VerificationError) as e:
            return str(e)
        return None

    return check


def reports_in(directory: Path) -> list[Path]:
    return sorted(directory.glob("report-*.json"))


# --- agent.yaml ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "line", "says"), [
    ("reports: /r\nretention:\n  days: 0\n", 3, "retention.days: must be at least 1"),
    ("reports: /r\nevery: monthly\n", 2, "every: is not one of"),
    ("reports: /r\npush:\n  url: http://x.example/\n  token_file: /t\n", 3, "push.url: does not have"),
    ("lang: en\nreports: relative/dir\n", 2, "reports: give an absolute path"),
    ("reports: /r\nsurprise: 1\n", 2, "unknown key 'surprise'"),
    ("reports: &a /r\nsign_key: *a\n", 2, "alias"),
    ("reports: /r\nreports: /s\n", 2, "reports"),
])
def test_bad_agent_yaml_is_exit_2_with_file_and_line(tmp_path: Path, run_cli: Cli, text: str, line: int,
                                                     says: str) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text(text)
    rc, _, _, err = run_cli("agent", "run", "--config", str(config), report=False)
    assert rc == 2 and f"{config}:{line}" in err and says in err, err
    assert not (tmp_path / "r").exists()


# --- the generated scheduler files -------------------------------------------------------------------------

@pytest.mark.needs_service
@pytest.mark.parametrize("every", ["hourly", "daily", "weekly"])
def test_systemd_analyze_verifies_the_units(tmp_path: Path, run_cli: Cli, every: str) -> None:
    require_tool("systemd-analyze")
    rc, _, out, _ = run_cli("agent", "install", "--kind", "systemd", "--root", str(tmp_path), "--every", every,
                            "--mamoru", MAMORU, "--reports", str(tmp_path / "reports"), "--config",
                            str(tmp_path / "agent.yaml"), report=False)
    assert rc == 0
    unit_dir = tmp_path / "etc/systemd/system"
    assert (unit_dir / "timers.target.wants/mamoru-agent.timer").is_symlink()
    service = (unit_dir / "mamoru-agent.service").read_text()
    for directive in ("ProtectSystem=strict", f"ReadWritePaths={tmp_path / 'reports'}", "NoNewPrivileges=true",
                      "PrivateTmp=true", "Nice=10", "IOSchedulingClass=idle", "SuccessExitStatus=1 4"):
        assert directive in service
    timer = (unit_dir / "mamoru-agent.timer").read_text()
    assert "Persistent=true" in timer and "RandomizedDelaySec=" in timer
    res = subprocess.run(["systemd-analyze", "verify", str(unit_dir / "mamoru-agent.service"),
                          str(unit_dir / "mamoru-agent.timer")], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"})
    ours = [line for line in res.stderr.splitlines() if "mamoru-agent" in line]
    assert res.returncode == 0 and ours == [], res.stderr
    cal = subprocess.run(["systemd-analyze", "calendar", timer.split("OnCalendar=")[1].splitlines()[0]],
                         capture_output=True, text=True, timeout=60)
    assert cal.returncode == 0, cal.stderr


def test_launchd_plist_round_trips(tmp_path: Path, run_cli: Cli) -> None:
    config = "/Library/Application Support/mamoru/agent.yaml"
    rc, _, _, _ = run_cli("agent", "install", "--kind", "launchd", "--root", str(tmp_path), "--every", "weekly",
                          "--mamoru", "/usr/local/bin/mamoru", "--reports", "/Library/mamoru/reports",
                          "--config", config, report=False)
    assert rc == 0
    raw = (tmp_path / gen.PLIST_PATH.lstrip("/")).read_bytes()
    doc = plistlib.loads(raw, fmt=plistlib.FMT_XML)
    assert doc["Label"] == gen.PLIST_LABEL
    assert doc["ProgramArguments"] == ["/usr/local/bin/mamoru", "agent", "run", "--config", config]
    assert doc["StartCalendarInterval"] == {"Minute": gen.MINUTE, "Hour": gen.HOUR, "Weekday": 0}
    assert doc["RunAtLoad"] is False and doc["LowPriorityIO"] is True
    assert plistlib.dumps(doc, fmt=plistlib.FMT_XML) == raw
    if subprocess.run(["which", "plutil"], capture_output=True).returncode == 0:  # macOS only
        assert subprocess.run(["plutil", "-lint", str(tmp_path / gen.PLIST_PATH.lstrip("/"))]).returncode == 0


@pytest.mark.parametrize("every", ["hourly", "daily", "weekly"])
def test_task_scheduler_xml_has_the_documented_elements(every: str) -> None:
    job = gen.Job(mamoru=r"C:\Program Files\mamoru\mamoru.exe", config=r"C:\ProgramData\mamoru\agent.yaml",
                  reports=r"C:\ProgramData\mamoru\reports", every=every)
    raw = gen.task_xml(job)
    assert raw.startswith(b"\xff\xfe")  # UTF-16 with BOM, as schtasks /XML reads it
    root = ET.fromstring(raw.decode("utf-16").split("?>", 1)[1])  # strict: any malformed byte raises
    assert root.tag == f"{{{gen.TASK_NS}}}Task" and root.get("version") == "1.2"
    assert [c.tag.split("}")[1] for c in root] == ["RegistrationInfo", "Triggers", "Principals", "Settings",
                                                   "Actions"]
    assert root.findtext("t:Settings/t:StartWhenAvailable", namespaces=NS) == "true"
    assert root.findtext("t:Settings/t:MultipleInstancesPolicy", namespaces=NS) == "IgnoreNew"
    assert root.findtext("t:Principals/t:Principal/t:UserId", namespaces=NS) == "S-1-5-18"
    assert root.findtext("t:Principals/t:Principal/t:RunLevel", namespaces=NS) == "HighestAvailable"
    assert root.findtext("t:Actions/t:Exec/t:Command", namespaces=NS) == job.mamoru
    assert root.findtext("t:Actions/t:Exec/t:Arguments", namespaces=NS) == \
        r"agent run --config C:\ProgramData\mamoru\agent.yaml"
    trigger = root.find("t:Triggers/t:CalendarTrigger", NS)
    assert trigger is not None and trigger.findtext("t:Enabled", namespaces=NS) == "true"
    kind = {"hourly": "t:Repetition/t:Interval", "daily": "t:ScheduleByDay/t:DaysInterval",
            "weekly": "t:ScheduleByWeek/t:DaysOfWeek/t:Sunday"}[every]
    assert trigger.find(kind, NS) is not None
    # The Windows MN-03 collector reads it as an enabled task running mamoru.
    task = parse_task(raw)
    assert task["enabled"] and "agent run" in task["commands"][0]
    assert gen.schtasks_create(r"C:\x.xml") == ["schtasks", "/Create", "/XML", r"C:\x.xml", "/TN", gen.TASK_NAME,
                                                "/F"]


@pytest.mark.parametrize("kind", ["systemd", "cron", "launchd", "schtasks"])
def test_install_then_uninstall_leaves_nothing(tmp_path: Path, run_cli: Cli, kind: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    reports = r"C:\ProgramData\mamoru\reports" if kind == "schtasks" else "/var/lib/mamoru/reports"
    args = ["agent", "install", "--kind", kind, "--root", str(root), "--mamoru", "/usr/bin/mamoru",
            "--reports", reports, "--sign-key", "/etc/mamoru/signing_key", "--retention-days", "400"]
    rc, _, out, _ = run_cli(*args, "--dry-run", report=False)
    assert rc == 0 and list(root.iterdir()) == []  # --dry-run: printed only
    assert "agent run --config" in out or "<string>run</string>" in out
    rc, _, _, err = run_cli(*args, report=False)
    assert rc == 0, err
    written = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert any("agent.yaml" in w for w in written) and any("agent-install.json" in w for w in written)
    assert run_cli(*args, report=False)[0] == 2  # a second install refuses: uninstall first
    config = {"schtasks": DEFAULT_PATHS["windows"], "launchd": DEFAULT_PATHS["macos"]}.get(kind, DEFAULT_PATHS["linux"])
    rc, _, _, err = run_cli("agent", "uninstall", "--root", str(root), "--config", config, report=False)
    assert rc == 0, err
    assert list(root.iterdir()) == []


def test_uninstall_keeps_reports_and_files_it_did_not_write(tmp_path: Path, run_cli: Cli) -> None:
    root = tmp_path / "root"
    (root / "etc/cron.d").mkdir(parents=True)
    (root / "etc/cron.d/other").write_text("# someone else's\n")
    assert run_cli("agent", "install", "--kind", "cron", "--root", str(root), "--mamoru", "/usr/bin/mamoru",
                   "--reports", "/srv/reports", report=False)[0] == 0
    (root / "srv/reports/report-1.json").write_text("{}")
    assert run_cli("agent", "uninstall", "--root", str(root), report=False)[0] == 0
    assert (root / "etc/cron.d/other").exists() and (root / "srv/reports/report-1.json").exists()
    assert not (root / "etc/cron.d/mamoru-agent").exists() and not (root / "etc/mamoru").exists()


def test_cron_line_runs_the_agent(setup: tuple[Path, Path, Path], run_cli: Cli) -> None:
    """The installed /etc/cron.d line, executed through /bin/sh as cron would, makes a signed report."""
    config, reports, _ = setup
    root = config.parent / "root"
    program = config.parent / "mamoru"  # this worktree's mamoru (the venv's entry point runs the installed one)
    program.write_text(f'#!/bin/sh\nPYTHONPATH={TREE} exec {sys.executable} -c '
                       f'"from agent.cli.main import run; run()" "$@"\n')
    program.chmod(0o755)
    assert run_cli("agent", "install", "--kind", "cron", "--root", str(root), "--mamoru", str(program), "--reports",
                   str(reports), "--config", "/etc/mamoru/agent.yaml", report=False)[0] == 0
    line = (root / gen.CRON_PATH.lstrip("/")).read_text().splitlines()[1]
    fields = line.split(None, 6)
    assert fields[:6] == [str(gen.MINUTE), str(gen.HOUR), "*", "*", "*", "root"]
    command = fields[6].replace("/etc/mamoru/agent.yaml", str(config))  # this test's config, not the real /etc
    res = subprocess.run(["/bin/sh", "-c", command], capture_output=True, timeout=120)
    assert res.returncode in (0, 1), res.stderr
    assert len(reports_in(reports)) == 1 and (reports / LOG_NAME).exists()


def test_cron_next_run() -> None:
    import datetime as dt

    now = dt.datetime(2026, 12, 5, 3, 20)  # a Saturday
    assert gen.next_cron_run("hourly", now) == dt.datetime(2026, 12, 5, 4, 17)
    assert gen.next_cron_run("daily", now) == dt.datetime(2026, 12, 6, 3, 17)
    assert gen.next_cron_run("weekly", now) == dt.datetime(2026, 12, 6, 3, 17)
    assert gen.next_cron_run("daily", dt.datetime(2026, 12, 5, 1, 0)) == dt.datetime(2026, 12, 5, 3, 17)


# --- agent run ---------------------------------------------------------------------------------------------

def test_run_writes_a_signed_chained_report_and_one_log_line(setup: tuple[Path, Path, Path], run_cli: Cli) -> None:
    config, reports, allowed = setup
    for _ in range(2):
        rc, _, _, err = run_cli("agent", "run", "--config", str(config), report=False)
        assert rc in (0, 1), err
    made = reports_in(reports)
    assert len(made) == 2 and all(Path(f"{p}.sig").exists() for p in made)
    lines = [json.loads(x) for x in (reports / LOG_NAME).read_text().splitlines()]
    assert [x["report"] for x in lines] == [p.name for p in made] and all(x["signed"] for x in lines)
    assert run_cli("verify", "--chain", str(reports), "--allowed-signers", str(allowed), report=False)[0] == 0
    rc, _, out, _ = run_cli("agent", "status", "--config", str(config), report=False)
    assert rc == 0 and "chain: intact: 2 report(s)" in out and f"report {made[-1].name}" in out
    assert "outbox: not configured" in out
    made[0].write_bytes(made[0].read_bytes().replace(b'"status": "', b'"status":  "', 1))  # one byte more
    rc, _, out, _ = run_cli("agent", "status", "--config", str(config), report=False)
    assert rc == 1 and "chain: BROKEN" in out


def test_second_run_exits_at_once_saying_so(setup: tuple[Path, Path, Path]) -> None:
    config, reports, _ = setup
    first = agent_proc(config, **{TEST_PAUSE_ENV: "report-staged"})
    try:
        assert first.stderr is not None
        line = first.stderr.readline()
        while line and b"paused at" not in line:
            line = first.stderr.readline()
        assert b"paused at report-staged" in line
        t0 = time.monotonic()
        second = agent_proc(config)
        _, err = second.communicate(timeout=60)
        assert second.returncode == EXIT_LOCKED
        assert b"another run is in progress (pid " + str(first.pid).encode() in err
        assert time.monotonic() - t0 < 10
        assert reports_in(reports) == []  # the second did nothing
    finally:
        first.kill()
        first.communicate()


def test_kill_9_at_random_moments_loses_nothing(setup: tuple[Path, Path, Path]) -> None:
    """30 seeded kills anywhere in a run (scan, publish, prune): every report on disk is whole and signed,
    the chain verifies (pruned predecessors through the signed record), and the next run continues it."""
    config, reports, allowed = setup
    config.write_text(config.read_text() + "retention:\n  count: 3\n")
    rng = random.Random(1414)
    finished = 0
    for _ in range(30):
        p = agent_proc(config)
        time.sleep(rng.uniform(0.05, 0.9))
        p.send_signal(signal.SIGKILL)
        p.communicate()
        finished += p.returncode in (0, 1)
        result = verify_chain(reports, signature_check(allowed)) if reports.exists() else None
        assert result is None or result.problems == [], [x.message for x in result.problems]
    before = verify_chain(reports, signature_check(allowed)).series
    newest = next(iter(before.values()))[-1] if before else None
    p = agent_proc(config)
    _, err = p.communicate(timeout=120)
    assert p.returncode in (0, 1), err
    after = verify_chain(reports, signature_check(allowed))
    assert after.problems == []
    series = next(iter(after.series.values()))
    assert len(series) <= 3
    if newest is not None:  # the run after the kills links onto the newest report they left
        assert series[-1].previous is not None and series[-1].previous["sha256"] == newest.sha256
    assert 0 < finished < 30 or len(reports_in(reports)) >= 1  # the kills landed at different moments
    for r in reports_in(reports):
        json.loads(r.read_bytes())  # never a half report


def test_retention_keeps_the_chain_verifiable(setup: tuple[Path, Path, Path], run_cli: Cli) -> None:
    config, reports, allowed = setup
    config.write_text(config.read_text() + "retention:\n  count: 2\n")
    for _ in range(4):
        assert run_cli("agent", "run", "--config", str(config), report=False)[0] in (0, 1)
    assert len(reports_in(reports)) == 2
    assert len(json.loads((reports / PRUNED_NAME).read_bytes())["pruned"]) == 2
    assert not [p for p in reports.glob("*.sig") if not Path(str(p)[:-4]).exists() and PRUNED_NAME not in p.name]
    rc, _, out, err = run_cli("verify", "--chain", str(reports), "--allowed-signers", str(allowed), report=False)
    assert rc == 0, out + err
    # The record only counts when its signature checks: without it, the removal shows.
    (reports / f"{PRUNED_NAME}.sig").unlink()
    rc, _, out, _ = run_cli("verify", "--chain", str(reports), "--allowed-signers", str(allowed), report=False)
    assert rc == 1 and "was removed" in out and PRUNED_NAME in out


def test_prune_never_removes_a_queued_report_nor_an_unsigned_series(setup: tuple[Path, Path, Path],
                                                                    run_cli: Cli) -> None:
    config, reports, _ = setup
    for _ in range(3):
        run_cli("agent", "run", "--config", str(config), report=False)
    oldest = reports_in(reports)[0]

    class Queue:  # the interface agent_run asks of helper A1's outbox: only is_queued matters here
        def enqueue(self, report: Path, signature: Path | None) -> None: ...
        def is_queued(self, report: Path) -> bool: return report == oldest
        def size(self) -> int: return 1
        def last_delivery(self) -> str | None: return None

    cfg = AgentConfig(reports=str(reports), sign_key=str(config.parent / "key"), retention={"count": 1})
    assert prune(cfg, Queue()) == ([], "")
    assert oldest.exists()
    unsigned = AgentConfig(reports=str(reports), sign_key=None, retention={"count": 1})
    assert prune(unsigned, None)[0] == [] and "unsigned" in prune(unsigned, None)[1]
    pushing = AgentConfig(**{**cfg, "push": {"url": "https://x.example/", "token_file": "/t"}})
    assert prune(pushing, None)[0] == []
    assert len(prune(cfg, None)[0]) == 2


def test_retention_by_age(setup: tuple[Path, Path, Path], run_cli: Cli) -> None:
    config, reports, allowed = setup
    for _ in range(3):
        run_cli("agent", "run", "--config", str(config), report=False)
    cfg = AgentConfig(reports=str(reports), sign_key=str(config.parent / "key"), retention={"days": 5})
    assert prune(cfg, None, now=time.time() + 4 * 86400) == ([], "")
    newest = reports_in(reports)[-1]
    assert len(prune(cfg, None, now=time.time() + 6 * 86400)[0]) == 2  # the newest stays, however old
    assert reports_in(reports) == [newest]
    assert verify_chain(reports, signature_check(allowed)).problems == []


def test_run_under_systemd_logs_to_stdout(setup: tuple[Path, Path, Path]) -> None:
    config, reports, _ = setup
    p = agent_proc(config, INVOCATION_ID="0123456789abcdef")
    out, err = p.communicate(timeout=120)
    assert p.returncode in (0, 1), err
    record = json.loads(out.decode().strip().splitlines()[-1])
    assert record["event"] == "mamoru-agent-run" and record["report"] == reports_in(reports)[0].name
    assert not (reports / LOG_NAME).exists()


# --- MN-03 reads what install made ------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["systemd", "cron", "launchd"])
def test_mn03_sees_the_installed_agent_and_its_report(tmp_path: Path, run_cli: Cli, kind: str) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=debian\n")
    assert run_cli("agent", "install", "--kind", kind, "--root", str(root), "--mamoru", "/usr/bin/mamoru",
                   "--reports", "/var/lib/mamoru/reports", report=False)[0] == 0
    run_cli("scan", "--target", f"rootfs:{root}", "--check", "PM-01", "--output",
            str(root / "var/lib/mamoru/reports/report-1.json"))
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "MN-03")
    assert doc is not None
    f = finding(doc, "MN-03")
    assert f["status"] == "pass", f
    assert "agent run" in f["evidence"]["jobs"][0]["line"]


def test_mn03_central_schedule_is_not_applicable_with_its_reason(tmp_path: Path, run_cli: Cli) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_text("ID=debian\n")
    policy = tmp_path / "p.yaml"
    policy.write_text("schedule:\n  central: true\n  central_reason: fleet scan from audit01 daily\n")
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "MN-03", "--policy", str(policy))
    assert doc is not None
    f = finding(doc, "MN-03")
    assert f["status"] == "not_applicable" and "fleet scan from audit01 daily" in f["message"]["ja"], f
    policy.write_text("schedule:\n  central: true\n")
    rc, _, _, err = run_cli("scan", "--target", f"rootfs:{root}", "--check", "MN-03", "--policy", str(policy))
    assert rc == 2 and f"{policy}:1: schedule: the key 'central_reason' is missing" in err, err


def test_mn03_windows_central(tmp_path: Path) -> None:
    from agent.config.policy import load_policy
    from checks.windows_more import mn03_windows

    policy = tmp_path / "p.yaml"
    policy.write_text("schedule:\n  central: true\n  central_reason: scanned over SSH from audit01\n")
    verdict = mn03_windows(FactSet({}, {}), load_policy(policy))
    assert verdict.status == "not_applicable" and verdict.params["reason"] == "scanned over SSH from audit01"


def test_collector_ignores_a_disabled_launch_daemon(tmp_path: Path) -> None:
    d = tmp_path / "Library/LaunchDaemons"
    d.mkdir(parents=True)
    job = gen.Job(mamoru="/usr/local/bin/mamoru", config="/etc/mamoru/agent.yaml", reports="/r")
    doc = plistlib.loads(gen.launchd_plist(job))
    (d / "a.plist").write_bytes(plistlib.dumps({**doc, "Disabled": True}))
    (d / "b.plist").write_bytes(b"<plist><dict><key>broken")
    facts = SCHEDULE.collect_with(RootfsTarget(f"rootfs:{tmp_path}", str(tmp_path)), {"schedule.report_dir": "/r"})
    assert [(j["kind"], j["enabled"]) for j in facts["jobs"]] == [("launchd", False)]
    assert monitoring.MN_03.judge(FactSet({"schedule_state": facts}, {}), _default_policy()).status == "fail"


def _default_policy() -> Any:
    from agent.config.policy import load_policy

    return load_policy(None).overlay({"schedule": {"report_dir": "/r"}})
