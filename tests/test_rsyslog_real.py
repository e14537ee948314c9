"""MN-01 against a real rsyslogd that forwards to a listener of the test's own on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import finding, require_tool

pytestmark = pytest.mark.needs_service

Cli = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
PORT = 23514


class Collector:
    """A TCP syslog receiver: whatever rsyslog forwards lands in ``received``."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", PORT))
        self.sock.listen(4)
        self.sock.settimeout(0.5)
        self.received = b""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(0.5)
            with conn:
                while not self.stop.is_set():
                    try:
                        data = conn.recv(65536)
                    except TimeoutError:
                        continue
                    if not data:
                        break
                    self.received += data

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def receiver() -> Iterator[Collector]:
    c = Collector()
    try:
        yield c
    finally:
        c.close()


def start_rsyslog(base: Path, selector: str) -> subprocess.Popen[bytes]:
    conf = base / "rsyslog.conf"
    conf.write_text(f"""# written by the mamoru tests
global(workDirectory="{base}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{base}/log.sock" CreatePath="on")
{selector} action(type="omfwd" target="127.0.0.1" port="{PORT}" protocol="tcp"
                  template="RSYSLOG_ForwardFormat")  # multi-line on purpose
*.* {base}/all.log
""")
    proc = subprocess.Popen(["rsyslogd", "-n", "-f", str(conf), "-i", str(base / "rsyslog.pid")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not (base / "log.sock").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("rsyslogd did not start")
        time.sleep(0.1)
    return proc


@pytest.fixture
def rsyslog(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Path]:
    require_tool("rsyslogd", "logger")
    proc = start_rsyslog(tmp_path, getattr(request, "param", "auth,authpriv.*"))
    try:
        yield tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_forwarding_rsyslog_passes_and_really_forwards(receiver: Collector, rsyslog: Path, run_cli: Cli) -> None:
    _, doc, _, _ = run_cli("scan", "--check", "MN-01")
    assert doc is not None
    f = finding(doc, "MN-01")
    assert f["status"] == "pass", f
    assert f["evidence"]["rsyslog_files"] == [str(rsyslog / "rsyslog.conf")]
    assert "127.0.0.1:23514/tcp" in f["message"]["en"]
    subprocess.run(["logger", "-u", str(rsyslog / "log.sock"), "-p", "authpriv.notice", "mamoru-mn01-probe"],
                   check=True)
    deadline = time.monotonic() + 10
    while b"mamoru-mn01-probe" not in receiver.received and time.monotonic() < deadline:
        time.sleep(0.1)
    assert b"mamoru-mn01-probe" in receiver.received


@pytest.mark.parametrize("rsyslog", ["mail.*"], indirect=True)
def test_forwarding_without_auth_logs_fails(receiver: Collector, rsyslog: Path, run_cli: Cli) -> None:
    _, doc, _, _ = run_cli("scan", "--check", "MN-01")
    assert doc is not None
    f = finding(doc, "MN-01")
    assert f["status"] == "fail" and "authentication" in f["message"]["en"], f


def test_no_daemon_reads_the_default_config(run_cli: Cli) -> None:
    require_tool("rsyslogd")
    _, doc, _, _ = run_cli("scan", "--check", "MN-01")
    assert doc is not None
    f = finding(doc, "MN-01")
    # This machine's own /etc/rsyslog.conf (Debian's default) forwards nothing.
    assert f["status"] == "fail", f
    assert f["evidence"]["rsyslog_files"][0] == "/etc/rsyslog.conf"
