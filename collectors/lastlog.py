"""When each account last logged in: lastlog, lastlog2 and wtmp, read as the binary files they are.

``/var/log/lastlog`` keeps one fixed-size record per UID for ever (until an
account is removed); ``wtmp`` has every session but is rotated, so it only
reaches back a month or two; newer distributions replace lastlog with the
SQLite database of lastlog2. Each source gives the newest login it knows, and
the check takes the newest of all. Binary files are parsed here with
``struct`` on x86-64/aarch64 glibc layouts (little-endian, 32-bit times), so
the same code works on an image or over SSH, where the ``lastlog`` command is
not an option. The facts also say which accounts can log in with an SSH key,
because a locked password does not stop those. A file that cannot be read as its kind is a ``problem``: a
code with its parts (collectors/problems.py).
"""

from __future__ import annotations

import sqlite3
import struct
import time
from typing import Any

from agent.targets.base import FileMissing, Target, TargetError
from collectors.accounts import parse_passwd
from collectors.base import Collector, Facts
from collectors.problems import Problem, unreadable
from collectors.textfiles import read_text

LASTLOG = "/var/log/lastlog"
LASTLOG2 = "/var/lib/lastlog/lastlog2.db"
WTMP_FILES = ("/var/log/wtmp", "/var/log/wtmp.1")
#: struct lastlog {int32_t ll_time; char ll_line[32]; char ll_host[256];}
LASTLOG_RECORD = struct.Struct("<i32s256s")
#: struct utmp on 64-bit glibc: type, pid, line, id, user, host, exit, session, tv_sec, tv_usec, addr, unused.
UTMP_RECORD = struct.Struct("<hxxi32s4s32s256shhiii16s20s")
USER_PROCESS = 7
# lastlog is sparse and indexed by UID: UID 65534 alone makes it 19 MB.
MAX_BINARY = 64 * 1024 * 1024
KEY_FILES = (".ssh/authorized_keys", ".ssh/authorized_keys2")


class RecordsProblem(Problem):
    """A login-record file that is not what its name says: a code and its parts."""


def parse_lastlog(data: bytes) -> dict[str, int]:
    if len(data) % LASTLOG_RECORD.size:
        raise RecordsProblem("lastlog_size", size=len(data), record=LASTLOG_RECORD.size)
    out: dict[str, int] = {}
    for uid, (when, _line, _host) in enumerate(LASTLOG_RECORD.iter_unpack(data)):
        if when > 0:
            out[str(uid)] = when
    return out


def parse_wtmp(data: bytes) -> tuple[dict[str, int], int | None]:
    """Newest USER_PROCESS login per user name, and the oldest record's time (how far wtmp reaches back)."""
    usable = len(data) - len(data) % UTMP_RECORD.size  # a record being written may be cut short
    latest: dict[str, int] = {}
    oldest: int | None = None
    for rec in UTMP_RECORD.iter_unpack(data[:usable]):
        ut_type, user_raw, when = rec[0], rec[4], rec[9]
        if when > 0:
            oldest = when if oldest is None else min(oldest, when)
        if ut_type != USER_PROCESS:
            continue
        user = user_raw.split(b"\0", 1)[0].decode("utf-8", "replace")
        if user and when > latest.get(user, 0):
            latest[user] = when
    return latest, oldest


def parse_lastlog2(data: bytes) -> dict[str, int]:
    db = sqlite3.connect(":memory:")
    try:
        db.deserialize(data)
        rows = db.execute("SELECT Name, Time FROM Lastlog2").fetchall()
    except sqlite3.Error as e:
        raise RecordsProblem("not_lastlog2", detail=str(e)) from e
    finally:
        db.close()
    return {str(name): int(when) for name, when in rows if name and isinstance(when, int) and when > 0}


def _source(target: Target, path: str, parse: Any) -> dict[str, Any]:
    try:
        data = target.read_file(path, max_bytes=MAX_BINARY)
    except FileMissing:
        return {"path": path, "present": False, "problem": None}
    except TargetError as e:
        return {"path": path, "present": True, "problem": unreadable(e)}
    try:
        return {"path": path, "present": True, "problem": None, "records": parse(data)}
    except RecordsProblem as e:
        return {"path": path, "present": True, "problem": {**e.problem, "path": path}}


class LastlogCollector(Collector):
    id = "lastlog"
    lists = ("/var/log", "/var/lib/lastlog")
    version = "2"  # 2: problems are codes with their parts

    def collect(self, target: Target) -> Facts:
        facts: Facts = {
            "now": int(time.time()),
            "lastlog": _source(target, LASTLOG, parse_lastlog),
            "lastlog2": _source(target, LASTLOG2, parse_lastlog2),
            "wtmp": [],
            "authorized_keys": {},
        }
        for path in WTMP_FILES:
            src = _source(target, path, parse_wtmp)
            if "records" in src:
                latest, oldest = src.pop("records")
                src.update(records=latest, oldest=oldest)
            facts["wtmp"].append(src)
        try:
            users, _ = parse_passwd(read_text(target, "/etc/passwd").lines)
        except TargetError:
            users = []  # the accounts collector reports an unreadable passwd; checks need both
        target.prefetch((f"{u['home'].rstrip('/')}/{rel}" for u in users if u["home"].rstrip("/")
                         for rel in KEY_FILES), op="stat")
        for u in users:
            home = u["home"].rstrip("/")
            if not home:
                continue
            state: bool | None = False
            for rel in KEY_FILES:
                try:
                    if target.exists(f"{home}/{rel}"):
                        state = True
                        break
                except TargetError:
                    state = None  # a home we may not look into: unknown, not "no keys"
            facts["authorized_keys"][u["name"]] = state
        return facts


COLLECTOR = LastlogCollector()
