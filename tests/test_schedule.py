"""``mamoru schedule``: the printed units and cron line are valid, and the cron line really runs a signed scan."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.errors import ConfigError
from agent.schedule import Schedule, cron_line, systemd_units
from tests.conftest import require_tool

Cli = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
MAMORU = str(Path(sys.executable).parent / "mamoru")


def test_print_only_by_default(tmp_path: Path, run_cli: Cli) -> None:
    rc, _, out, err = run_cli("schedule", "--mamoru", MAMORU, "--root", str(tmp_path), report=False)
    assert rc == 0
    assert "# /etc/systemd/system/mamoru-scan.timer" in out and "OnCalendar=*-*-* 03:00:00" in out
    assert f"ExecStart=/bin/sh -c 'exec {MAMORU} scan --quiet --sign-key /etc/mamoru/signing_key" in out
    assert list(tmp_path.iterdir()) == []  # nothing written without --install


@pytest.mark.needs_service
def test_systemd_accepts_the_units(tmp_path: Path, run_cli: Cli) -> None:
    require_tool("systemd-analyze")
    rc, _, _, _ = run_cli("schedule", "--install", "--root", str(tmp_path), "--mamoru", MAMORU, "--at", "02:15",
                          report=False)
    assert rc == 0
    unit_dir = tmp_path / "etc/systemd/system"
    assert (unit_dir / "timers.target.wants/mamoru-scan.timer").is_symlink()
    res = subprocess.run(["systemd-analyze", "verify", str(unit_dir / "mamoru-scan.service"),
                          str(unit_dir / "mamoru-scan.timer")], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"})
    ours = [line for line in res.stderr.splitlines() if "mamoru-scan" in line]
    assert res.returncode == 0 and ours == [], res.stderr


def test_cron_line_runs_a_signed_scan(tmp_path: Path, run_cli: Cli) -> None:
    """Execute the printed cron command through /bin/sh, as cron would, and get a signed report."""
    require_tool("ssh-keygen")
    key = tmp_path / "key"
    assert run_cli("keygen", "--output", str(key), report=False)[0] == 0
    reports = tmp_path / "reports"
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"schedule:\n  report_dir: {reports}\n")
    line = cron_line(Schedule(mamoru=MAMORU, report_dir=str(reports), policy=str(policy), sign_key=str(key)))
    entry = line.splitlines()[1]
    fields = entry.split(None, 6)
    assert fields[:6] == ["0", "3", "*", "*", "*", "root"]
    command = fields[6].replace("\\%", "%")  # what cron does before handing the line to /bin/sh
    res = subprocess.run(["/bin/sh", "-c", command.replace(" scan --quiet", " scan --quiet --check PM-01")],
                         capture_output=True, timeout=120)
    assert res.returncode in (0, 1), res.stderr
    made = sorted(reports.glob("report-*.json"))
    assert len(made) == 1 and made[0].name.endswith("Z.json")
    assert Path(str(made[0]) + ".sig").exists()
    assert oct(reports.stat().st_mode & 0o777) == "0o750"


@pytest.mark.parametrize("bad", [{"mamoru": "/usr/bin/mamoru; rm -rf /"}, {"report_dir": "/srv/my reports"},
                                 {"sign_key": "relative/key"}, {"at": "25:00"}, {"report_dir": "/x/$(id)"}])
def test_unsafe_values_are_refused(bad: dict[str, str]) -> None:
    args: dict[str, Any] = {"mamoru": "/usr/bin/mamoru", "report_dir": "/var/lib/mamoru/reports", **bad}
    with pytest.raises(ConfigError):
        Schedule(**args)


def test_unsafe_cli_value_exit_code(run_cli: Cli) -> None:
    rc, _, _, err = run_cli("schedule", "--mamoru", "/opt/my mamoru", report=False)
    assert rc == 2 and "cannot change the generated unit" in err


def test_units_are_shell_safe() -> None:
    s = Schedule(mamoru="/usr/local/bin/mamoru", report_dir="/var/lib/mamoru/reports", policy="/etc/mamoru/p.yaml")
    units = systemd_units(s)
    exec_line = next(ln for ln in units["/etc/systemd/system/mamoru-scan.service"].splitlines()
                     if ln.startswith("ExecStart="))
    argv = shlex.split(exec_line.removeprefix("ExecStart="))
    assert argv[:2] == ["/bin/sh", "-c"] and len(argv) == 3
    assert "--policy /etc/mamoru/p.yaml" in argv[2]
    assert "$$(date -u +%%Y%%m%%dT%%H%%M%%SZ)" in argv[2]
