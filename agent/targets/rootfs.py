"""``rootfs:DIR``: a directory laid out like ``/`` (a test fixture, a mounted image, a backup).

Every absolute path — including symlink targets and paths named *inside*
config files — resolves under DIR, exactly as it would after ``chroot DIR``.
Nothing here can reach the real host's ``/etc``. Commands cannot run: a
directory has no processes, and pretending otherwise would invent facts.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath

from agent.errors import ConfigError
from agent.targets.base import (
    FileUnreadable,
    PlatformInfo,
    TargetError,
)
from agent.targets.filesystem import FilesystemTarget, parse_os_release

_MAX_SYMLINKS = 40  # as the Linux kernel's MAXSYMLINKS


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

    def host_path(self, path: str) -> str:
        """Resolve ``path`` as the kernel would inside a chroot at ``self.root``."""
        if not path.startswith("/"):
            raise FileUnreadable(f"{path}: paths on a target must be absolute")
        parts = [p for p in path.split("/") if p]
        resolved: list[str] = []
        hops = 0
        while parts:
            name = parts.pop(0)
            if name == ".":
                continue
            if name == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = os.path.join(self.root, *resolved, name)
            if os.path.islink(candidate):
                hops += 1
                if hops > _MAX_SYMLINKS:
                    raise FileUnreadable(f"{path}: too many levels of symbolic links")
                link = os.readlink(candidate)
                if link.startswith("/"):
                    resolved = []
                parts = [p for p in link.split("/") if p] + parts
                continue
            resolved.append(name)
        return os.path.join(self.root, *resolved) if resolved else self.root

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
            system="linux" if osr or os.path.isdir(posixpath.join(self.root, "etc")) else "unknown",
            hostname=hostname or posixpath.basename(self.root),
            distro=osr.get("NAME", ""),
            version=osr.get("VERSION_ID", ""),
            machine_id=machine_id,
        )

