"""``wifi:[IFACE]`` and ``wifi-capture:FILE``: the air around this machine, live or as recorded.

Neither is a host. ``wifi:`` surveys the networks this machine's radios can
see, through whatever the operating system offers (wpa_supplicant's control
socket, NetworkManager, netsh, airport): it may run those local programs and
nothing else. ``wifi-capture:`` is an 802.11 capture made with any tool; the
only thing it offers is a bounded, read-only stream of the file.
"""

from __future__ import annotations

import os
import socket
import stat as stat_mod
import sys
from collections.abc import Sequence
from typing import BinaryIO

from agent.errors import ConfigError
from agent.targets.base import (
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_OUTPUT_BYTES,
    CommandResult,
    FileMissing,
    FileStat,
    FileUnreadable,
    PlatformInfo,
    Target,
)

#: Where wpa_supplicant puts its per-interface control sockets (Debian uses the
#: first; /run is the same directory on most systems).
DEFAULT_CTRL_DIRS: tuple[str, ...] = ("/var/run/wpa_supplicant", "/run/wpa_supplicant")


def host_os() -> str:
    if sys.platform.startswith("linux"):
        return "linux"
    if sys.platform == "darwin":
        return "darwin"
    if sys.platform in ("win32", "cygwin"):
        return "windows"
    return sys.platform


class _NoFiles(Target):
    """Shared refusals: these targets expose no file system."""

    def read_file(self, path: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
        raise FileUnreadable(f"{path}: a {self.kind} target has no files")

    def list_dir(self, path: str) -> list[str]:
        raise FileUnreadable(f"{path}: a {self.kind} target has no files")

    def stat(self, path: str) -> FileStat | None:
        return None


class WifiTarget(_NoFiles):
    kind = "wifi"

    def __init__(self, spec: str, interface: str | None = None,
                 ctrl_dirs: Sequence[str] | None = None) -> None:
        super().__init__(spec)
        self.interface = interface
        self.ctrl_dirs = tuple(ctrl_dirs) if ctrl_dirs is not None else DEFAULT_CTRL_DIRS
        self.os = host_os()

    @classmethod
    def from_spec(cls, spec: str) -> WifiTarget:
        iface = spec.split(":", 1)[1].removeprefix("//") if ":" in spec else ""
        if iface and (len(iface) > 64 or not all(c.isalnum() or c in "-_.@" for c in iface)):
            raise ConfigError(f"wifi:{iface!r} is not an interface name")
        return cls(f"wifi:{iface}", iface or None)

    def platform(self) -> PlatformInfo:
        return PlatformInfo(system="wifi", hostname=socket.gethostname(), distro="Wi-Fi survey",
                            version=self.interface or "")

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = DEFAULT_COMMAND_TIMEOUT,
        max_output: int = DEFAULT_MAX_OUTPUT_BYTES,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run a local survey program (nmcli, netsh, airport) in the C locale, bounded like LocalTarget."""
        from agent.targets.local import LocalTarget

        return LocalTarget().run(argv, timeout=timeout, max_output=max_output, stdin=stdin)


class CaptureTarget(_NoFiles):
    kind = "wifi-capture"

    def __init__(self, spec: str, path: str) -> None:
        super().__init__(spec)
        self.path = path

    @classmethod
    def from_spec(cls, spec: str) -> CaptureTarget:
        path = spec.split(":", 1)[1] if ":" in spec else ""
        if not path:
            raise ConfigError("a capture target needs a file: wifi-capture:survey.pcap")
        if not os.path.isfile(path):
            raise ConfigError(f"wifi-capture:{path}: no such file")
        return cls(spec, path)

    def platform(self) -> PlatformInfo:
        return PlatformInfo(system="wifi", hostname=os.path.basename(self.path), distro="802.11 capture")

    def open_capture(self) -> BinaryIO:
        """The capture as a read-only stream; never a FIFO or device (a scan must not hang on one)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError as e:
            raise FileMissing(f"{self.path}: no such file") from e
        except OSError as e:
            raise FileUnreadable(f"{self.path}: {e.strerror}") from e
        if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise FileUnreadable(f"{self.path}: not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=1 << 20)
