"""Batching of SFTP requests on the ssh:// target, against a real OpenSSH server.

What a remote scan costs is requests, not bytes: a lone request costs a round trip and, on the scanner, about
ten times the CPU of the same request sent in a batch. These tests count the requests that really go to
sftp-server (by watching ``send_batch`` on the live session) and check that the batching saves requests
without changing a single answer or error.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.targets import open_target
from agent.targets.base import FileMissing, FileUnreadable
from agent.targets.ssh import SSHTarget
from agent.targets.ssh_sftp import OPEN, READLINK, STAT
from tests.sshd_helpers import SshdLab

pytestmark = [pytest.mark.needs_service, pytest.mark.needs_root]


class Requests:
    """The SFTP requests a target sends from now on: (type, path) for the ones that name a path."""

    def __init__(self, target: SSHTarget) -> None:
        self.sent: list[tuple[int, str]] = []
        self.lock = threading.Lock()
        real = target.sftp.send_batch

        def watched(requests: list[tuple[int, bytes]], **kw: object) -> object:
            with self.lock:
                for kind, payload in requests:
                    if kind in (OPEN, STAT, READLINK):
                        n = int.from_bytes(payload[:4], "big")
                        self.sent.append((kind, payload[4:4 + n].decode("utf-8", "surrogateescape")))
            return real(requests, **kw)  # type: ignore[arg-type]

        target.sftp.send_batch = watched  # type: ignore[method-assign]

    def paths(self, kind: int) -> list[str]:
        with self.lock:
            return [p for k, p in self.sent if k == kind]


@pytest.fixture()
def target(lab: SshdLab) -> Iterator[SSHTarget]:
    t = open_target(lab.sshd().spec("root"), **lab.options())
    assert isinstance(t, SSHTarget)
    yield t
    t.close()


@pytest.fixture()
def units(tmp_path: Path) -> Path:
    """A directory like /usr/lib/systemd/system: a few timers among many services."""
    d = tmp_path / "units"
    d.mkdir()
    for i in range(4):
        (d / f"job{i}.timer").write_text(f"[Timer]\nOnCalendar=daily\nUnit=job{i}.service\n")
    for i in range(40):
        (d / f"svc{i:02}.service").write_text(f"[Service]\nExecStart=/bin/true {i}\n")
    os.mkfifo(d / "trap.timer")  # a FIFO of the same kind: a batch must never open it (sftp-server would hang)
    return d


def test_a_listing_answers_stats_and_absence(target: SSHTarget, units: Path) -> None:
    base = str(units)
    names = target.list_dir(base)
    assert len(names) == 45
    seen = Requests(target)
    assert target.read_file(f"{base}/job0.timer") == (units / "job0.timer").read_bytes()
    assert seen.paths(STAT) == [], "the listing already said it is a regular file"
    assert seen.paths(OPEN) == [f"{base}/job0.timer"]
    with pytest.raises(FileUnreadable, match="not a regular file"):
        target.read_file(f"{base}/trap.timer")  # the FIFO: known from the listing, never opened
    assert target.stat(f"{base}/nothing-here") is None
    with pytest.raises(FileMissing):
        target.read_file(f"{base}/nothing-here.timer")
    assert seen.paths(STAT) == [] and seen.paths(OPEN) == [f"{base}/job0.timer"]


def test_outside_proc_two_reads_do_not_fetch_their_siblings(target: SSHTarget, units: Path) -> None:
    base = str(units)
    target.list_dir(base)
    seen = Requests(target)
    target.read_file(f"{base}/job0.timer")
    target.read_file(f"{base}/job1.timer")
    assert seen.paths(OPEN) == [f"{base}/job0.timer", f"{base}/job1.timer"]


def test_the_second_probe_in_a_directory_lists_it(target: SSHTarget, units: Path) -> None:
    base = str(units)
    seen = Requests(target)
    assert target.stat(f"{base}/absent-1") is None
    assert target.stat(f"{base}/absent-2") is None  # this one lists the directory: one round trip
    before = len(seen.sent)
    for i in range(3, 20):
        assert target.stat(f"{base}/absent-{i}") is None
    assert target.stat(f"{base}/svc07.service") is not None
    assert len(seen.sent) == before, "probes in a listed directory need no request"
    assert seen.paths(STAT) == [f"{base}/absent-1"]


def test_prefetch_hint_sends_one_batch_and_changes_no_answer(target: SSHTarget, units: Path) -> None:
    base = str(units)
    wanted = [f"{base}/svc{i:02}.service" for i in range(40)] + [f"{base}/nothing-here", f"{base}/trap.timer"]
    seen = Requests(target)
    target.prefetch(wanted)
    batched = len(seen.sent)
    assert batched >= 40
    for i in range(40):
        assert target.read_file(f"{base}/svc{i:02}.service") == (units / f"svc{i:02}.service").read_bytes()
    assert len(seen.sent) == batched, "every hinted regular file must be served from the batch"
    assert f"{base}/trap.timer" not in seen.paths(OPEN)
    with pytest.raises(FileMissing):
        target.read_file(f"{base}/nothing-here")
    with pytest.raises(FileUnreadable):
        target.read_file(f"{base}/trap.timer")


def test_process_ids_are_batched_and_other_proc_entries_are_not(target: SSHTarget) -> None:
    pids = [p for p in target.list_dir("/proc") if p.isdigit()]
    seen = Requests(target)
    for pid in pids[:2]:
        with contextlib.suppress(FileMissing):  # it exited meanwhile
            target.read_file(f"/proc/{pid}/comm")
    asked = seen.paths(OPEN)
    assert len(asked) >= min(len(pids), 3), "the second pid should have fetched every pid's comm in one batch"
    assert all(p.split("/")[2].isdigit() for p in asked), [p for p in asked if not p.split("/")[2].isdigit()]


def test_concurrent_readers_of_one_batch_do_not_ask_twice(target: SSHTarget) -> None:
    pids = [p for p in target.list_dir("/proc") if p.isdigit()]
    seen = Requests(target)
    errors: list[BaseException] = []

    def walk() -> None:
        for pid in pids:
            try:
                target.read_file(f"/proc/{pid}/cmdline")
                target.readlink(f"/proc/{pid}/exe")
            except (FileMissing, FileUnreadable):
                pass  # exited, or a kernel thread without exe
            except BaseException as e:  # reported below
                errors.append(e)

    threads = [threading.Thread(target=walk) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    for kind in (OPEN, READLINK):
        asked = seen.paths(kind)
        repeated = {p for p in asked if asked.count(p) > 1}
        assert not repeated, f"asked more than once by six walkers: {sorted(repeated)[:5]}"
    assert len(seen.paths(STAT)) == 0, "kernel pseudo-files need no stat before they are opened"


def test_big_files_do_not_spend_the_cache(target: SSHTarget, tmp_path: Path) -> None:
    """A file over 64 KB is read when asked and not kept: the budget is for the thousands of small answers
    (a process table); a 0.7 MB dpkg status kept there once left them uncached, and a fleet three times slower."""
    big = tmp_path / "status"
    big.write_bytes(b"Package: x\n" * 20000)
    seen = Requests(target)
    for _ in range(2):
        assert target.read_file(str(big)) == big.read_bytes()
    assert seen.paths(OPEN) == [str(big), str(big)]
    assert target.files._cache.used < 64 * 1024
