"""``rootfs:DIR``: a directory laid out like ``/`` (a test fixture, a mounted image, a backup).

Every absolute path — including symlink targets and paths named *inside*
config files — resolves under DIR, exactly as it would after ``chroot DIR``.
Nothing here can reach the real host's ``/etc``. Commands cannot run: a
directory has no processes, and pretending otherwise would invent facts.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import posixpath
import stat as stat_mod
from collections.abc import Callable
from typing import TypeVar

from agent.errors import ConfigError
from agent.targets.base import (
    FileUnreadable,
    PlatformInfo,
    TargetError,
)
from agent.targets.filesystem import FilesystemTarget, parse_os_release

_MAX_SYMLINKS = 40  # as the Linux kernel's MAXSYMLINKS
#: Every directory on the way: a descriptor only to look names up in (O_PATH: search permission is enough,
#: as for the kernel's own walk), and never a link (O_NOFOLLOW|O_DIRECTORY fails with ENOTDIR on one).
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
T = TypeVar("T")


def _link_parts(dirfd: int, name: str, e: OSError) -> list[str] | None:
    """``name``'s link text as ["/" or "", component, ...] (read through ``dirfd``, the directory it was
    found in), or None when it is no longer a link. ``e`` is the error that made it look like one: when
    ``name`` is not a link after all, a file where a directory is needed (ENOTDIR) is re-raised."""
    try:
        link = os.readlink(name, dir_fd=dirfd)
    except OSError as le:
        if le.errno != errno.EINVAL:
            raise
        if e.errno != errno.ELOOP:
            raise e from None
        return None
    parts = ["/" if link.startswith("/") else ""] + [p for p in link.split("/") if p]
    if link.endswith("/") and len(parts) > 1:
        parts.append(".")  # "dir/" needs a directory
    return parts


class RootfsTarget(FilesystemTarget):
    kind = "rootfs"

    def __init__(self, spec: str, root: str) -> None:
        super().__init__(spec)
        if not os.path.isdir(root):
            raise ConfigError(f"rootfs target {root!r}: not a directory")
        self.root = os.path.realpath(root)

    @classmethod
    def from_spec(cls, spec: str) -> RootfsTarget:
        root = spec.split(":", 1)[1]
        if root.startswith("//"):
            root = root[2:]
        if not root:
            raise ConfigError("rootfs target needs a directory: rootfs:/path/to/root")
        return cls(spec, root)

    # Every component is opened relative to the descriptor of the directory before it, never through a
    # path: O_NOFOLLOW makes a link found there an error (ELOOP, or ENOTDIR with O_DIRECTORY) instead of
    # something the kernel follows, and then its text is read from that same descriptor and resolved here,
    # inside DIR. A directory swapped for a link between two steps is therefore seen as a link, never
    # walked through (issue 10 item 6: resolving a path first and opening it afterwards followed the link).

    def _walk(self, path: str, last: Callable[[int, str | None], T], *, follow: bool) -> T:
        """``last(dirfd, name)`` on the final component of ``path`` resolved inside DIR (``name`` None: the
        directory ``dirfd`` itself). With ``follow``, ``last`` must not follow links (O_NOFOLLOW,
        follow_symlinks=False): a link it meets is read and resolved here, and ``last`` called again."""
        if not path.startswith("/"):
            raise FileUnreadable(f"{path}: paths on a target must be absolute")
        todo = [p for p in reversed(path.split("/")) if p]
        if path.endswith("/") and todo:
            todo.insert(0, ".")  # "f/" needs f to be a directory, as the kernel does
        # Opened per call, by the path the user gave: nothing inside DIR can change what it names, and no
        # descriptor outlives the call (a collector that timed out may still be running after close()).
        stack = [os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)]
        hops = 0
        try:
            while todo:
                name = todo.pop()
                if name == ".":
                    continue
                if name == "..":
                    if len(stack) > 1:  # never above DIR
                        os.close(stack.pop())
                    continue
                try:
                    if todo:
                        stack.append(os.open(name, _DIR_FLAGS, dir_fd=stack[-1]))
                        continue
                    return last(stack[-1], name)
                except OSError as e:
                    if (not todo and not follow) or e.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    parts = _link_parts(stack[-1], name, e)
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
                if parts is None:  # a link replaced by something else meanwhile: look again
                    todo.append(name)
                    continue
                if parts[:1] == ["/"]:
                    while len(stack) > 1:
                        os.close(stack.pop())
                todo.extend(reversed(parts[1:]))
            return last(stack[-1], None)
        finally:
            for fd in stack:
                os.close(fd)

    def _open(self, path: str, flags: int) -> int:
        flags |= os.O_NOFOLLOW | os.O_CLOEXEC
        return self._walk(path, lambda d, name: os.open(name or ".", flags, dir_fd=d), follow=True)

    def _stat(self, path: str) -> os.stat_result:
        def last(d: int, name: str | None) -> os.stat_result:
            if name is None:
                return os.stat(d)
            st = os.stat(name, dir_fd=d, follow_symlinks=False)
            if stat_mod.S_ISLNK(st.st_mode):
                raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))  # resolved by _walk
            return st

        return self._walk(path, last, follow=True)

    def _listdir(self, path: str) -> list[str]:
        fd = self._open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return os.listdir(fd)
        finally:
            os.close(fd)

    def _readlink(self, path: str) -> str:
        def last(d: int, name: str | None) -> str:
            if name is None:  # "/" or ".../..": a directory, not a link
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            return os.readlink(name, dir_fd=d)

        return self._walk(path, last, follow=False)

    def platform(self) -> PlatformInfo:
        from agent.targets.registry_offline import windows_platform

        windows = windows_platform(self)  # Windows/System32/config/SYSTEM in the image
        if windows is not None:
            return windows if windows.hostname else dataclasses.replace(windows, hostname=posixpath.basename(self.root))
        osr: dict[str, str] = {}
        for candidate in ("/etc/os-release", "/usr/lib/os-release"):
            try:
                osr = parse_os_release(self.read_file(candidate, max_bytes=65536))
                break
            except TargetError:
                continue
        try:
            hostname = self.read_file("/etc/hostname", max_bytes=4096).decode("utf-8", "replace").strip()
        except TargetError:
            hostname = ""
        try:
            machine_id = self.read_file("/etc/machine-id", max_bytes=4096).decode("ascii", "replace").strip()
        except TargetError:
            machine_id = ""
        return PlatformInfo(
            system="linux" if osr or self._has_etc() else "unknown",
            hostname=hostname or posixpath.basename(self.root),
            distro=osr.get("NAME", ""),
            version=osr.get("VERSION_ID", ""),
            machine_id=machine_id,
        )

    def _has_etc(self) -> bool:
        """Whether DIR has an /etc directory (its own, through the same contained walk as every read)."""
        try:
            st = self.stat("/etc")
        except TargetError:
            return False
        return st is not None and stat_mod.S_ISDIR(st.mode)
