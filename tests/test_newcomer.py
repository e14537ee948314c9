"""What a newcomer met first: a machine without sudo, and a fleet scan started from a folder holding ``agent/``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tests.sshd_helpers as sshd_helpers
from agent.scanner import Scanner
from tests.conftest import REQUIRE_ENV

ROOT = Path(__file__).resolve().parents[1]


def _no_sudo(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine as a fresh Debian without sudo: no ``sudo`` on PATH (sudo_missing asks shutil.which)."""
    monkeypatch.setenv("PATH", "/nonexistent")


def test_a_server_with_sudo_rules_skips_with_the_reason_where_sudo_is_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_sudo(monkeypatch)
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    lab = sshd_helpers.SshdLab.__new__(sshd_helpers.SshdLab)  # no keys needed: it must stop before any sshd
    lab.root, lab.servers, lab._n = tmp_path, [], 0
    user = sshd_helpers.LoginUser("mm5x", 45990, "ALL=(ALL) NOPASSWD: ALL")
    with pytest.raises(pytest.skip.Exception, match="sudo is not installed"):
        lab.sshd(users=[user])
    monkeypatch.setenv(REQUIRE_ENV, "1")  # CI: the same is a failure, never a silent skip
    with pytest.raises(pytest.fail.Exception, match="sudo is not installed"):
        lab.sshd(users=[user])
    with pytest.raises(sshd_helpers.SudoUnavailable):  # and the benchmark's direct use says so too
        sshd_helpers.Sshd(tmp_path / "s", authorized_keys=[], users=[user])


def test_users_without_sudo_rules_do_not_mount_over_sudoers_d(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_sudo(monkeypatch)
    server = sshd_helpers.Sshd.__new__(sshd_helpers.Sshd)
    server.dir, server.users = tmp_path, [sshd_helpers.LoginUser("mm5y", 45991)]
    server.config, server.log = tmp_path / "sshd_config", tmp_path / "log"
    with pytest.MonkeyPatch.context() as m:
        m.setattr(os, "chown", lambda *a: None)
        script = server._mount_script().read_text()
    assert "/etc/passwd" in script
    assert "/etc/sudoers.d" not in script


def test_the_fleet_benchmark_explains_a_missing_sudo() -> None:
    env = {**os.environ, "PATH": "/nonexistent"}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fleet.py"), "--sizes", "1", "--runs", "1"],
                          env=env, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert ("sudo" in proc.stderr or "OpenSSH" in proc.stderr or "root" in proc.stderr), proc.stderr


def test_scanner_processes_never_import_from_the_working_directory(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An ``agent/`` folder where the operator stands must not run as root in a fleet scan."""
    marker = tmp_path / "pwned"
    planted = tmp_path / "agent"
    planted.mkdir()
    (planted / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('agent')\n")
    (planted / "fleet_worker.py").write_text(f"open({str(marker)!r}, 'w').write('worker')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # isolated mode ignores this too
    scanner = Scanner()
    scanner.setup(None, 1)
    scanner.send("collectors", [])
    scanner.finish()
    assert scanner.proc.wait(60) == 0
    assert not marker.exists(), "the scanner imported the planted agent/ package"


def test_scanner_runs_the_same_code_as_its_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Isolated mode must still find mamoru: a real job through a real scanner process."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("isolated-worker\n")
    scanner = Scanner()
    scanner.setup(None, 1)
    scanner.send("collectors", [])
    scanner.send("job", [0, {"spec": f"rootfs:{root}"}])
    scanner.finish()
    assert scanner.proc.stdout is not None
    out = scanner.proc.stdout.read()
    assert scanner.proc.wait(60) == 0
    lines = [json.loads(x) for x in out.decode().splitlines()]
    done = [m for m in lines if m[0] == "done"]
    assert done and done[0][2]["hostname"] == "isolated-worker", lines
