"""IA-04, TX-04, AC-03 and IA-03's SSH part against real sshd listeners on 127.0.0.1 (ports 22000-22999).

The collector finds a running sshd in /proc, reads the configuration file it was started with (``-f``,
from its argv or from the ``[listener]`` title it gives itself) and asks that binary for its effective
settings with ``sshd -T -f FILE``. The hardened listener runs in its own PID namespace, so that other
sshd processes on this machine cannot change the verdict; both are stopped by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.sshd import listener_options
from tests.conftest import finding, require, require_root, require_tool, validate_report

pytestmark = [pytest.mark.needs_service, pytest.mark.needs_root]
SSHD = "/usr/sbin/sshd"
MAMORU = Path(sys.executable).with_name("mamoru")
WEAK_PORT, HARDENED_PORT = 22201, 22202

WEAK = """PermitRootLogin yes
PermitEmptyPasswords yes
MaxAuthTries 10
UsePAM no
Ciphers aes128-cbc,aes256-ctr
MACs hmac-sha1,hmac-sha2-256
KexAlgorithms diffie-hellman-group14-sha1,curve25519-sha256
"""
HARDENED = """PermitRootLogin no
PermitEmptyPasswords no
MaxAuthTries 3
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowGroups ssh-users
Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com
MACs hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com
KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256
"""


def write_config(d: Path, port: int, body: str) -> Path:
    require_root()
    require_tool("ssh-keygen")
    require(Path(SSHD).exists(), "openssh-server is not installed")
    d.mkdir(mode=0o755, exist_ok=True)
    key = d / "host_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    conf = d / "sshd_config"
    conf.write_text(f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {key}\nPidFile {d}/sshd.pid\n"
                    f"StrictModes no\n{body}")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    subprocess.run([SSHD, "-t", "-f", str(conf)], check=True)
    return conf


def wait_listening(port: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            break
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                assert s.recv(64).startswith(b"SSH-2.0-OpenSSH")
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"sshd did not listen on 127.0.0.1:{port}")


@pytest.fixture
def weak_sshd(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    conf = write_config(tmp_path / "weak", WEAK_PORT, WEAK)
    proc = subprocess.Popen([SSHD, "-D", "-f", str(conf), "-E", str(conf.parent / "sshd.log")],
                            start_new_session=True)
    try:
        wait_listening(WEAK_PORT, proc)
        yield proc, conf
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)


def report(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    validate_report(doc)
    return doc


def test_listener_options_from_real_proc(weak_sshd: tuple[subprocess.Popen[bytes], Path]) -> None:
    proc, conf = weak_sshd
    raw = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
    cmdline = [a.decode() for a in raw if a]
    # Once listening, sshd replaces its argv with one title string; either form names the config.
    assert "[listener]" in cmdline[0] or cmdline[0] == SSHD
    assert listener_options(cmdline) == {"config": str(conf), "overrides": []}
    assert listener_options([f"sshd: {SSHD} -D -f {conf} -o MaxAuthTries=2 -p 2222 [listener] 0 of 10-100 startups"]) \
        == {"config": str(conf), "overrides": ["MaxAuthTries=2", "Port 2222"]}
    assert listener_options(["sshd: alice@pts/0"]) is None
    assert listener_options([SSHD, "-R", "-f", str(conf)]) is None


def test_weak_running_sshd_fails(weak_sshd: tuple[subprocess.Popen[bytes], Path], tmp_path: Path) -> None:
    proc, conf = weak_sshd
    require(MAMORU.exists(), f"{MAMORU} missing")
    out = tmp_path / "weak.json"
    subprocess.run([str(MAMORU), "scan", "--check", "IA-04", "--check", "TX-04", "--check", "AC-03", "--check",
                    "IA-03", "--quiet", "--lang", "en", "--output", str(out)], capture_output=True)
    doc = report(out)
    label = f"{conf} (pid {proc.pid})"
    for check in ("IA-04", "TX-04", "AC-03"):
        f = finding(doc, check)
        assert f["status"] == "fail", f
        assert label in json.dumps(f), f  # this listener was found and judged by its own file
    ia04 = finding(doc, "IA-04")
    ev = ia04["evidence"] if ia04["evidence"].get("config") == label else ia04["evidence"]["instances"][label]
    assert (ev["permitrootlogin"], ev["permitemptypasswords"], ev["maxauthtries"]) == ("yes", "yes", 10)
    tx04 = finding(doc, "TX-04")
    ev = tx04["evidence"] if tx04["evidence"].get("config") == label else tx04["evidence"]["instances"][label]
    assert ev["weak"] == ["aes128-cbc", "hmac-sha1", "diffie-hellman-group14-sha1"]
    # UsePAM no with password logins: PAM's lockout never sees SSH guesses.
    ia03 = finding(doc, "IA-03")
    assert ia03["status"] != "pass" and str(conf) in json.dumps(ia03)


def test_hardened_running_sshd_passes(tmp_path: Path) -> None:
    require_tool("unshare")
    require(MAMORU.exists(), f"{MAMORU} missing")
    conf = write_config(tmp_path / "hardened", HARDENED_PORT, HARDENED)
    out = tmp_path / "hardened.json"
    pidfile = conf.parent / "sshd.pid"
    # In a PID namespace of its own, this sshd is the only one the scan can see. The script starts it
    # (it daemonizes once listening), scans, then stops it by the PID it wrote.
    script = ('"$1" -f "$2" -E "$3" || exit 9; "$4" scan --check IA-04 --check TX-04 --check AC-03 --quiet '
              '--lang en --output "$5"; rc=$?; kill "$(cat "$6")"; exit $rc')
    proc = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", script, "sh", SSHD, str(conf),
                           str(conf.parent / "sshd.log"), str(MAMORU), str(out), str(pidfile)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    doc = report(out)
    for check in ("IA-04", "TX-04", "AC-03"):
        f = finding(doc, check)
        assert f["status"] == "pass", f
        labels = [f["evidence"]["config"]] if "config" in f["evidence"] else list(f["evidence"])
        assert len(labels) == 1 and labels[0].startswith(f"{conf} (pid "), f
    assert finding(doc, "IA-04")["evidence"]["maxauthtries"] == 3
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", HARDENED_PORT), timeout=0.5).close()  # stopped
    shutil.rmtree(conf.parent)
    assert not os.path.exists(pidfile)
