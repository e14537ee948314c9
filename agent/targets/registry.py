"""The Windows registry seam: what a collector asks of a Windows target, and the typed answers.

Collectors declare the keys and values they read (``RegQuery``, as ``Collector.reads`` declares files) and
ask for them in one batch through ``Target.registry().read(queries)``. Three backends answer the same
queries: hive files in an offline image (``registry_offline``), ``winreg`` on the PC itself
(``registry_winreg``), and the PowerShell batch over SSH (``registry_powershell``). A collector is therefore
identical on the three, and so are its facts.

Paths are ``HKLM\\SYSTEM\\CurrentControlSet\\...``, ``HKLM\\SOFTWARE\\...``, ``HKLM\\SAM\\...``,
``HKLM\\SECURITY\\...`` and ``HKU\\<user>\\...``. ``CurrentControlSet`` is resolved by the backend (offline:
``Select\\Current``, never ``ControlSet001`` blindly). ``HKU\\*`` means "every user profile": the answer
comes once per user, resolved by SID from ``ProfileList``.

A key that does not exist is an answer (``status="missing"``), not an error; a hive that is absent,
unreadable or damaged is an error of its own kind, so a judge can tell "not configured" from "could not
read", and never turns the second into a pass.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from agent.targets.base import TargetError

if TYPE_CHECKING:
    from agent.targets.base import Target


class RegistryError(TargetError):
    """The registry could not answer: the kind says why (``kind`` is shown in facts)."""

    kind: str = "error"


class RegistryUnavailable(RegistryError):
    """This target has no Windows registry that mamoru can read."""

    kind = "unavailable"


class HiveMissing(RegistryError):
    """The hive file is not in the image (e.g. a folder holding only some hives)."""

    kind = "hive_missing"


class HiveUnreadable(RegistryError):
    """The hive exists but cannot be read (permissions, I/O, larger than the cap, not loaded live)."""

    kind = "hive_unreadable"


class HiveCorrupted(RegistryError):
    """The hive's structures are damaged: nothing read through the damaged part can be trusted."""

    kind = "hive_corrupted"


class RegType(enum.IntEnum):
    REG_NONE = 0
    REG_SZ = 1
    REG_EXPAND_SZ = 2
    REG_BINARY = 3
    REG_DWORD = 4
    REG_DWORD_BIG_ENDIAN = 5
    REG_LINK = 6
    REG_MULTI_SZ = 7
    REG_RESOURCE_LIST = 8
    REG_FULL_RESOURCE_DESCRIPTOR = 9
    REG_RESOURCE_REQUIREMENTS_LIST = 10
    REG_QWORD = 11


RegData = int | str | bytes | list[str]


def type_name(code: int) -> str:
    """``REG_DWORD`` for 4; other codes (SAM stores a RID in the type field) as ``0x1f4``."""
    try:
        return RegType(code).name
    except ValueError:
        return f"0x{code:x}"


def decode(code: int, raw: bytes) -> RegData:
    """Typed data from a value's type code and raw bytes, the same for every backend that has the bytes.

    REG_DWORD/QWORD -> int, REG_SZ/EXPAND_SZ -> str (up to the first NUL), REG_MULTI_SZ -> list[str],
    anything else -> bytes. Raises ValueError when the bytes cannot be what the type says (a 2-byte
    DWORD): the caller reports that as a damaged hive, never as a value.
    """
    if code in (RegType.REG_SZ, RegType.REG_EXPAND_SZ, RegType.REG_LINK):
        return raw[: len(raw) // 2 * 2].decode("utf-16-le", "replace").split("\x00", 1)[0]
    if code == RegType.REG_MULTI_SZ:
        text = raw[: len(raw) // 2 * 2].decode("utf-16-le", "replace")
        out: list[str] = []
        for part in text.split("\x00"):
            if not part:
                break  # an empty string ends the list
            out.append(part)
        return out
    if code in (RegType.REG_DWORD, RegType.REG_DWORD_BIG_ENDIAN):
        if len(raw) < 4:
            raise ValueError(f"{type_name(code)} with {len(raw)} bytes")
        return int(struct.unpack_from("<I" if code == RegType.REG_DWORD else ">I", raw)[0])
    if code == RegType.REG_QWORD:
        if len(raw) < 8:
            raise ValueError(f"REG_QWORD with {len(raw)} bytes")
        return int(struct.unpack_from("<Q", raw)[0])
    return bytes(raw)


@dataclasses.dataclass(frozen=True)
class RegValue:
    name: str
    type: int  # the raw type code: SAM's Names keys carry the RID there
    data: RegData

    def fact(self) -> dict[str, Any]:
        """JSON for the facts: bytes as hex (redaction is the collector's job: it decides what to ask)."""
        data = self.data.hex() if isinstance(self.data, bytes) else self.data
        return {"type": type_name(self.type), "value": data}


@dataclasses.dataclass(frozen=True)
class UserProfile:
    """A user whose hive holds per-user settings (screen saver)."""

    id: str  # the SID; "profile:<folder>" offline when no SOFTWARE hive tells SIDs
    sid: str | None
    profile: str  # the profile folder as Windows names it (C:\\Users\\alice), or the image folder
    hive: str | None = None  # where the hive was found (image path), when known
    note: str = ""

    def fact(self) -> dict[str, Any]:
        return {"id": self.id, "sid": self.sid, "profile": self.profile, "hive": self.hive, "note": self.note}


@dataclasses.dataclass(frozen=True)
class RegQuery:
    """Read one key: the named values (``None``: every value) and, if asked, the names of its subkeys."""

    key: str
    values: tuple[str, ...] | None = ()
    subkeys: bool = False


Status = Literal["ok", "missing", "error"]


@dataclasses.dataclass(frozen=True)
class RegAnswer:
    query: RegQuery
    key: str  # as read: CurrentControlSet resolved, HKU\\* expanded to one user
    status: Status
    values: Mapping[str, RegValue] = dataclasses.field(default_factory=dict)
    subkeys: tuple[str, ...] = ()
    user: UserProfile | None = None
    error: RegistryError | None = None

    def value(self, name: str) -> RegValue | None:
        """A value by name, case-insensitively as Windows compares names."""
        low = name.lower()
        for k, v in self.values.items():
            if k.lower() == low:
                return v
        return None

    def fact(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "status": self.status,
                               "values": {k: v.fact() for k, v in self.values.items()}}
        if self.query.subkeys:
            out["subkeys"] = list(self.subkeys)
        if self.error is not None:
            out["error"] = {"kind": self.error.kind, "message": str(self.error)}
        return out


class RegistryReader(abc.ABC):
    """One target's registry. Thread-safe: collectors run concurrently and share one reader."""

    #: "offline-hives", "winreg", "powershell"
    backend: str = "abstract"

    @abc.abstractmethod
    def read(self, queries: Sequence[RegQuery]) -> list[RegAnswer]:
        """Answer every query (``HKU\\*`` once per user), in order. Never raises for one key or hive:
        its answer carries the error. Raises RegistryError only when no key at all can be read."""

    @abc.abstractmethod
    def users(self) -> list[UserProfile]:
        """The user profiles whose hives hold per-user settings (S-1-5-21-* accounts)."""

    def source(self) -> dict[str, Any]:
        """What was read, for evidence: backend, hive files, control set, notes."""
        return {"backend": self.backend}

    def prefetch(self, queries: Sequence[RegQuery]) -> None:
        """A hint, as ``Target.prefetch``: backends with a round trip per batch (PowerShell) answer these
        together with the first ``read``. Nothing to gain offline or through winreg."""


def open_registry(target: Target) -> RegistryReader:
    """The backend that answers for this kind of target (``Target.registry`` caches it per target)."""
    import sys

    from agent.targets.filesystem import FilesystemTarget

    if target.kind == "rootfs" and isinstance(target, FilesystemTarget):
        from agent.targets.registry_offline import OfflineRegistry

        reader = OfflineRegistry.find(target)
        if reader is None:
            raise RegistryUnavailable("no Windows/System32/config/SYSTEM hive in this image")
        return reader
    if target.kind == "local" and sys.platform == "win32":
        from agent.targets.registry_winreg import WinregRegistry

        return WinregRegistry()
    if target.kind == "ssh":  # a Windows host over SSH: the registry part of the PowerShell batch
        from agent.targets.registry_powershell import PowerShellRegistry

        try:
            return PowerShellRegistry(target.powershell())
        except TargetError as e:
            raise RegistryUnavailable(str(e)) from e
    raise RegistryUnavailable(f"a {target.kind} target has no Windows registry that mamoru can read yet")
