"""Atomic file writes: a reader sees the old file or the whole new one, never half.

Temp file in the same directory, fsync, rename, then fsync the directory so
the rename itself survives a power cut. The temp file is named
``.NAME.XXXXXXXX.tmp`` and its writer holds an flock on it from just after it
is created until it has been renamed away, so a later run can tell a temp file
a killed writer left behind (nobody holds its lock) from one still being
written, and remove only the former (``clean_stale_temps``).

Checking an output path *before* the work (``check_writable_output``) is the
other half: a scan that can only find out at the end that it cannot write its
report has been run for nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import stat
import tempfile
import time
from pathlib import Path

from agent.errors import ConfigError

try:
    import fcntl
except ImportError:  # not POSIX: no locks; clean_stale_temps then removes nothing
    fcntl = None  # type: ignore[assignment]

TEMP_SUFFIX = ".tmp"
#: ``tempfile.mkstemp(prefix=".NAME.", suffix=".tmp")``: its eight random characters are from this set.
_TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp$")
#: A temp file younger than this is left alone even when unlocked: its writer may be between creating it
#: and locking it (microseconds; this is a wide margin).
STALE_AFTER_S = 2.0


def _directory_of(target: Path) -> Path:
    return target.parent if str(target.parent) else Path(".")


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)


def fsync_dir(directory: str | Path) -> None:
    """Make the renames in ``directory`` durable (and ordered: call it between two that must not swap)."""
    dfd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


@dataclasses.dataclass
class Staged:
    """A complete, synced temp file that becomes ``target`` on ``commit`` (its lock held until then)."""

    target: Path
    tmp: Path
    fd: int
    done: bool = False  # renamed into place or removed

    def read_back(self) -> bytes:
        """The bytes as the file holds them (what a reader of ``target`` will hash once it is committed)."""
        size = os.fstat(self.fd).st_size
        chunks, offset = [], 0
        while offset < size:
            chunk = os.pread(self.fd, size - offset, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
        return b"".join(chunks)

    def commit(self) -> None:
        """Rename into place (the directory is not synced: call ``fsync_dir``), then release the lock."""
        try:
            os.replace(self.tmp, self.target)
            self.done = True
        finally:
            self.close()

    def discard(self) -> None:
        """Remove the temp file unless it was committed (safe to call in any state, more than once)."""
        if not self.done:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.tmp)
            self.done = True
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def stage(path: str | Path, data: bytes, *, mode: int = 0o644) -> Staged:
    """Write ``data`` to a locked temp file beside ``path`` and fsync it; nothing is visible at ``path`` yet."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX, dir=_directory_of(target))
    staged = Staged(target=target, tmp=Path(tmp), fd=fd)
    try:
        _lock(fd)
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        staged.discard()
        raise
    return staged


def write_atomic(path: str | Path, data: bytes, *, mode: int = 0o644) -> None:
    staged = stage(path, data, mode=mode)
    try:
        staged.commit()
    except BaseException:
        staged.discard()
        raise
    fsync_dir(_directory_of(Path(path)))


def clean_stale_temps(directory: str | Path, *, targets: tuple[str, ...] = (".json", ".sig"),
                      names: tuple[str, ...] = ()) -> list[str]:
    """Remove the temp files killed writers left in ``directory``; returns their names.

    Only ours: named as ``stage`` names them, for a target ending in one of ``targets`` or named in
    ``names``, a regular file owned by this user, at least ``STALE_AFTER_S`` old, and not locked (its
    writer is gone: an flock dies with its process). Never fails: what cannot be removed stays.
    """
    if fcntl is None:
        return []
    removed: list[str] = []
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return []
    for entry in entries:
        m = _TEMP_NAME.match(entry.name)
        if m is None or not (m["target"].endswith(targets) or m["target"] in names):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or now - st.st_mtime < STALE_AFTER_S:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue  # its writer is alive
            with contextlib.suppress(OSError):
                if os.stat(entry.path, follow_symlinks=False).st_ino == st.st_ino:  # still the file we locked
                    os.unlink(entry.path)
                    removed.append(entry.name)
        finally:
            os.close(fd)
    return removed


def check_writable_output(path: str | Path, *, series: bool = True) -> None:
    """Refuse (ConfigError, exit 2) an output the run could not write at its end, before the run starts.

    Checks what writing will do: the parent is a directory, a temp file can be created in it and removed
    (this is what really shows a read-only mount, an immutable directory or missing permissions, for root
    too), and an existing file there (and its ``.sig``) is a regular file that may be replaced. With
    ``series`` (a report, which is linked to its predecessor) the directory must also be listable: linking
    in a directory that cannot be read would silently start a new series.
    """
    out = Path(path)
    where = f"--output {out}"
    if out.is_dir():
        raise ConfigError(f"{where} is a directory")
    directory = _directory_of(out.absolute())
    if not directory.exists():
        raise ConfigError(f"{where}: the directory {directory} does not exist")
    if not directory.is_dir():
        raise ConfigError(f"{where}: {directory} is not a directory")
    for existing in (out, Path(f"{out}.sig")):
        try:
            st = existing.stat()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ConfigError(f"{where}: cannot check {existing} ({e.strerror})") from None
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{where}: {existing} exists and is not a regular file")
        if not os.access(existing, os.W_OK):
            raise ConfigError(f"{where}: {existing} is read-only (it would be replaced)")
    if series:
        try:
            with os.scandir(directory) as it:
                next(it, None)
        except OSError as e:
            raise ConfigError(f"{where}: cannot list the directory {directory} ({e.strerror}): the report "
                              f"could not be linked to the one before it") from None
    try:
        stage(directory / out.name, b"", mode=0o600).discard()
    except OSError as e:
        raise ConfigError(f"{where}: cannot write in the directory {directory} ({e.strerror})") from None
