"""``mamoru agent run``: what the platform's scheduler starts — one locked, logged, pruned scan.

A run takes an exclusive lock on a file in the reports directory (``flock``; ``msvcrt.locking`` on Windows).
A second run while one holds it exits at once with ``EXIT_LOCKED`` (4) and says so: nothing was done, and a
distinct code lets the scheduler's history and a script tell "skipped" from "scanned" (the generated systemd
unit lists 4 in ``SuccessExitStatus``, since a skipped run is not a failure). The scan itself is ``mamoru
scan`` run in this process (same pipeline, exit codes 0/1/3, atomic signed publishing and chaining), then the
report is handed to the outbox hook, then reports past the retention setting are pruned, then one JSON line
says what the run did.

Pruning removes only the oldest reports of the series, in chain order, and stops at the first report it must
keep, so what remains is one unbroken chain. Before any file goes, the pruned report's hash is added to a
signed record (``reports.chain.PRUNED_NAME``), which ``verify --chain`` needs to accept the missing
predecessor of the oldest remaining report. A run killed at any moment leaves either the report in place, or
the record naming it and the report (or only its ``.sig``) still there: both verify, and the next run removes
what is left. An unsigned series is never pruned (an unsigned record would let anyone hide a removal).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, Protocol

from agent.config.agentfile import AgentConfig

EXIT_LOCKED = 4
LOCK_NAME = ".mamoru-agent.lock"
STATE_NAME = ".mamoru-agent-state"  # the last run, for ``agent status`` (hidden, not *.json: never a report)
LOG_NAME = "mamoru-agent.log"
STATE_SCHEMA = "mamoru-agent-state/1"
DAY = 86400.0


class AlreadyRunning(Exception):
    """Another ``agent run`` holds the lock."""


class Outbox(Protocol):
    """What ``agent run`` and ``agent status`` need of the delivery queue (helper A1's ``agent.outbox``)."""

    def enqueue(self, report: Path, signature: Path | None) -> None: ...

    def is_queued(self, report: Path) -> bool: ...

    def size(self) -> int: ...

    def last_delivery(self) -> str | None: ...


def outbox_for(cfg: AgentConfig) -> Outbox | None:
    """The outbox of ``cfg``'s push target (``DIR/.mamoru-outbox``, the one ``mamoru push DIR`` uses), or None
    when no push target is configured. Opening it is cheap: it is a SQLite file."""
    if not cfg.get("push"):
        return None
    return QueueView(Path(cfg["reports"]), cfg)


class QueueView:
    """``agent.outbox``'s queue as ``agent run`` and ``agent status`` see it.

    The report goes in with its ``.sig`` (only signed reports are delivered: the server verifies them), then one
    delivery pass runs. A delivery that fails is the outbox's business (retried later, with backoff); it never
    changes the scan's exit code, and the run's log line says what happened.
    """

    def __init__(self, reports: Path, cfg: AgentConfig) -> None:
        self.directory = reports / ".mamoru-outbox"
        self.cfg = cfg

    def _open(self) -> Any:
        from agent.outbox import Outbox as Queue

        return Queue.open(self.directory)

    def enqueue(self, report: Path, signature: Path | None) -> None:
        """Queue ``report`` and every other signed report of the series not yet delivered (a run killed
        between writing its report and queuing it leaves one behind: this run picks it up)."""
        from agent.outbox import queue_directory

        with self._open() as queue:
            queue_directory(queue, report.parent)

    def deliver(self) -> dict[str, Any]:
        from agent.push import Client, deliver

        push = self.cfg["push"]
        with self._open() as queue:
            if queue.destination() not in (None, push["url"]):
                return {"delivered": 0, "error": "the outbox belongs to another destination"}
            queue.set_destination(push["url"])
            done = deliver(queue, Client.make(push["url"], push["token_file"]))
            return {"delivered": len(done.confirmed), "refused": len(done.refused), "failures": len(done.failures),
                    "busy": done.busy, "waiting": queue.status().queued}

    def is_queued(self, report: Path) -> bool:
        import hashlib

        sha = hashlib.sha256(report.read_bytes()).hexdigest()
        with self._open() as queue:
            return any(i.sha256 == sha for i in queue.due(now=float("inf"), include_refused=True))

    def size(self) -> int:
        with self._open() as queue:
            return int(queue.status().queued)

    def last_delivery(self) -> str | None:
        with self._open() as queue:
            last = queue.status().last_delivery
        return None if last is None else _iso(last)


# --- lock --------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def run_lock(directory: Path) -> Iterator[None]:
    """Hold the agent's lock for the run, or raise AlreadyRunning at once (never wait)."""
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            _lock_nb(fd)
        except OSError:
            raise AlreadyRunning(_holder(fd)) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # releases the lock (and a killed process's lock dies with it)


def _lock_nb(fd: int) -> None:
    if sys.platform == "win32":
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _holder(fd: int) -> str:
    """Who holds the lock, from the pid it wrote (best effort: Windows may refuse to read a locked byte)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        os.lseek(fd, 0, os.SEEK_SET)
        return f"pid {int(os.read(fd, 32).split()[0])}"
    return "another process"


# --- the run -----------------------------------------------------------------------------------------------

def report_path(directory: Path, now: float) -> Path:
    """``report-YYYYmmddTHHMMSSZ.json`` of this second, or of the next free one (waiting for it, lock held), so
    that names sort in the order the runs happened."""
    while True:
        stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        path = directory / f"report-{stamp}.json"
        if not path.exists() and not Path(f"{path}.sig").exists():
            return path
        time.sleep(max(0.0, int(now) + 1 - time.time()) + 0.01)
        now = max(time.time(), int(now) + 1)


def scan_argv(cfg: AgentConfig, output: Path) -> list[str]:
    argv = ["scan", "--quiet", "--output", str(output), "--lang", cfg.get("lang", "en")]
    if cfg.get("policy"):
        argv += ["--policy", str(cfg["policy"])]
    if cfg.get("sign_key"):
        argv += ["--sign-key", str(cfg["sign_key"])]
    if cfg.get("scope"):
        argv += ["--scope", cfg["scope"]]
    for check_id in cfg.get("checks", []):
        argv += ["--check", check_id]
    return argv


def run(cfg: AgentConfig) -> tuple[int, dict[str, Any]]:
    """One scheduled run: (exit code, the log record). Raises AlreadyRunning when another run is going."""
    from agent.cli.main import main as mamoru
    from reports.atomic import clean_stale_temps

    directory = Path(cfg["reports"])
    directory.mkdir(parents=True, exist_ok=True, mode=0o750)
    with run_lock(directory):
        started = time.time()
        record: dict[str, Any] = {"event": "mamoru-agent-run", "started": _iso(started), "pid": os.getpid()}
        clean_stale_temps(directory, names=(STATE_NAME, PRUNED_NAME_, LOCK_NAME))
        output = report_path(directory, started)
        code = mamoru(scan_argv(cfg, output))
        written = output.exists()
        signature = Path(f"{output}.sig")
        record.update(exit=code, report=output.name if written else None,
                      signed=written and signature.exists())
        outbox = outbox_for(cfg)
        if written and outbox is not None:  # the report and its .sig go to the outbox, then one delivery pass
            try:
                outbox.enqueue(output, signature if signature.exists() else None)
                record["queued"] = True
                if isinstance(outbox, QueueView):
                    record["delivery"] = outbox.deliver()
            except Exception as e:  # delivery never costs the report: it stays queued, the log line says why
                record["delivery_error"] = f"{type(e).__name__}: {e}"
        record["pruned"], record["prune_note"] = prune(cfg, outbox)
        record["finished"] = _iso(time.time())
        _save_state(directory, record)
        return code, record


PRUNED_NAME_ = ".mamoru-pruned"  # reports.chain.PRUNED_NAME, without importing the chain at start-up


def log_line(cfg: AgentConfig, record: dict[str, Any]) -> None:
    """One JSON line: to stdout under systemd (which puts it in the journal), else appended to a file."""
    line = json.dumps(record, ensure_ascii=False, sort_keys=True)
    if os.environ.get("INVOCATION_ID") or os.environ.get("JOURNAL_STREAM"):
        print(line, flush=True)
        return
    path = Path(cfg["reports"]) / LOG_NAME
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")


def _save_state(directory: Path, record: dict[str, Any]) -> None:
    from reports.atomic import write_atomic

    write_atomic(directory / STATE_NAME, json.dumps({"schema": STATE_SCHEMA, **record}).encode(), mode=0o640)


def load_state(directory: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((directory / STATE_NAME).read_bytes()[:1_000_000])
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("schema") == STATE_SCHEMA else None


# --- retention ---------------------------------------------------------------------------------------------

def prune(cfg: AgentConfig, outbox: Outbox | None, *, now: float | None = None) -> tuple[list[str], str]:
    """Remove the oldest reports past ``retention``; returns (their names, why fewer than asked, if so)."""
    retention = cfg.get("retention") or {}
    if not retention:
        return [], ""
    if not cfg.get("sign_key"):
        return [], "not pruned: the series is unsigned, and only a signed record can show a removal was meant"
    if cfg.get("push") and outbox is None:
        return [], "not pruned: a push target is set but the outbox is not available to say what is delivered"
    from reports.chain import verify_chain

    directory = Path(cfg["reports"])
    result = verify_chain(directory, lambda r: None)  # links only: this run's own directory
    scope = cfg.get("scope") or str(directory.resolve())
    series = result.series.get(scope, [])
    when = time.time() if now is None else now
    doomed = []
    for i, r in enumerate(series[:-1]):  # the newest report always stays
        too_many = "count" in retention and len(series) - i > retention["count"]
        too_old = "days" in retention and _age_days(r.finished, when) > retention["days"]
        if not (too_many or too_old) or (outbox is not None and outbox.is_queued(r.path)):
            break  # stop at the first one kept: what remains stays one unbroken chain
        doomed.append(r)
    if not doomed:
        return [], ""
    _record_pruned(directory, doomed, str(cfg["sign_key"]), when)
    for r in doomed:
        with contextlib.suppress(FileNotFoundError):
            r.path.unlink()  # the report first: a kill here leaves an orphan .sig, never an unsigned report
        with contextlib.suppress(FileNotFoundError):
            Path(f"{r.path}.sig").unlink()
    _remove_orphan_signatures(directory)
    return [r.name for r in doomed], ""


def _age_days(finished: str, now: float) -> float:
    try:
        return (now - dt.datetime.fromisoformat(finished).timestamp()) / DAY
    except ValueError:
        return 0.0  # unknown age: kept


def _record_pruned(directory: Path, doomed: list[Any], sign_key: str, now: float) -> None:
    """Add ``doomed`` to the signed pruned record, .sig first then the record (as ``publish`` does)."""
    from agent.cli.keygen_cmd import load_key_for_cli
    from reports.atomic import fsync_dir, stage
    from reports.chain import PRUNED_NAME, PRUNED_SCHEMA, read_pruned
    from reports.signing import sshsig

    try:
        found = read_pruned(directory)
    except ValueError:
        found = None  # a damaged record is replaced; verify --chain named it as damaged until now
    entries = found[1] if found else []
    known = {e["sha256"] for e in entries}
    entries += [{"file": r.name, "sha256": r.sha256, "run_id": r.run_id, "scope": r.scope, "started": r.started,
                 "finished": r.finished, "pruned_at": _iso(now)} for r in doomed if r.sha256 not in known]
    data = json.dumps({"schema": PRUNED_SCHEMA, "pruned": entries}, indent=1).encode()
    key = load_key_for_cli(sign_key)
    staged = stage(directory / PRUNED_NAME, data, mode=0o644)
    try:
        sig = stage(directory / f"{PRUNED_NAME}.sig", sshsig.sign(staged.read_back(), key.private))
        sig.commit()
        fsync_dir(directory)
        staged.commit()
        fsync_dir(directory)
    finally:
        staged.discard()


def _remove_orphan_signatures(directory: Path) -> None:
    """``.sig`` files of reports already pruned (a run killed between the two unlinks)."""
    from reports.chain import read_pruned

    with contextlib.suppress(ValueError, OSError):
        found = read_pruned(directory)
        names = {e.get("file") for e in found[1]} if found else set()
        for name in names:
            if isinstance(name, str) and "/" not in name and not (directory / name).exists():
                with contextlib.suppress(FileNotFoundError):
                    (directory / f"{name}.sig").unlink()


def say_locked(why: str, stream: IO[str]) -> None:
    stream.write(f"mamoru agent run: another run is in progress ({why}); this one does nothing and exits "
                 f"{EXIT_LOCKED}\n")
