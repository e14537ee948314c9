"""LG-01, LG-04, LG-05 against real daemons started here (rsyslogd, two chronyd talking NTP on loopback),
real process namespaces (where no daemon runs, or /proc hides other users), and real file modes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.timesync import parse_tracking_csv
from tests.conftest import finding, require, require_corpus, require_root, require_tool, validate_report

Run = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
MakeRootfs = Callable[[dict[str, str | bytes]], Path]
MAMORU = Path(sys.executable).with_name("mamoru")
NTP_PORT = 22123  # this suite's range: 22000-22999


def start(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def scan_local(run_cli: Run, *checks: str) -> dict[str, Any]:
    args = ["scan", "--quiet", "--lang", "en"]
    for c in checks:
        args += ["--check", c]
    _, doc, _, _ = run_cli(*args)
    assert doc is not None
    return doc


def scan_isolated(tmp_path: Path, check: str, *, hidepid_as_nobody: bool = False) -> dict[str, Any]:
    """Scan from a new PID namespace: only the scan's own processes exist there."""
    require_root()
    require_tool("unshare")
    require(MAMORU.exists(), f"{MAMORU} missing")
    out = tmp_path / f"isolated-{check}.json"
    scan = [str(MAMORU), "scan", "--check", check, "--quiet", "--lang", "en", "--output", str(out)]
    if hidepid_as_nobody:
        os.chmod(tmp_path, 0o777)
        parent = tmp_path
        while not parent.name.startswith("pytest-of-") and parent != parent.parent:
            os.chmod(parent, os.stat(parent).st_mode | 0o011)
            parent = parent.parent
        os.chmod(parent, os.stat(parent).st_mode | 0o011)
        argv = ["unshare", "--pid", "--fork", "--mount", "--mount-proc", "sh", "-c",
                'mount -o remount,hidepid=invisible /proc && exec setpriv --reuid=65534 --regid=65534 '
                '--clear-groups "$@"', "sh", *scan]
    else:
        argv = ["unshare", "--pid", "--fork", "--mount-proc", *scan]
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "HOME": str(tmp_path)})
    assert out.exists(), proc.stderr[-2000:]
    doc: dict[str, Any] = json.loads(out.read_text())
    validate_report(doc)
    return finding(doc, check)


# --- LG-01 ----------------------------------------------------------------------------------------------

@pytest.fixture
def rsyslogd(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    require_tool("rsyslogd")
    conf = tmp_path / "rsyslog.conf"
    sock = tmp_path / "log.sock"
    conf.write_text(f'global(workDirectory="{tmp_path}")\n'
                    f'module(load="imuxsock" SysSock.Use="off")\n'
                    f'input(type="imuxsock" Socket="{sock}" CreatePath="on")\n'
                    f'*.* action(type="omfile" file="{tmp_path}/messages")\n')
    proc = start(["rsyslogd", "-n", "-f", str(conf), "-i", str(tmp_path / "rsyslogd.pid")], tmp_path / "rsyslogd.log")
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        require(sock.exists(), f"rsyslogd did not start: {(tmp_path / 'rsyslogd.log').read_text()[-500:]}")
        yield proc
    finally:
        stop(proc)


@pytest.mark.needs_service
def test_lg01_running_rsyslogd_passes(run_cli: Run, rsyslogd: subprocess.Popen[bytes]) -> None:
    f = finding(scan_local(run_cli, "LG-01"), "LG-01")
    assert f["status"] == "pass", f
    ours = [p for p in f["evidence"]["logging_processes"] if p["pid"] == rsyslogd.pid]
    assert ours == [{"pid": rsyslogd.pid, "comm": "rsyslogd", "exe": "/usr/sbin/rsyslogd"}]


@pytest.mark.needs_service
@pytest.mark.needs_root
def test_lg01_without_a_log_daemon_fails(tmp_path: Path) -> None:
    f = scan_isolated(tmp_path, "LG-01")
    assert f["status"] == "fail", f
    assert f["evidence"]["processes_seen"] >= 1  # the scan saw itself, so /proc was readable


@pytest.mark.needs_service
@pytest.mark.needs_root
def test_lg01_hidden_processes_are_error(tmp_path: Path) -> None:
    require_tool("setpriv")
    f = scan_isolated(tmp_path, "LG-01", hidepid_as_nobody=True)
    assert f["status"] == "error" and "hidepid" in f["message"]["en"], f


def test_lg01_on_an_image_is_error(run_cli: Run, make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({"/etc/hostname": "img\n", "/usr/sbin/rsyslogd": b"", "/proc/1/comm": "rsyslogd\n"})
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "LG-01", "--quiet", "--lang", "en")
    assert doc is not None
    f = finding(doc, "LG-01")
    assert f["status"] == "error" and "cannot see processes" in f["message"]["en"], f


# --- LG-04 ----------------------------------------------------------------------------------------------

def test_lg04_modes(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path) -> None:
    journald = require_corpus("host-config", "secure-debian-configs__journald.conf").read_text()
    root = make_rootfs({"/etc/passwd": "root:x:0:0::/root:/bin/bash\nsyslog:x:104:110::/:/usr/sbin/nologin\n"
                                       "alice:x:1000:1000::/home/alice:/bin/bash\n",
                        "/etc/group": "root:x:0:\nadm:x:4:syslog\nsyslog:x:110:\nusers:x:100:\nalice:x:1000:\n",
                        "/etc/systemd/journald.conf": journald,
                        "/var/log/auth.log": "Nov 27 sshd[1]: Accepted publickey for alice\n",
                        "/var/log/syslog": "x\n", "/var/log/journal/0123/system.journal": b"LPKSHHRH"})
    log = root / "var/log"
    for p, mode, owner in ((log, 0o755, (0, 0)), (log / "auth.log", 0o640, (104, 4)), (log / "syslog", 0o640, (104, 4)),
                           (log / "journal", 0o2755, (0, 0)), (log / "journal/0123", 0o2755, (0, 0)),
                           (log / "journal/0123/system.journal", 0o640, (0, 0))):
        os.chmod(p, mode)
        os.chown(p, *owner)
    for d in (root, root / "var"):
        os.chmod(d, 0o755)
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "LG-04", "--quiet", "--lang", "en")
    assert doc is not None
    f = finding(doc, "LG-04")
    assert f["status"] == "pass", f
    assert f["evidence"]["checked"] == 8  # /, /var, /var/log, 2 files, journal dir, machine dir, journal file
    os.chmod(log / "auth.log", 0o660)
    os.chown(log / "auth.log", 104, 100)  # group "users": every person could rewrite it
    os.chmod(log / "journal/0123/system.journal", 0o646)
    os.chown(log / "syslog", 1000, 4)
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "LG-04", "--quiet", "--lang", "en")
    assert doc is not None
    f = finding(doc, "LG-04")
    assert f["status"] == "fail"
    problems = f["evidence"]["problems"]
    assert f"{log}/auth.log (0660 syslog:users): writable by group users".replace(str(root), "") in problems
    assert any("system.journal" in p and "everyone" in p for p in problems)
    assert any("/var/log/syslog" in p and "personal account" in p for p in problems)


def test_lg04_malformed_group_is_error(run_cli: Run, make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({"/var/log/auth.log": "x\n", "/etc/passwd": "root:x:0:0::/root:/bin/bash\n"})
    (root / "etc/group").mkdir()  # not a regular file: group names unknown
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "LG-04", "--quiet", "--lang", "en")
    assert doc is not None
    f = finding(doc, "LG-04")
    assert f["status"] == "error" and "/etc/group" in f["message"]["en"], f


def test_lg04_none_and_local(run_cli: Run, make_rootfs: MakeRootfs) -> None:
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{make_rootfs({'/etc/hostname': 'x'})}", "--check", "LG-04",
                           "--quiet")
    assert doc is not None and finding(doc, "LG-04")["status"] == "not_applicable"
    f = finding(scan_local(run_cli, "LG-04"), "LG-04")  # this machine's own /var/log
    assert f["status"] in ("pass", "fail") and f["evidence"]["checked"] >= 3, f


# --- LG-05 ----------------------------------------------------------------------------------------------

def chrony_conf(d: Path, body: str) -> Path:
    d.mkdir(mode=0o700)
    conf = d / "chrony.conf"
    conf.write_text(body + f"cmdport 0\nbindcmdaddress {d}/chronyd.sock\npidfile {d}/chronyd.pid\n"
                           f"driftfile {d}/drift\n")
    return conf


def chronyd(conf: Path) -> subprocess.Popen[bytes]:
    # -x: measure the clock but never set it (the test must not change this machine's time).
    proc = start(["chronyd", "-x", "-d", "-u", "root", "-f", str(conf)], conf.parent / "log")
    deadline = time.monotonic() + 10
    while not (conf.parent / "chronyd.sock").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    require((conf.parent / "chronyd.sock").exists(),
            f"chronyd did not start: {(conf.parent / 'log').read_text()[-500:]}")
    return proc


def tracking(conf: Path) -> dict[str, Any]:
    out = subprocess.run(["chronyc", "-h", str(conf.parent / "chronyd.sock"), "-n", "-c", "tracking"],
                         capture_output=True, text=True, check=True).stdout
    return parse_tracking_csv(out)


@pytest.fixture
def chrony_pair(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """An NTP server on 127.0.0.1 (serving its own clock) and a client synchronising to it."""
    require_root()
    require_tool("chronyd", "chronyc")
    require(not subprocess.run(["pgrep", "-x", "chronyd"], capture_output=True).stdout,
            "another chronyd is running on this machine")
    server = chrony_conf(tmp_path / "server", f"local stratum 8\nallow 127.0.0.1\nport {NTP_PORT}\n"
                                              "bindaddress 127.0.0.1\n")
    client = chrony_conf(tmp_path / "client", f"server 127.0.0.1 port {NTP_PORT} iburst minpoll -4 maxpoll -4\n"
                                              "port 0\n")
    procs = []
    try:
        procs.append(chronyd(server))
        procs.append(chronyd(client))
        yield server, client
    finally:
        for p in procs:
            stop(p)


@pytest.mark.needs_service
@pytest.mark.needs_root
def test_lg05_synchronised_chronyd_passes(run_cli: Run, chrony_pair: tuple[Path, Path]) -> None:
    _, client = chrony_pair
    deadline = time.monotonic() + 20
    while tracking(client)["leap_status"] != "Normal" and time.monotonic() < deadline:
        time.sleep(0.2)
    f = finding(scan_local(run_cli, "LG-05"), "LG-05")
    assert f["status"] == "pass", f
    assert "127.0.0.1" in f["message"]["en"]
    daemons = {d["config"]: d for d in f["evidence"]["daemons"] if d.get("config")}
    assert daemons[str(client)]["sources"] == ["server 127.0.0.1"]
    assert daemons[str(client)]["controls_clock"] is False  # -x is visible in the evidence
    # The server alone follows only its own clock: it does not count as synchronised.
    assert daemons[str(chrony_pair[0])]["state"]["reference_id"] == "7F7F0101"


@pytest.mark.needs_service
@pytest.mark.needs_root
def test_lg05_unsynchronised_chronyd_fails(run_cli: Run, tmp_path: Path) -> None:
    require_tool("chronyd", "chronyc")
    require(not subprocess.run(["pgrep", "-x", "chronyd"], capture_output=True).stdout,
            "another chronyd is running on this machine")
    conf = chrony_conf(tmp_path / "lonely", f"server 127.0.0.1 port {NTP_PORT + 1} iburst minpoll -4\nport 0\n")
    proc = chronyd(conf)
    try:
        f = finding(scan_local(run_cli, "LG-05"), "LG-05")
        assert f["status"] == "fail", f
        assert "Not synchronised" in f["message"]["en"]
    finally:
        stop(proc)
    local_only = chrony_conf(tmp_path / "local", "local stratum 10\nport 0\n")
    proc = chronyd(local_only)
    try:
        f = finding(scan_local(run_cli, "LG-05"), "LG-05")
        assert f["status"] == "fail" and "local clock" in f["message"]["en"], f
    finally:
        stop(proc)


@pytest.mark.needs_service
@pytest.mark.needs_root
def test_lg05_no_daemon_fails(tmp_path: Path) -> None:
    f = scan_isolated(tmp_path, "LG-05")
    assert f["status"] == "fail" and "No time synchronisation daemon" in f["message"]["en"], f


def test_lg05_on_an_image_is_error_with_configuration(run_cli: Run, make_rootfs: MakeRootfs) -> None:
    require(Path("/etc/chrony/chrony.conf").exists(), "chrony is not installed")
    root = make_rootfs({"/etc/chrony/chrony.conf": Path("/etc/chrony/chrony.conf").read_text(),
                        "/etc/chrony/sources.d/office.sources": "server ntp.office.example iburst\n",
                        "/etc/systemd/system/multi-user.target.wants/chrony.service": ""})
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "LG-05", "--quiet", "--lang", "en")
    assert doc is not None
    f = finding(doc, "LG-05")
    assert f["status"] == "error" and "cannot see processes" in f["message"]["en"]
    chrony = f["evidence"]["configured"]["chrony"]
    assert chrony["sources"] == ["pool 2.debian.pool.ntp.org", "server ntp.office.example"]
    assert chrony["enabled_at_boot"] is True


def test_lg05_malformed_tracking_output() -> None:
    from collectors.timesync import ConfProblem

    good = "7F000001,127.0.0.1,9,1795756428.06,-0.000001942,-0.0,0.0,0.08,-0.004,0.556,0.0000064,0.0000015,0.1,Normal\n"
    assert parse_tracking_csv(good)["system_offset_s"] == pytest.approx(-0.000001942)
    for bad in ("", "506 Cannot talk to daemon\n", good.replace(",Normal", ""), good.replace("7F000001", "zz"),
                good.replace(",9,", ",nine,"), good + good):
        with pytest.raises(ConfProblem):
            parse_tracking_csv(bad)
