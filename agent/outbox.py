"""The outbox: signed reports waiting to be delivered, on disk, so that nothing is lost and nothing sent twice.

A store-and-forward queue in one SQLite file (stdlib ``sqlite3``), in WAL mode with ``synchronous=FULL``:
every change is one transaction, so a ``kill -9`` or a power cut leaves the queue as it was before or after
the change, never between. SQLite rather than files in a directory because "queued, delivered, dropped"
must change together with the item (a delivered report leaves ``items`` and enters ``sent`` in one commit).

Each item is a report and its ``.sig``, identified by the SHA-256 of the report's bytes: the idempotency key
the server dedups on (``docs/ingest-api.md``). The bytes themselves are copied into the queue, not
referenced by path: what is sent is exactly what was hashed and signed, even if the file is later pruned by
retention or written over.

- ``enqueue`` is idempotent: the same SHA-256 twice is one item; one already delivered (``sent``) is not
  queued again.
- An item leaves the queue only when the server has confirmed it (``confirm``). A refusal (``refuse``) keeps
  it, flagged with the server's reason; a transient failure (``retry_later``) stores ``next_attempt_at``
  (exponential backoff with jitter, or the server's Retry-After), so a restart keeps the schedule.
- A size cap (items and bytes) drops the OLDEST report (by its run's start time) and records the gap
  (``gaps``: SHA-256, run id, when, why), so ``agent status`` and the dashboard can say that a report was
  never delivered. A report dropped earlier can be queued again (``mamoru push DIR``), which closes the gap
  once it is delivered.

The directory is 0700 and the database files 0600: the queue holds the reports, which name hosts, users and
findings. No credential is ever stored here (the token stays in its file).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from agent.errors import ConfigError

DB_NAME = "outbox.sqlite3"
LOCK_NAME = "outbox.lock"
#: Defaults of the cap: a year and more of daily reports of a 64-host office (~60 KB to a few MB each).
MAX_ITEMS = 1000
MAX_BYTES = 512 * 1024 * 1024
#: Backoff: the n-th failure waits between BASE·2ⁿ⁻¹/2 and BASE·2ⁿ⁻¹ seconds ("equal jitter": never zero, so
#: a server that is down is not hammered; spread, so a fleet that lost the same server does not return at
#: once), at most MAX_BACKOFF_S. A Retry-After the server sends is honoured up to MAX_RETRY_AFTER_S.
BASE_BACKOFF_S = 2.0
MAX_BACKOFF_S = 3600.0
MAX_RETRY_AFTER_S = 24 * 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    run_id TEXT NOT NULL,
    started TEXT NOT NULL,
    report BLOB NOT NULL,
    sig BLOB NOT NULL,
    size INTEGER NOT NULL,
    queued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    refused INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sent (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    run_id TEXT NOT NULL,
    sent_at REAL NOT NULL,
    status INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS gaps (
    sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    run_id TEXT NOT NULL,
    dropped_at REAL NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclasses.dataclass(frozen=True)
class Item:
    sha256: str
    name: str
    run_id: str
    report: bytes
    sig: bytes
    attempts: int
    next_attempt_at: float
    last_error: str
    refused: bool


@dataclasses.dataclass(frozen=True)
class Gap:
    sha256: str
    name: str
    run_id: str
    dropped_at: float
    reason: str


@dataclasses.dataclass(frozen=True)
class Status:
    """What ``agent status`` and ``mamoru push`` say about the queue."""

    queued: int
    queued_bytes: int
    refused: int
    next_attempt_at: float | None  # earliest retry of an item not refused; None: nothing waiting
    sent: int
    last_delivery: float | None
    gaps: list[Gap]


def backoff(attempts: int, *, rand: float | None = None) -> float:
    """Seconds to wait after the ``attempts``-th failure in a row (equal jitter, capped)."""
    ceiling = min(MAX_BACKOFF_S, BASE_BACKOFF_S * 2 ** max(0, min(attempts, 40) - 1))
    r = secrets.SystemRandom().random() if rand is None else rand
    return float(ceiling / 2 + r * ceiling / 2)


def _private_dir(directory: Path) -> None:
    """Create ``directory`` 0700, or check an existing one is ours and tighten it (never follow a link)."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.lstat(directory)
    except OSError as e:
        raise ConfigError(f"outbox {directory}: cannot create it ({e.strerror})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"outbox {directory}: not a directory")
    if st.st_uid != os.geteuid():
        raise ConfigError(f"outbox {directory}: owned by another user (uid {st.st_uid})")
    if stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(directory, 0o700)


def _private_file(path: Path) -> None:
    """Create ``path`` 0600 before SQLite opens it: SQLite gives its -wal and -shm files the same mode."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as e:
        raise ConfigError(f"outbox {path}: cannot open it ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            raise ConfigError(f"outbox {path}: not a regular file of this user")
        if stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


class Outbox:
    """One outbox directory (``outbox.sqlite3`` and its lock). Open with ``Outbox.open(directory)``."""

    def __init__(self, directory: Path, db: sqlite3.Connection, *, max_items: int, max_bytes: int) -> None:
        self.directory = directory
        self.db = db
        self.max_items = max_items
        self.max_bytes = max_bytes

    @classmethod
    def open(cls, directory: str | os.PathLike[str], *, max_items: int = MAX_ITEMS,
             max_bytes: int = MAX_BYTES) -> Outbox:
        d = Path(directory)
        _private_dir(d)
        path = d / DB_NAME
        _private_file(path)
        try:
            db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a confirmed delivery survives a power cut
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            raise ConfigError(f"outbox {path}: not a usable SQLite database ({e})") from None
        return cls(d, db, max_items=max_items, max_bytes=max_bytes)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE: no upgrade deadlock between two writers)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- queueing ------------------------------------------------------------------------------------------

    def enqueue(self, *, sha256: str, name: str, run_id: str, started: str, report: bytes, sig: bytes,
                now: float | None = None) -> str:
        """Queue a signed report for delivery; returns "queued", "already_queued", "already_sent" or "dropped".

        Idempotent by ``sha256`` (the SHA-256 of ``report``, checked here). "dropped": queued, then at once
        the oldest over the cap (recorded in ``gaps``).
        """
        import hashlib

        if hashlib.sha256(report).hexdigest() != sha256:
            raise ValueError("sha256 is not the SHA-256 of the report bytes")
        t = time.time() if now is None else now
        with self._tx() as db:
            if db.execute("SELECT 1 FROM sent WHERE sha256=?", (sha256,)).fetchone():
                return "already_sent"
            if db.execute("SELECT 1 FROM items WHERE sha256=?", (sha256,)).fetchone():
                return "already_queued"
            db.execute("INSERT INTO items (sha256, name, run_id, started, report, sig, size, queued_at, "
                       "next_attempt_at) VALUES (?,?,?,?,?,?,?,?,?)",
                       (sha256, name, run_id, started, report, sig, len(report) + len(sig), t, t))
            dropped = self._enforce_cap(db, t)
        return "dropped" if sha256 in dropped else "queued"

    def _enforce_cap(self, db: sqlite3.Connection, now: float) -> set[str]:
        dropped: set[str] = set()
        while True:
            count, total = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM items").fetchone()
            if count <= self.max_items and (total <= self.max_bytes or count <= 1):
                return dropped
            sha, name, run_id = db.execute(
                "SELECT sha256, name, run_id FROM items ORDER BY started, queued_at, rowid LIMIT 1").fetchone()
            why = (f"outbox full: more than {self.max_items} reports" if count > self.max_items
                   else f"outbox full: more than {self.max_bytes} bytes")
            db.execute("DELETE FROM items WHERE sha256=?", (sha,))
            db.execute("INSERT OR REPLACE INTO gaps (sha256, name, run_id, dropped_at, reason) VALUES (?,?,?,?,?)",
                       (sha, name, run_id, now, why))
            dropped.add(sha)

    # -- delivery bookkeeping ------------------------------------------------------------------------------

    def due(self, *, now: float | None = None, include_refused: bool = False) -> list[Item]:
        """Items whose next attempt is due, oldest report first (refused ones only when asked)."""
        t = time.time() if now is None else now
        rows = self.db.execute(
            "SELECT sha256, name, run_id, report, sig, attempts, next_attempt_at, last_error, refused FROM items "
            "WHERE (refused=0 AND next_attempt_at<=?) OR (refused=1 AND ?) ORDER BY started, queued_at, rowid",
            (t, 1 if include_refused else 0)).fetchall()
        return [Item(r[0], r[1], r[2], bytes(r[3]), bytes(r[4]), r[5], r[6], r[7], bool(r[8])) for r in rows]

    def confirm(self, sha256: str, status: int, *, now: float | None = None) -> None:
        """The server has it (201 created, 200 already had it): out of the queue, remembered as sent."""
        t = time.time() if now is None else now
        with self._tx() as db:
            row = db.execute("SELECT name, run_id FROM items WHERE sha256=?", (sha256,)).fetchone()
            if row is None:
                return
            db.execute("DELETE FROM items WHERE sha256=?", (sha256,))
            db.execute("INSERT OR REPLACE INTO sent (sha256, name, run_id, sent_at, status) VALUES (?,?,?,?,?)",
                       (sha256, row[0], row[1], t, status))
            db.execute("DELETE FROM gaps WHERE sha256=?", (sha256,))
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_delivery', ?)", (repr(t),))

    def refuse(self, sha256: str, why: str) -> None:
        """The server refused it for good (a 4xx): kept and flagged with the reason, never silently dropped."""
        with self._tx() as db:
            db.execute("UPDATE items SET refused=1, attempts=attempts+1, last_error=? WHERE sha256=?",
                       (why, sha256))

    def retry_later(self, sha256: str, why: str, *, retry_after: float | None = None,
                    now: float | None = None) -> float:
        """A transient failure: schedule the next attempt (Retry-After if given, else backoff). Returns when."""
        t = time.time() if now is None else now
        with self._tx() as db:
            row = db.execute("SELECT attempts FROM items WHERE sha256=?", (sha256,)).fetchone()
            if row is None:
                return t
            attempts = int(row[0]) + 1
            wait = min(retry_after, MAX_RETRY_AFTER_S) if retry_after is not None else backoff(attempts)
            db.execute("UPDATE items SET attempts=?, next_attempt_at=?, last_error=?, refused=0 WHERE sha256=?",
                       (attempts, t + wait, why, sha256))
        return t + wait

    def hold_until(self, when: float, *, now: float | None = None) -> None:
        """The server cannot be reached: no item is due before ``when`` (their attempt counts stay)."""
        t = time.time() if now is None else now
        with self._tx() as db:
            db.execute("UPDATE items SET next_attempt_at=? WHERE refused=0 AND next_attempt_at<=?", (when, t))

    # -- destination and status ----------------------------------------------------------------------------

    def destination(self) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key='destination'").fetchone()
        return str(row[0]) if row else None

    def set_destination(self, url: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('destination', ?)", (url,))

    def status(self) -> Status:
        queued, size, refused = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(refused), 0) FROM items").fetchone()
        nxt = self.db.execute("SELECT MIN(next_attempt_at) FROM items WHERE refused=0").fetchone()[0]
        sent = self.db.execute("SELECT COUNT(*) FROM sent").fetchone()[0]
        last = self.db.execute("SELECT value FROM meta WHERE key='last_delivery'").fetchone()
        gaps = [Gap(*r) for r in self.db.execute(
            "SELECT sha256, name, run_id, dropped_at, reason FROM gaps ORDER BY dropped_at, name")]
        return Status(queued=queued, queued_bytes=size, refused=refused, next_attempt_at=nxt, sent=sent,
                      last_delivery=float(last[0]) if last else None, gaps=gaps)

    def refused_items(self) -> list[Item]:
        return [i for i in self.due(now=0.0, include_refused=True) if i.refused]

    def is_sent(self, sha256: str) -> bool:
        return self.db.execute("SELECT 1 FROM sent WHERE sha256=?", (sha256,)).fetchone() is not None

    @contextlib.contextmanager
    def delivery_lock(self) -> Iterator[bool]:
        """Held while delivering (True), so two deliveries never send the same item at once; False when
        another process holds it. An flock: it dies with its process, so a kill -9 never leaves it stuck."""
        import fcntl

        fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
            yield True
        finally:
            os.close(fd)


def enqueue(outbox: Outbox, report_path: str | os.PathLike[str]) -> str:
    """Queue the signed report at ``report_path`` (and its ``.sig``): what ``agent run`` calls after a scan.

    Returns what ``Outbox.enqueue`` returns. Raises ConfigError when the report or its signature cannot be
    read, or the report has no signature (only signed reports are delivered: the server verifies them).
    """
    from reports.chain import SIG_SUFFIX
    from reports.chain import _read_one as read_report  # the chain's own bounded, strict reader of one file

    path = Path(report_path)
    r = read_report(path)
    if r is None or r.doc is None:
        raise ConfigError(f"{path}: cannot queue it: {r.error if r else 'not a mamoru report'}")
    sig = read_signature(Path(f"{path}{SIG_SUFFIX}"))
    return outbox.enqueue(sha256=r.sha256, name=r.name, run_id=r.run_id, started=r.started, report=r.data,
                          sig=sig)


def queue_directory(outbox: Outbox, directory: Path) -> tuple[int, int, int]:
    """Queue every signed report of ``directory`` not yet delivered: (queued now, already sent, unsigned).

    Both ``mamoru push DIR`` and ``agent run`` call this, so a report written by a run that was killed before
    it was queued is picked up by the next one: queuing the whole series, not only the newest report, is what
    makes "nothing is lost" hold across crashes. Raises OSError when the directory cannot be listed.
    """
    from reports.chain import SIG_SUFFIX, read_reports

    queued = sent = unsigned = 0
    for r in read_reports(directory):
        sig_path = Path(f"{r.path}{SIG_SUFFIX}")
        if r.doc is None or not sig_path.exists():
            unsigned += 1
            continue
        if outbox.is_sent(r.sha256):
            sent += 1
            continue
        outcome = outbox.enqueue(sha256=r.sha256, name=r.name, run_id=r.run_id, started=r.started, report=r.data,
                                 sig=read_signature(sig_path))
        queued += outcome == "queued"
        sent += outcome == "already_sent"
    return queued, sent, unsigned


MAX_SIG_BYTES = 64 * 1024  # an Ed25519 SSHSIG is ~300 bytes


def read_signature(path: Path) -> bytes:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_SIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no signature: only signed reports are delivered") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read it ({e.strerror})") from None
    if len(data) > MAX_SIG_BYTES:
        raise ConfigError(f"{path}: larger than any SSH signature")
    return data
