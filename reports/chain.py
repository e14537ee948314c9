"""The hash chain of a report series: each report records the SHA-256 and run id of the one before.

A series is the reports of one scope in one directory (the scope is the output
directory unless ``mamoru scan --scope NAME`` names it). The link is hashed over
the previous file's exact bytes and sits inside the signed report, so without
the signing key nobody can remove, alter, rename or reorder a report without
``mamoru verify --chain`` naming it. What a chain cannot show on its own is
that the *newest* reports were deleted: the verifier prints the newest run id
so a recipient can compare it with the one they were sent.

The newest report of a series is found through the links (the one no other
report points to), never by file times, which copies and backups change.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reports.notes import Note

from agent.errors import ConfigError

SIG_SUFFIX = ".sig"
#: Beside the reports: the signed record of reports removed on purpose (``mamoru agent run`` retention). A
#: report whose predecessor is gone verifies only when a signature-checked record names that predecessor's
#: SHA-256; without the record (or with a bad signature) the removal is reported as before. Hidden and not
#: ``*.json``, so it is never read as a report (nor counted by MN-03).
PRUNED_NAME = ".mamoru-pruned"
PRUNED_SCHEMA = "mamoru-pruned/1"
REPORT_SCHEMA_PREFIX = "mamoru-report/"
MAX_REPORT_BYTES = 256 * 1024 * 1024


@dataclasses.dataclass
class ReportFile:
    path: Path
    data: bytes
    doc: dict[str, Any] | None  # None: not readable as a mamoru report (damaged)
    error: str = ""

    @property
    def name(self) -> str:
        return self.path.name

    @functools.cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def run_info(self) -> dict[str, Any]:
        run = self.doc.get("run") if self.doc else None
        return run if isinstance(run, dict) else {}

    @property
    def run_id(self) -> str:
        return str(self.run_info().get("id", ""))

    @property
    def scope(self) -> str:
        return str(self.run_info().get("scope", ""))

    @property
    def started(self) -> str:
        return str(self.run_info().get("started", ""))

    @property
    def finished(self) -> str:
        return str(self.run_info().get("finished", ""))

    @property
    def previous(self) -> dict[str, Any] | None:
        prev = self.run_info().get("previous")
        return prev if isinstance(prev, dict) else None


#: How every report begins (``render_json``: ``{`` then ``"schema": "mamoru-report/…"`` first, indented or
#: not). Checked on the first bytes before anything is parsed, so that a large or hostile JSON file beside
#: the reports costs one small read, not a parse.
_REPORT_START = re.compile(rb'\A\s*\{\s*"schema"\s*:\s*"' + re.escape(REPORT_SCHEMA_PREFIX.encode()))
_HEAD_BYTES = 4096


def parse_json(data: bytes) -> tuple[Any, str]:
    """``json.loads`` that never raises: (document, "") or (None, why not).

    Nesting deeper than the interpreter's recursion limit (a 4 KB file of brackets) raises RecursionError
    in ``json.loads``; it is a malformed file like any other, not a crash.
    """
    try:
        return json.loads(data), ""
    except (ValueError, UnicodeDecodeError) as e:
        return None, f"not valid JSON ({e})"
    except RecursionError:
        return None, "not valid JSON (nested too deeply)"


def _open_regular(path: Path) -> tuple[int, int] | None:
    """(fd, size) of a regular file, opened without blocking (a FIFO swapped in after the listing would
    otherwise hang the scan); None when it is something else. Raises OSError when it cannot be opened."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        return None
    return fd, st.st_size


def _read_one(path: Path) -> ReportFile | None:
    """A ``*.json`` file as a report (or a damaged one); None for someone else's file.

    A file that neither begins like a mamoru report nor has a signature beside it is someone else's: it is
    recognised from its first bytes and never parsed. One that begins like a report, or has a ``.sig``,
    but cannot be read as one is a damaged report.
    """
    try:
        opened = _open_regular(path)
    except OSError as e:
        if Path(f"{path}{SIG_SUFFIX}").exists():
            return ReportFile(path=path, data=b"", doc=None, error=f"cannot read it ({e.strerror})")
        return None
    if opened is None:
        return None
    fd, size = opened
    signed = Path(f"{path}{SIG_SUFFIX}").exists()
    with os.fdopen(fd, "rb") as fh:
        try:
            head = fh.read(_HEAD_BYTES)
            looks_like_report = _REPORT_START.match(head) is not None
            if not looks_like_report and not signed:
                return None
            if size > MAX_REPORT_BYTES:
                return ReportFile(path=path, data=head, doc=None,
                                  error=f"{size} bytes is larger than any report ({MAX_REPORT_BYTES})")
            data = head + fh.read(max(0, size - len(head)))  # read(n) allocates n bytes first
        except OSError as e:
            return ReportFile(path=path, data=b"", doc=None, error=f"cannot read it ({e.strerror})")
    if not looks_like_report:
        return ReportFile(path=path, data=data, doc=None, error="it does not begin like a mamoru report")
    doc, why = parse_json(data)
    if doc is None:
        return ReportFile(path=path, data=data, doc=None, error=why)
    if isinstance(doc, dict) and str(doc.get("schema", "")).startswith(REPORT_SCHEMA_PREFIX):
        return ReportFile(path=path, data=data, doc=doc)
    return ReportFile(path=path, data=data, doc=None, error="not a mamoru report")


def _candidates(directory: str | Path) -> list[Path]:
    """The ``*.json`` names in ``directory``; raises OSError when it cannot be listed (glob would say
    "empty", and a new report would then silently start a new series)."""
    with os.scandir(directory) as it:
        names = sorted(e.name for e in it if e.name.endswith(".json") and not e.name.startswith("."))
    return [Path(directory) / n for n in names]


def read_reports(directory: str | Path) -> list[ReportFile]:
    """Every ``*.json`` mamoru report in ``directory`` (not recursive), plus damaged ones."""
    return [r for r in map(_read_one, _candidates(directory)) if r is not None]


# --- the index that finding the previous report uses ----------------------------------------------------

#: Beside the reports: what linking needs of each of them (hash, scope, run id, times, link), so that a new
#: scan does not parse every earlier report again (a year of daily 64-host reports is gigabytes of JSON).
#: Only a cache, checked against each file's size, modification time and inode: ``verify --chain`` never
#: reads it, so a wrong entry can at worst make a new report link wrongly, which verification then shows.
INDEX_NAME = ".mamoru-series-index"
_INDEX_SCHEMA = "mamoru-series-index/1"


@dataclasses.dataclass(frozen=True)
class _Entry:
    name: str
    sha256: str
    scope: str
    run_id: str
    started: str
    finished: str
    previous_sha256: str | None

    @classmethod
    def of(cls, r: ReportFile) -> _Entry:
        prev = r.previous.get("sha256") if r.previous else None
        return cls(r.name, r.sha256, r.scope, r.run_id, r.started, r.finished,
                   str(prev) if prev is not None else None)


def _entry_from_index(name: str, raw: Any) -> _Entry | None:
    if not isinstance(raw, dict):
        return None
    fields = ("sha256", "scope", "run_id", "started", "finished")
    if set(raw) != {*fields, "previous_sha256"} or not all(isinstance(raw[f], str) for f in fields):
        return None
    if raw["previous_sha256"] is not None and not isinstance(raw["previous_sha256"], str):
        return None
    return _Entry(name=name, **raw)


def _file_key(path: Path) -> list[int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _load_index(directory: Path) -> dict[str, Any]:
    try:
        opened = _open_regular(directory / INDEX_NAME)
    except OSError:
        return {}
    if opened is None:
        return {}
    fd, size = opened
    with os.fdopen(fd, "rb") as fh:
        try:
            raw = fh.read() if size <= MAX_REPORT_BYTES else b""
        except OSError:
            return {}
    doc = parse_json(raw)[0]
    files = doc.get("files") if isinstance(doc, dict) and doc.get("schema") == _INDEX_SCHEMA else None
    return dict(files) if isinstance(files, dict) else {}


def _series_entries(directory: Path) -> list[_Entry]:
    """What linking needs of every report in ``directory``: from the index where a file is unchanged, read
    afresh where it is new or changed; the index is rewritten when anything differed."""
    from reports.atomic import write_atomic

    known = _load_index(directory)
    files: dict[str, Any] = {}
    entries: list[_Entry] = []
    for path in _candidates(directory):
        key = _file_key(path)
        cached = known.get(path.name)
        if key is not None and isinstance(cached, dict) and cached.get("key") == key:
            files[path.name] = cached
            entry = _entry_from_index(path.name, cached.get("report"))
            if entry is not None:
                entries.append(entry)
                continue
            if cached.get("report") is None:
                continue  # someone else's file, unchanged
            files.pop(path.name)  # a malformed entry: read the file instead
        r = _read_one(path)
        report = _Entry.of(r) if r is not None and r.doc is not None else None
        if report is not None:
            entries.append(report)
        files[path.name] = {"key": key, "report": None if report is None else {
            k: v for k, v in dataclasses.asdict(report).items() if k != "name"}}
    if files != known:
        with contextlib.suppress(OSError):  # only a cache: a read-only directory still gets its report linked
            write_atomic(directory / INDEX_NAME, json.dumps({"schema": _INDEX_SCHEMA, "files": files}).encode(),
                         mode=0o600)
    return entries


@contextlib.contextmanager
def series_lock(directory: str | Path) -> Iterator[None]:
    """Hold an exclusive lock on the directory while one scan links and writes its report.

    Two scans writing into one directory at once would otherwise both link to the same predecessor and
    fork the series. flock on the directory itself: no lock file is left behind.
    """
    try:
        import fcntl
    except ImportError:  # not on POSIX: no locking, a fork is then reported by verify --chain
        yield
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _newest(entries: list[_Entry]) -> tuple[_Entry, list[_Entry]]:
    """The newest report of a series (the head no other report points to; the latest by finish time when
    there are several) and all its heads."""
    referenced = {e.previous_sha256 for e in entries if e.previous_sha256}
    heads = [e for e in entries if e.sha256 not in referenced] or entries
    return max(heads, key=lambda e: (e.finished, e.started, e.name)), heads


def find_previous(directory: str | Path, scope: str, *, signed: bool = False
                  ) -> tuple[dict[str, str] | None, list[Note]]:
    """The link to the newest report of ``scope`` in ``directory`` (None for the first), and warnings.

    With ``signed`` (the new report will be signed), a series in which some report is signed only links
    onto signed reports: a report without its ``.sig`` (a scan killed between the two, or one added
    unsigned) would otherwise enter the signed chain for good. The new report then follows the newest
    signed one, and the warning names the unsigned one, which ``verify --chain`` shows as unsigned.
    """
    from reports.notes import note

    series = [e for e in _series_entries(Path(directory)) if e.scope == scope]
    if not series:
        return None, []
    warnings: list[Note] = []
    newest, heads = _newest(series)
    if signed:
        with_sig = [e for e in series if (Path(directory) / f"{e.name}{SIG_SUFFIX}").exists()]
        if with_sig:
            skipped = newest
            newest, heads = _newest(with_sig)
            if skipped not in with_sig:
                warnings.append(note("unsigned_predecessor", file=skipped.name, run_id=skipped.run_id,
                                     newest=newest.name, directory=str(directory)))
    if len(heads) > 1:
        warnings.append(note("several_heads", directory=str(directory), count=len(heads),
                             names=[e.name for e in heads], newest=newest.name))
    return {"sha256": newest.sha256, "run_id": newest.run_id, "file": newest.name}, warnings


# --- verification ----------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Problem:
    file: str
    message: str
    order: tuple[str, int]  # where in the series it happened: (a run.started, 0 before / 1 at that report)


@dataclasses.dataclass
class ChainResult:
    directory: str
    series: dict[str, list[ReportFile]]  # scope -> reports in chain order
    problems: list[Problem]  # sorted: the first one is the earliest in the series

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None


LAST = "\uffff"  # orders after every timestamp


def verify_chain(directory: str | Path, check_signature: Callable[[ReportFile], str | None],
                 *, scope: str | None = None) -> ChainResult:
    """Check every signature (``check_signature`` returns None or why not) and every link."""
    try:
        everything = read_reports(directory)
    except OSError as e:
        raise ConfigError(f"--chain {directory}: cannot list it ({e.strerror})") from None
    if scope is not None:
        everything = [r for r in everything if r.doc is None or r.scope == scope]
    by_sha = {r.sha256: r for r in everything}
    by_name = {r.name: r for r in everything}
    by_run = {r.run_id: r for r in everything if r.doc is not None and r.run_id}
    problems: list[Problem] = []
    pruned = _pruned(Path(directory), check_signature, problems)
    # Where a report that cannot be read sits in the series: just before whoever recorded it.
    anchor: dict[str, tuple[str, int]] = {}
    for r in everything:
        prev = r.previous
        if prev and isinstance(prev.get("file"), str):
            anchor.setdefault(prev["file"], (r.started, 0))

    def order(r: ReportFile) -> tuple[str, int]:
        return (r.started, 1) if r.started else anchor.get(r.name, (LAST, 1))

    for r in everything:
        if r.doc is None:
            problems.append(Problem(r.name, f"{r.name} was altered: {r.error}", order(r)))
        why = check_signature(r)
        if why is not None:
            problems.append(Problem(r.name, f"{r.name}: {why}", order(r)))

    scopes: dict[str, list[ReportFile]] = {}
    for r in everything:
        if r.doc is not None:
            scopes.setdefault(r.scope, []).append(r)
    series: dict[str, list[ReportFile]] = {}
    for name, members in scopes.items():
        problems.extend(_check_links(members, by_sha, by_name, by_run, pruned))
        series[name] = _chain_order(members, by_sha, pruned)
    problems.sort(key=lambda p: p.order)
    return ChainResult(directory=str(directory), series=series, problems=problems)


def read_pruned(directory: Path) -> tuple[bytes, list[dict[str, Any]]] | None:
    """The pruned record's bytes and entries; None when there is none. Raises ValueError when it is malformed."""
    path = directory / PRUNED_NAME
    try:
        opened = _open_regular(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ValueError(f"cannot read it ({e.strerror})") from None
    if opened is None:
        raise ValueError("not a regular file")
    fd, size = opened
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(min(size, MAX_REPORT_BYTES) + 1)
    doc, why = parse_json(data)
    if not isinstance(doc, dict) or doc.get("schema") != PRUNED_SCHEMA or not isinstance(doc.get("pruned"), list):
        raise ValueError(why or f"not a {PRUNED_SCHEMA} record")
    entries = [e for e in doc["pruned"] if isinstance(e, dict) and isinstance(e.get("sha256"), str)]
    return data, entries


def _pruned(directory: Path, check_signature: Callable[[ReportFile], str | None], problems: list[Problem]
            ) -> set[str]:
    """SHA-256s of reports removed on purpose, from a record whose signature checks (else a problem, and
    none counts as pruned: an unsigned record could hide any removal)."""
    try:
        found = read_pruned(directory)
    except ValueError as e:
        problems.append(Problem(PRUNED_NAME, f"{PRUNED_NAME} (the record of pruned reports) is damaged: {e}",
                                ("", 0)))
        return set()
    if found is None:
        return set()
    data, entries = found
    why = check_signature(ReportFile(path=directory / PRUNED_NAME, data=data, doc=None))
    if why is not None:
        problems.append(Problem(PRUNED_NAME, f"{PRUNED_NAME} (the record of pruned reports): {why}", ("", 0)))
        return set()
    return {e["sha256"] for e in entries}


def _check_links(members: list[ReportFile], by_sha: dict[str, ReportFile], by_name: dict[str, ReportFile],
                 by_run: dict[str, ReportFile], pruned: frozenset[str] | set[str] = frozenset()) -> list[Problem]:
    problems: list[Problem] = []
    successors: dict[str, list[ReportFile]] = {}
    starts: list[ReportFile] = []
    for r in members:
        prev = r.previous
        if prev is None:
            if r.run_info().get("previous") is not None:
                problems.append(Problem(r.name, f"{r.name}: run.previous is malformed", (r.started, 1)))
            starts.append(r)
            continue
        sha, run_id, recorded = str(prev.get("sha256", "")), str(prev.get("run_id", "")), prev.get("file")
        recorded_name = recorded if isinstance(recorded, str) and recorded else ""
        target = by_sha.get(sha)
        if target is not None:
            successors.setdefault(target.sha256, []).append(r)
            if recorded_name and recorded_name != target.name:
                problems.append(Problem(
                    target.name,
                    f"{target.name} holds the report that {r.name} recorded as its predecessor {recorded_name} "
                    f"(run {run_id}): reports were renamed or reordered", (target.started, 1)))
            if target.started and r.started and target.started > r.started:
                problems.append(Problem(r.name, f"{r.name} started before its predecessor {target.name}: "
                                                f"the series is out of order", (r.started, 1)))
            continue
        culprit = by_run.get(run_id) or (by_name.get(recorded_name) if recorded_name else None)
        if sha in pruned and culprit is None:
            starts.append(r)  # its predecessor was pruned on purpose, and the signed record says so
            continue
        if recorded_name == r.name and (culprit is None or culprit is r):
            problems.append(Problem(
                r.name, f"{r.name} was written over an earlier report of the same name (run {run_id}), which is "
                        f"gone: write each scan to a new file to keep the series", (r.started, 0)))
        elif culprit is not None:
            problems.append(Problem(
                culprit.name,
                f"{culprit.name} was altered: its SHA-256 is not the {sha[:16]}… that {r.name} recorded for it",
                (culprit.started, 1) if culprit.started else (r.started, 0)))
        else:
            missing = recorded_name or "a report"
            problems.append(Problem(
                missing,
                f"{missing} (run {run_id}) was removed: {r.name} records it as its predecessor and no file in the "
                f"directory has its SHA-256 {sha[:16]}…", (r.started, 0)))
    for sha, followers in successors.items():
        if len(followers) > 1:
            names = " and ".join(f.name for f in sorted(followers, key=lambda f: f.started))
            first = min(followers, key=lambda f: f.started)
            problems.append(Problem(first.name, f"the series forks: {names} both follow {by_sha[sha].name}",
                                    (first.started, 1)))
    if len(starts) > 1:
        starts.sort(key=lambda s: s.started)
        for extra in starts[1:]:
            problems.append(Problem(extra.name, f"{extra.name} starts a new chain (no predecessor) although "
                                                f"{starts[0].name} came before it", (extra.started, 1)))
    return problems


def _chain_order(members: list[ReportFile], by_sha: dict[str, ReportFile],
                 pruned: frozenset[str] | set[str] = frozenset()) -> list[ReportFile]:
    """Reports in link order from the first; those not reachable follow by start time."""
    following: dict[str, list[ReportFile]] = {}
    for r in members:
        prev = r.previous
        if prev is not None and str(prev.get("sha256")) in by_sha:
            following.setdefault(str(prev.get("sha256")), []).append(r)
    ordered: list[ReportFile] = []
    seen: set[str] = set()
    def is_start(r: ReportFile) -> bool:
        prev = r.previous
        return prev is None or (str(prev.get("sha256")) in pruned and str(prev.get("sha256")) not in by_sha)

    for start in sorted(filter(is_start, members), key=lambda r: r.started):
        current: ReportFile | None = start
        while current is not None and current.sha256 not in seen:
            ordered.append(current)
            seen.add(current.sha256)
            nxt = sorted(following.get(current.sha256, []), key=lambda r: r.started)
            current = nxt[0] if nxt else None
    ordered.extend(sorted((r for r in members if r.sha256 not in seen), key=lambda r: (r.started, r.name)))
    return ordered
