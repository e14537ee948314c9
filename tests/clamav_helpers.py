"""Build real ClamAV databases and run a real clamd, for the AV tests.

The official databases cannot be downloaded here, so the tests build their
own with ``sigtool``: a ``daily.cud`` (an unsigned CVD container with the
same 512-byte header freshclam's files have) holding an MD5 signature of the
EICAR test string and a body signature of a private marker. ``faketime``
builds one "N days ago", so an old database is a real old database.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from collectors.clamav import eicar

MARKER = b"MAMORU-TEST-MARKER-7f3a"


def build_daily(dest: Path, *, days_old: float = 0, version: int = 27100, with_eicar: bool = True) -> Path:
    """A real ``daily.cud`` in ``dest`` built ``days_old`` days in the past; returns its path."""
    work = dest.parent / f".build-{dest.name}-{version}"
    work.mkdir(parents=True)
    sample = work / "sample"
    sample.write_bytes(eicar())
    hdb = subprocess.run(["sigtool", "--md5", str(sample)], check=True, capture_output=True).stdout
    sample.unlink()
    if with_eicar:
        (work / "daily.hdb").write_bytes(hdb.replace(b":sample", b":Mamoru.Test.EICAR"))
    (work / "daily.ndb").write_bytes(b"Mamoru.Test.Marker:0:*:" + MARKER.hex().encode() + b"\n")
    (work / "COPYING").write_text("test database built by the mamoru test suite\n")
    argv = ["sigtool", "--build=daily.cud", "--unsigned", f"--cvd-version={version}", f"--datadir={work}"]
    if days_old:
        argv = ["faketime", "-f", f"-{days_old}d", *argv]
    subprocess.run(argv, cwd=work, input=b"mamoru-test\n", check=True, capture_output=True, timeout=60)
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / "daily.cud"
    shutil.move(str(work / "daily.cud"), out)
    shutil.rmtree(work)
    return out


def clamd_conf(base: Path, db: Path, *, on_access: Path | None = None) -> Path:
    lines = [f"LocalSocket {base}/clamd.sock", f"DatabaseDirectory {db}", f"PidFile {base}/clamd.pid",
             "Foreground true", f"LogFile {base}/clamd.log", f"TemporaryDirectory {base}"]
    if on_access is not None:
        lines += [f"OnAccessIncludePath {on_access}", "OnAccessExcludeRootUID yes"]
    conf = base / "clamd.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def running_clamd(conf: Path) -> Iterator[subprocess.Popen[bytes]]:
    """clamd in the foreground with ``conf``; waits until it answers, stops it by PID afterwards."""
    proc = subprocess.Popen(["clamd", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            res = subprocess.run(["clamdscan", f"--config-file={conf}", "--version"], capture_output=True)
            if b"/" in res.stdout:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (conf.parent / "clamd.log")
                raise RuntimeError(f"clamd did not start: {log.read_text() if log.exists() else ''}")
            time.sleep(0.2)
        yield proc
    finally:
        _stop(proc)


@contextlib.contextmanager
def running_clamonacc(conf: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = conf.parent / "clamonacc.log"
    proc = subprocess.Popen(["clamonacc", "-c", str(conf), "--foreground", "--verbose", f"--log={log}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not (log.exists() and b"beginning event loops" in log.read_bytes()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"clamonacc did not start: {log.read_text() if log.exists() else ''}")
            time.sleep(0.2)
        yield proc
    finally:
        _stop(proc)


def fanotify_possible() -> bool:
    return os.geteuid() == 0
