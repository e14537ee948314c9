"""Files of an SSH target: SFTP requests, a per-scan cache, and fewer round trips.

What makes a remote audit slow is not bytes but requests, and above all
requests that wait for each other: each round trip costs the scanner ten times
the CPU of the same request sent in a batch (measured: ~150 µs against ~11 µs),
and on a busy scanner every one of them also waits its turn for the
interpreter. Collectors read the way they would locally, one file at a time,
so this module works underneath them:

* **a cache for the scan**: an answer (content, stat, listing, link, or the
  error) is kept for the life of the target, within a byte budget, and a
  request in flight is asked only once however many collectors want it. A scan
  is a snapshot; collectors even agree on it.
* **listings answer stats**: a listing carries each entry's attributes, so a
  file in a listed directory needs no stat before it is read, and a name that
  is not there needs no request at all. A directory is listed once a second of
  its entries is probed without it.
* **batches**: ``Target.prefetch`` sends the reads a collector announces in one
  write (stat, open and read each pipelined); the same file of every process
  (``/proc/<pid>/comm``) is fetched for all of them once two were asked for.

Safety is unchanged: a file is stat'ed before it is opened (a FIFO would hang
sftp-server), except kernel pseudo-files under ``/proc`` and ``/sys`` that
cannot be FIFOs; sizes are capped; only small files are prefetched.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
import stat as stat_mod
import threading
from collections.abc import Callable
from typing import Any

from agent.targets.base import FileMissing, FileStat, FileTooLarge, FileUnreadable, TargetError
from agent.targets.ssh_sftp import NO_SUCH_FILE, PERMISSION_DENIED, Attrs, PipelinedSFTP, SFTPClosed, SFTPStatus

#: Kernel files that cannot be FIFOs or lead elsewhere: opened without a stat first. root, cwd and exe are
#: links to arbitrary places and stay out.
PSEUDO_FILE = re.compile(r"^/(?:proc/(?:(?:self|thread-self|\d+)/(?!(?:root|cwd|exe)$)[a-z_]+|sys/[a-z0-9_./-]+|"
                         r"[a-z_]+)|sys/[A-Za-z0-9_.:/-]+)$")
#: A prefetched or cached file is at most this big; bigger ones are read when asked, and not kept: the cache
#: budget is for the many small answers (a 0.7 MB dpkg status kept there left the process table uncached).
SMALL_FILE = 64 * 1024
#: Bytes of answers kept per target: a few MB, so a fleet of 64 stays small. Measured: ~0.5 MB per target with
#: 8 targets on one machine (every target sees every other's sshd, so the process table grows with the
#: fleet). Once it is spent, nothing more is kept and every collector asks again: room to spare matters.
CACHE_BUDGET = 4 * 1024 * 1024
MAX_BATCH = 4096


@dataclasses.dataclass(frozen=True)
class _Failure:
    """An error answer, kept to be raised again (a fresh exception each time)."""

    kind: type[TargetError]
    message: str


def _error(status: SFTPStatus, path: str) -> _Failure:
    if status.code == NO_SUCH_FILE:
        return _Failure(FileMissing, f"{path}: no such file")
    if status.code == PERMISSION_DENIED:
        return _Failure(FileUnreadable, f"{path}: Permission denied")
    return _Failure(FileUnreadable, f"{path}: {status}")


def _file_stat(a: Attrs) -> FileStat:
    return FileStat(mode=a.mode or 0, uid=a.uid or 0, gid=a.gid or 0, size=a.size or 0, mtime=float(a.mtime or 0))


_MISSING = object()


class _Cache:
    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self.data: dict[tuple[str, str], Any] = {}
        self.lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> Any:
        with self.lock:
            return self.data.get(key, _MISSING)

    def put(self, key: tuple[str, str], value: Any, size: int = 64) -> None:
        with self.lock:
            if key in self.data or self.used + size > self.budget:
                return
            self.data[key] = value
            self.used += size


class RemoteFiles:
    """read_file / list_dir / stat / readlink over one pipelined SFTP session, cached and prefetched."""

    def __init__(self, sftp: PipelinedSFTP, *, on_lost: Callable[[str], TargetError],
                 budget: int = CACHE_BUDGET) -> None:
        self.sftp = sftp
        self._lost = on_lost
        self._cache = _Cache(budget)
        self._listings: dict[str, frozenset[str]] = {}
        self._hits: dict[tuple[str, str, str], set[str]] = {}
        self._planned: set[tuple[str, str, str]] = set()
        self._parent_misses: dict[str, int] = {}
        self._unlistable: set[str] = set()
        self._inflight: dict[tuple[str, str], threading.Event] = {}
        self._lock = threading.Lock()

    # -- plumbing --

    def _guard(self, path: str, fn: Callable[[], Any]) -> Any:
        if not path.startswith("/"):
            raise FileUnreadable(f"{path}: paths on a target must be absolute")
        try:
            return fn()
        except SFTPStatus as e:
            f = _error(e, path)
            raise f.kind(f.message) from e
        except TimeoutError as e:
            raise self._lost(f"no answer to an SFTP request within {self.sftp.timeout:g} s") from e
        except SFTPClosed as e:
            raise self._lost(f"the SSH connection was lost ({e})") from e

    def _known_missing(self, path: str) -> bool:
        """Absent for sure: a listed ancestor lacks the next component, or an ancestor is known not to exist."""
        parts = path.rstrip("/").split("/")
        if "" in parts[1:] or "." in parts or ".." in parts:
            return False
        listings = self._listings
        stats = self._cache.data
        base = ""
        for i in range(1, len(parts)):
            parent = base or "/"
            base = f"{base}/{parts[i]}"
            names = listings.get(parent)  # plain dict reads: atomic, and entries are only ever added
            if names is not None and parts[i] not in names:
                return True
            if i < len(parts) - 1 and stats.get(("stat", base), _MISSING) is None:
                return True
        return False

    def _cached(self, op: str, path: str) -> Any:
        """The cached answer, after a prefetch if this access completes a pattern; _MISSING if none."""
        value = self._cache.get((op, path))
        if value is _MISSING and self._known_missing(path):
            value = None if op == "stat" else _Failure(FileMissing, f"{path}: no such file")
        if value is _MISSING:
            with self._lock:
                pending = self._inflight.get((op, path))
            if pending is not None:  # another collector is fetching it in a batch: wait instead of asking again
                pending.wait(self.sftp.timeout)
            else:
                batch = self._siblings(op, path)
                if batch:
                    self._guard(path, lambda: self._fetch_batch(op, batch))
            value = self._cache.get((op, path))
        if isinstance(value, _Failure):
            raise value.kind(value.message)
        return value

    def prefetch(self, op: str, paths: list[str]) -> None:
        """Fetch what is not known yet in one batch (a hint: errors surface when each path is asked for)."""
        todo = [p for p in dict.fromkeys(paths) if p.startswith("/") and self._cache.get((op, p)) is _MISSING]
        with self._lock:
            todo = [p for p in todo if (op, p) not in self._inflight]
        if todo:
            self._guard(todo[0], lambda: self._fetch_batch(op, todo))

    def _fetch_batch(self, op: str, paths: list[str]) -> None:
        """One batch, marked in flight so that callers asking for a member meanwhile wait for it."""
        done = threading.Event()
        with self._lock:
            paths = [p for p in paths if (op, p) not in self._inflight]
            for p in paths:
                self._inflight[(op, p)] = done
        try:
            if paths:
                self._prefetch(op, paths)
        finally:
            with self._lock:
                for p in paths:
                    self._inflight.pop((op, p), None)
            done.set()

    @staticmethod
    def _raw(path: str) -> bytes:
        return path.encode("utf-8", "surrogateescape")

    def _answer(self, op: str, path: str, fetch: Callable[[], Any]) -> Any:
        """The cached answer, or the one that another caller is fetching right now, or ``fetch()``'s.

        Collectors run side by side and often want the same file at the same moment (five of them walk the
        process table): only one request goes out, the others wait for its answer.
        """
        while True:
            value = self._cached(op, path)
            if value is not _MISSING:
                return value
            with self._lock:
                pending = self._inflight.get((op, path))
                if pending is None:
                    done = self._inflight[(op, path)] = threading.Event()
            if pending is not None:
                pending.wait(self.sftp.timeout)
                continue  # answered (cached) or not cacheable (then this caller asks itself)
            try:
                return self._guard(path, fetch)
            except FileTooLarge:
                raise  # the cap is the caller's: another caller may allow more
            except (FileMissing, FileUnreadable) as e:
                self._cache.put((op, path), _Failure(type(e), str(e)))  # before the waiters wake up
                raise
            finally:
                with self._lock:
                    self._inflight.pop((op, path), None)
                done.set()

    # -- the four operations --

    def _list_parent(self, path: str) -> bool:
        """List a directory once a second one of its entries is asked about without it being listed.

        One round trip then answers the stat of every entry that is not a symbolic link, and the absence of
        every name that is not there; collectors probe config and program paths one by one (is there an
        /etc/ntp.conf, an /usr/sbin/auditd?), each probe a round trip of its own otherwise. Not for /proc and
        /sys, whose entries come and go or are not worth listing.
        """
        parent = posixpath.dirname(path.rstrip("/"))
        if not parent or parent == path or parent.startswith(("/proc", "/sys")):
            return False
        with self._lock:
            if parent in self._listings or parent in self._unlistable:
                return False
            self._parent_misses[parent] = seen = self._parent_misses.get(parent, 0) + 1
        if seen != 2:
            return False
        try:
            self.list_dir(parent)
        except TargetError:
            with self._lock:
                self._unlistable.add(parent)
            return False
        return True

    def stat(self, path: str) -> FileStat | None:
        def fetch() -> FileStat | None:
            if self._list_parent(path):
                known = self._cache.get(("stat", path))
                if known is not _MISSING:
                    return known  # type: ignore[no-any-return]
                if self._known_missing(path):
                    self._cache.put(("stat", path), None)
                    return None
            try:
                st = _file_stat(self.sftp.stat(self._raw(path)))
            except SFTPStatus as e:
                if e.code != NO_SUCH_FILE:
                    raise
                self._cache.put(("stat", path), None)
                return None
            self._cache.put(("stat", path), st)
            return st

        return self._answer("stat", path, fetch)  # type: ignore[no-any-return]

    def read_file(self, path: str, max_bytes: int) -> bytes:
        def fetch() -> bytes:
            size = 0
            if not PSEUDO_FILE.match(path):
                # stat first: opening a FIFO would block the single-threaded sftp-server for good.
                st = self.stat(path)
                if st is None:
                    raise FileMissing(f"{path}: no such file")
                if not stat_mod.S_ISREG(st.mode):
                    raise FileUnreadable(f"{path}: not a regular file")
                size = st.size
                if size > max_bytes:
                    raise FileTooLarge(f"{path}: {size} bytes, larger than the {max_bytes}-byte cap")
            handle = self.sftp.open(self._raw(path))
            try:
                data = self.sftp.read_all(handle, size=size, limit=max_bytes, too_large=lambda: FileTooLarge(
                    f"{path}: larger than the {max_bytes}-byte cap"))
            except SFTPStatus as e:
                raise FileUnreadable(f"{path}: not a regular file" if e.code not in (NO_SUCH_FILE,
                                                                                      PERMISSION_DENIED)
                                     else _error(e, path).message) from e
            finally:
                self.sftp.close_handle(handle)
            if len(data) <= SMALL_FILE:
                self._cache.put(("read", path), data, len(data) + 64)
            return data

        value = self._answer("read", path, fetch)
        if len(value) > max_bytes:
            raise FileTooLarge(f"{path}: {len(value)} bytes, larger than the {max_bytes}-byte cap")
        return value  # type: ignore[no-any-return]

    def list_dir(self, path: str) -> list[str]:
        def fetch() -> list[str]:
            names = self._remember_listing(path, self.sftp.listdir(self._raw(path)))
            return names

        return list(self._answer("list", path, fetch))

    def readlink(self, path: str) -> str:
        def fetch() -> str:
            link = self.sftp.readlink(self._raw(path)).decode("utf-8", "surrogateescape")
            self._cache.put(("readlink", path), link, len(link) + 64)
            return link

        return self._answer("readlink", path, fetch)  # type: ignore[no-any-return]

    def _remember_listing(self, path: str, entries: list[tuple[bytes, Attrs]]) -> list[str]:
        """Keep the names, and what the listing says of each entry: lstat, which for anything but a symbolic
        link is its stat too. A file in a listed directory then costs no stat round trip before it is read."""
        names = sorted(n.decode("utf-8", "surrogateescape") for n, _ in entries)
        self._cache.put(("list", path), tuple(names), sum(len(n) + 8 for n in names) + 64)
        base = path.rstrip("/")
        for raw, attrs in entries:
            if attrs.mode is not None and not stat_mod.S_ISLNK(attrs.mode):
                self._cache.put(("stat", f"{base}/{raw.decode('utf-8', 'surrogateescape')}"), _file_stat(attrs))
        with self._lock:
            self._listings[base or "/"] = frozenset(names)
        return names

    # -- sibling prefetch --

    def _siblings(self, op: str, path: str) -> list[str]:
        """The same file of every process, once it has been asked for of two (``/proc/<pid>/comm``, or
        ``/proc/<pid>/fd/<n>`` for every descriptor of every listed process).

        Only process ids: for any other directory, fetching every sibling because two were read costs more
        than it saves (measured: 500 needless requests for /usr/lib/systemd/system and, once /etc was
        listed, every one of its 94 subdirectories). A collector that knows what it will read says so with
        ``Target.prefetch`` instead. Each pattern is fetched once.
        """
        parts = path.rstrip("/").split("/")
        with self._lock:
            for i in range(1, len(parts)):  # the farthest listed ancestor gives the widest batch
                base = "/".join(parts[:i]) or "/"
                names = self._listings.get(base)
                if names is None or parts[i] not in names:
                    continue
                rest = parts[i + 1:]
                shapes: list[str] = []
                if len(rest) == 2 and f"{base.rstrip('/')}/{parts[i]}/{rest[0]}" in self._listings:
                    shapes.append(f"{rest[0]}/*")  # e.g. /proc/<pid>/fd/<n>
                shapes.append("/".join(rest))
                if not parts[i].isdigit():
                    continue  # only process ids: see the docstring
                for shape in shapes:
                    key = (op, base, shape)
                    if key in self._planned:
                        continue
                    seen = self._hits.setdefault(key, set())
                    seen.add(parts[i])
                    if len(seen) >= 2:
                        batch = self._expand(base, shape, op)
                        if len(batch) >= 2:
                            self._planned.add(key)
                            return batch
        return []

    def _expand(self, base: str, shape: str, op: str) -> list[str]:
        prefix = base.rstrip("/")
        out: list[str] = []
        for name in sorted(self._listings[base]):
            if not name.isdigit():
                continue
            if shape.endswith("/*"):
                sub = f"{prefix}/{name}/{shape[:-2]}"
                out += [f"{sub}/{n}" for n in sorted(self._listings.get(sub, ()))]
            else:
                out.append(f"{prefix}/{name}/{shape}" if shape else f"{prefix}/{name}")
            if len(out) >= MAX_BATCH:
                break
        return [p for p in out[:MAX_BATCH] if self._cache.get((op, p)) is _MISSING and (op, p) not in self._inflight]

    def _prefetch(self, op: str, paths: list[str]) -> None:
        raw = [self._raw(p) for p in paths]
        if op == "stat":
            for p, a in zip(paths, self.sftp.stat_many(raw), strict=True):
                if isinstance(a, SFTPStatus):
                    self._cache.put(("stat", p), None if a.code == NO_SUCH_FILE else _error(a, p))
                else:
                    self._cache.put(("stat", p), _file_stat(a))
        elif op == "readlink":
            for p, link in zip(paths, self.sftp.readlink_many(raw), strict=True):
                value = _error(link, p) if isinstance(link, SFTPStatus) else link.decode("utf-8", "surrogateescape")
                self._cache.put(("readlink", p), value, 128)
        elif op == "list":
            for p, names in zip(paths, self.sftp.listdir_many(raw), strict=True):
                if isinstance(names, SFTPStatus):
                    self._cache.put(("list", p), _error(names, p))
                else:
                    self._remember_listing(p, names)
        elif op == "read":
            self._prefetch_reads(paths)

    def _prefetch_reads(self, paths: list[str]) -> None:
        """Small files in three batched round trips: stat (not for pseudo-files), open, read; closes ride along."""
        sizes: dict[str, int] = {}
        plain = [p for p in paths if not PSEUDO_FILE.match(p)]
        for p in paths:
            if PSEUDO_FILE.match(p):
                sizes[p] = 0
        for p, a in zip(plain, self.sftp.stat_many([self._raw(p) for p in plain]), strict=True):
            if isinstance(a, SFTPStatus):
                self._cache.put(("stat", p), None if a.code == NO_SUCH_FILE else _error(a, p))
                self._cache.put(("read", p), _error(a, p))
                continue
            self._cache.put(("stat", p), _file_stat(a))
            if stat_mod.S_ISREG(a.mode or 0) and (a.size or 0) <= SMALL_FILE:
                sizes[p] = a.size or 0
        todo = [p for p in paths if p in sizes]
        handles = self.sftp.open_many([self._raw(p) for p in todo])
        opened = [(p, h) for p, h in zip(todo, handles, strict=True) if isinstance(h, bytes)]
        for p, h in zip(todo, handles, strict=True):
            if isinstance(h, SFTPStatus) and h.code in (NO_SUCH_FILE, PERMISSION_DENIED):
                self._cache.put(("read", p), _error(h, p))
        # A pseudo-file is asked for a whole buffer: the kernel fills it in one read, so a short answer is all
        # there is; a full buffer may be more, and is left to the ordinary read.
        datas = self.sftp.read_many([(h, sizes[p] + 1 if sizes[p] else SMALL_FILE) for p, h in opened])
        for (p, h), data in zip(opened, datas, strict=True):
            self.sftp.close_handle(h)
            if isinstance(data, SFTPStatus):
                continue
            content = data or b""
            if (sizes[p] and len(content) == sizes[p]) or (not sizes[p] and len(content) < SMALL_FILE):
                self._cache.put(("read", p), content, len(content) + 64)
