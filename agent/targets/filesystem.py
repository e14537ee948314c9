"""File access shared by targets whose files are on this machine's filesystem.

``local`` reads paths as they are; ``rootfs`` resolves them inside a directory
(``agent.targets.rootfs``). Both only say how a target path becomes an open
descriptor, a stat, a listing or a link's text (``_open``, ``_stat``,
``_listdir``, ``_readlink``); everything about reading safely (size cap, no
FIFOs or devices) and the mapping of *every* OS error to the target's error
types lives here once, so no ``OSError`` ever reaches a collector raw.
"""

from __future__ import annotations

import errno
import os
import stat as stat_mod

from agent.targets.base import (
    DEFAULT_MAX_FILE_BYTES,
    FileMissing,
    FileStat,
    FileTooLarge,
    FileUnreadable,
    Target,
    TargetError,
)

#: Errors that mean "nothing is there" (ENOTDIR: a file where the path needs a directory).
ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR})


def target_error(path: str, e: OSError | ValueError, what: str = "file") -> TargetError:
    """The target error for an OS error on ``path``: FileMissing when nothing is there, else FileUnreadable.

    ValueError is how Python refuses a path with a NUL byte: no file can have that name, but "absent"
    could read as "safely not configured", so it is unreadable.
    """
    if isinstance(e, ValueError):
        return FileUnreadable(f"{path}: not a valid path ({e})")
    if e.errno in ABSENT:
        return FileMissing(f"{path}: no such {what}")
    return FileUnreadable(f"{path}: {os.strerror(e.errno or errno.EIO)}")


def read_capped(path: str, fd: int, max_bytes: int) -> bytes:
    """A regular file's whole content from an open descriptor, refused (never cut) beyond ``max_bytes``."""
    st = os.fstat(fd)
    if not stat_mod.S_ISREG(st.st_mode):
        raise FileUnreadable(f"{path}: not a regular file")
    if st.st_size > max_bytes:
        raise FileTooLarge(f"{path}: {st.st_size} bytes, larger than the {max_bytes}-byte cap")
    # /proc files report size 0, so read up to the cap and check again.
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, min(1 << 20, max_bytes + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise FileTooLarge(f"{path}: larger than the {max_bytes}-byte cap")
    return b"".join(chunks)


class FilesystemTarget(Target):
    """A target whose files are on this machine: by default at a host path (``host_path``)."""

    def host_path(self, path: str) -> str:
        """Where ``path`` (absolute, as seen on the target) lives on this machine."""
        raise NotImplementedError

    # The primitives. They raise OSError (or ValueError for a NUL byte); the public calls map it.

    def _open(self, path: str, flags: int) -> int:
        """A descriptor for ``path``, following symbolic links."""
        return os.open(self.host_path(path), flags | os.O_CLOEXEC)

    def _stat(self, path: str) -> os.stat_result:
        return os.stat(self.host_path(path))

    def _readlink(self, path: str) -> str:
        return os.readlink(self.host_path(path))

    def _listdir(self, path: str) -> list[str]:
        return os.listdir(self.host_path(path))

    def read_file(self, path: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
        try:
            # O_NONBLOCK: opening a FIFO must never hang the scan.
            fd = self._open(path, os.O_RDONLY | os.O_NONBLOCK)
        except (OSError, ValueError) as e:
            raise target_error(path, e) from e
        try:
            return read_capped(path, fd, max_bytes)
        except OSError as e:
            raise target_error(path, e) from e
        finally:
            os.close(fd)

    def list_dir(self, path: str) -> list[str]:
        try:
            return sorted(self._listdir(path))
        except (OSError, ValueError) as e:
            raise target_error(path, e, "directory") from e

    def readlink(self, path: str) -> str:
        try:
            return self._readlink(path)
        except (OSError, ValueError) as e:
            raise target_error(path, e) from e

    def stat(self, path: str) -> FileStat | None:
        try:
            st = self._stat(path)
        except (OSError, ValueError) as e:
            err = target_error(path, e)
            if isinstance(err, FileMissing):
                return None
            raise err from e
        return FileStat(mode=st.st_mode, uid=st.st_uid, gid=st.st_gid, size=st.st_size, mtime=st.st_mtime)


def parse_os_release(data: bytes) -> dict[str, str]:
    """The shell-like KEY=value lines of os-release(5), unquoted. Never executed."""
    out: dict[str, str] = {}
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out
