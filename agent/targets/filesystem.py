"""File access shared by targets whose files are on this machine's filesystem.

``local`` reads paths as they are; ``rootfs`` maps them into a directory first.
Everything about *how* a file is read safely (size cap, no FIFOs or devices,
errors mapped to the target's error types) lives here once.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat as stat_mod

from agent.targets.base import (
    DEFAULT_MAX_FILE_BYTES,
    FileMissing,
    FileStat,
    FileTooLarge,
    FileUnreadable,
    Target,
)


class FilesystemTarget(Target):
    """A target whose files are reachable through a host path."""

    def host_path(self, path: str) -> str:
        """Where ``path`` (absolute, as seen on the target) lives on this machine."""
        raise NotImplementedError

    def read_file(self, path: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
        real = self.host_path(path)
        try:
            # O_NONBLOCK: opening a FIFO must never hang the scan.
            fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError as e:
            raise FileMissing(f"{path}: no such file") from e
        except NotADirectoryError as e:
            raise FileMissing(f"{path}: no such file") from e
        except OSError as e:
            raise FileUnreadable(f"{path}: {os.strerror(e.errno or errno.EIO)}") from e
        try:
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
        except OSError as e:
            raise FileUnreadable(f"{path}: {os.strerror(e.errno or errno.EIO)}") from e
        finally:
            os.close(fd)

    def list_dir(self, path: str) -> list[str]:
        real = self.host_path(path)
        try:
            return sorted(os.listdir(real))
        except (FileNotFoundError, NotADirectoryError) as e:
            raise FileMissing(f"{path}: no such directory") from e
        except OSError as e:
            raise FileUnreadable(f"{path}: {os.strerror(e.errno or errno.EIO)}") from e

    def readlink(self, path: str) -> str:
        # Resolve the directory part only: the link itself must not be followed.
        real = os.path.join(self.host_path(posixpath.dirname(path) or "/"), posixpath.basename(path))
        try:
            return os.readlink(real)
        except (FileNotFoundError, NotADirectoryError) as e:
            raise FileMissing(f"{path}: no such file") from e
        except OSError as e:
            raise FileUnreadable(f"{path}: {os.strerror(e.errno or errno.EIO)}") from e

    def stat(self, path: str) -> FileStat | None:
        real = self.host_path(path)
        try:
            st = os.stat(real)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise FileUnreadable(f"{path}: {os.strerror(e.errno or errno.EIO)}") from e
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
