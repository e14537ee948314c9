"""The target interface: the only way collectors see a machine.

A target is *where facts come from*: this host, a directory laid out like a
root filesystem, a host over SSH, a saved evidence bundle. Collectors are
written once against this small surface and run unchanged on all of them.
Every call is bounded (size cap, timeout) because the other side may be slow,
huge or hostile.
"""

from __future__ import annotations

import abc
import dataclasses
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

if TYPE_CHECKING:
    from agent.targets.powershell import PowerShellBatch
    from agent.targets.registry import RegistryReader

#: Largest file a collector may read in one call. Config files are small; a
#: 50 MB "sshd_config" is an attack or an accident, never something to parse.
DEFAULT_MAX_FILE_BYTES = 8 * 1024 * 1024
#: Cap on the captured stdout/stderr of one command.
DEFAULT_MAX_OUTPUT_BYTES = 8 * 1024 * 1024
DEFAULT_COMMAND_TIMEOUT = 20.0
PrefetchOp = Literal["read", "stat", "list", "readlink"]


class TargetError(Exception):
    """A target could not answer a request. Collectors turn it into an error fact."""

    #: Machine-readable code shown in the report (``targets[].reason``) when this error stops a whole target.
    reason: str = "error"


class FileMissing(TargetError):
    """The path does not exist on the target."""


class FileUnreadable(TargetError):
    """The path exists but cannot be read (permissions, not a regular file, I/O error)."""


class FileTooLarge(TargetError):
    """The file is larger than the cap; it is not read at all (never half-parsed)."""


class CommandUnavailable(TargetError):
    """This kind of target cannot run commands, or the program does not exist there."""


class CommandTimeout(TargetError):
    """The command ran longer than its timeout and was killed."""


class TargetUnreachable(TargetError):
    """The whole target is gone (connection lost, directory removed)."""

    reason = "unreachable"


@dataclasses.dataclass(frozen=True, kw_only=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class FileStat:
    mode: int  # full st_mode, file type bits included
    uid: int
    gid: int
    size: int
    mtime: float


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlatformInfo:
    system: str  # "linux", "windows", "darwin", or "unknown"
    hostname: str
    distro: str = ""
    version: str = ""
    machine_id: str = ""

    def os_string(self) -> str:
        return " ".join(p for p in (self.distro, self.version) if p) or self.system


_SHARED_LOCK = threading.Lock()
T = TypeVar("T")


class _Shared:
    __slots__ = ("done", "error", "value")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None


class Target(abc.ABC):
    """A source of facts. Subclasses implement the primitives; nothing else."""

    #: "local", "rootfs", "ssh", "bundle" …
    kind: str = "abstract"

    def __init__(self, spec: str) -> None:
        self.spec = spec

    @property
    def id(self) -> str:
        """Stable identifier used in reports (the spec the user gave, without secrets)."""
        return self.spec

    @property
    def can_run(self) -> bool:
        """Whether ``run`` can work at all on this kind of target: only kinds that implement it."""
        return type(self).run is not Target.run

    @abc.abstractmethod
    def platform(self) -> PlatformInfo: ...

    @abc.abstractmethod
    def read_file(self, path: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes: ...

    @abc.abstractmethod
    def list_dir(self, path: str) -> list[str]:
        """Names in a directory, sorted. Raises FileMissing/FileUnreadable."""

    @abc.abstractmethod
    def stat(self, path: str) -> FileStat | None:
        """stat() following symlinks; None when the path does not exist."""

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = DEFAULT_COMMAND_TIMEOUT,
        max_output: int = DEFAULT_MAX_OUTPUT_BYTES,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run a program from an argv list (never a shell string), with ``LC_ALL=C``."""
        raise CommandUnavailable(f"a {self.kind} target cannot run commands")

    def exists(self, path: str) -> bool:
        return self.stat(path) is not None

    def shared(self, key: str, compute: Callable[[], T]) -> T:
        """One answer per target to a question that several collectors ask (the process table).

        Computed once, by the first collector to ask, while the others wait for it; an error is raised to
        each of them. Besides the work saved, every collector then judges the same snapshot.
        """
        with _SHARED_LOCK:
            table: dict[str, _Shared] = self.__dict__.setdefault("_shared_answers", {})
            entry = table.get(key)
            owner = entry is None
            if entry is None:
                entry = table[key] = _Shared()
        if owner:
            try:
                entry.value = compute()
            except BaseException as e:
                entry.error = e
            finally:
                entry.done.set()
        else:
            entry.done.wait()
        if entry.error is not None:
            raise entry.error
        return entry.value  # type: ignore[no-any-return]

    def prefetch(self, paths: Iterable[str], *, op: PrefetchOp = "read") -> None:
        """A hint that these paths will be read (``op``: read, stat, list or readlink) soon.

        Where each access is a round trip (SSH), answering them in one batch instead of one by one is what
        makes a remote scan fast; elsewhere there is nothing to gain and this does nothing. Never raises for
        a path: its error comes from the call that asks for it, exactly as without the hint.
        """

    def registry(self) -> RegistryReader:
        """The Windows registry (hive files offline, winreg on the PC, PowerShell over SSH): one reader per
        target, shared by collectors.

        Raises RegistryUnavailable on kinds that have none (see ``agent/targets/registry.py``)."""
        from agent.targets.registry import open_registry

        return self.shared("windows-registry", lambda: open_registry(self))

    def powershell(self) -> PowerShellBatch:
        """The one PowerShell batch of a live Windows target (``agent/targets/powershell.py``), shared by
        collectors. Kinds without PowerShell (an offline image, Linux) raise CommandUnavailable."""
        raise CommandUnavailable(f"a {self.kind} target has no running Windows to ask (PowerShell)")

    def readlink(self, path: str) -> str:
        """Where a symbolic link points (e.g. ``/proc/PID/exe``). Kinds that cannot tell raise FileUnreadable."""
        raise FileUnreadable(f"{path}: this target cannot read symbolic links")

    @property
    def failure(self) -> TargetError | None:
        """The error that broke the whole target during the scan (a lost connection), if any.

        Single calls fail one by one; this tells the runner that the facts after it are missing because the
        host went away, so the target is reported ``partial`` with that reason rather than looking healthy.
        """
        return None

    def close(self) -> None:
        """Release connections. Safe to call twice."""

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
