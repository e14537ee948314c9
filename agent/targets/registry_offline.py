"""Registry answers from the hive files of an offline Windows image (``rootfs:DIR``).

DIR is a mounted Windows volume or a folder holding copies of its hives, laid out as on the volume:
``Windows/System32/config/{SYSTEM,SOFTWARE,SAM,SECURITY}`` and ``Users/<name>/NTUSER.DAT``. Names are
matched case-insensitively, because NTFS is and a copied folder on Linux is not. Hives are read through the
target's own file primitives (``read_file``, ``list_dir``), so the same code can later read them over SFTP.

Parser: python-registry, chosen by measuring it against regipy on the corpus hives
(``benchmarks/hive_parsers.py``): it raises on a damaged key where regipy silently lists garbage and then
answers "no such key" — which for ``mrxsmb10`` would read as "SMBv1 client not installed", a false pass;
it takes bytes (regipy only opens a path, so a SAM would have to be written to a temporary file); it reads
without a shared stream position, so concurrent collectors can share one parsed hive; and it was 17x faster
on the collectors' lookups and ~70x on a full walk. It is old (1.3.1, 2019) but the REGF format is frozen;
mamoru uses only its key/value access and decodes value types itself (``registry.decode``).
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Sequence
from typing import Any

from agent.targets.base import FileMissing, FileTooLarge, PlatformInfo, Target, TargetError
from agent.targets.registry import (
    HiveCorrupted,
    HiveMissing,
    HiveUnreadable,
    RegAnswer,
    RegistryError,
    RegistryReader,
    RegistryUnavailable,
    RegQuery,
    RegValue,
    UserProfile,
    decode,
)

#: A real SOFTWARE hive is 50-300 MB; a "hive" of gigabytes is an accident or an attack.
HIVE_MAX_BYTES = 512 * 1024 * 1024
CONFIG_DIR = ("Windows", "System32", "config")
MACHINE_HIVES = ("SYSTEM", "SOFTWARE", "SAM", "SECURITY")
#: Profile folders that are templates or shared, not a person's hive.
NOT_PERSONS = {"default", "default user", "public", "all users", "defaultapppool"}
PROFILE_LIST = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList"
DEFAULT_VALUE = "(default)"
_DRIVE = re.compile(r"^([A-Za-z]):\\")


class _NotFound(Exception):
    """A key on the path does not exist (an answer, not an error)."""


def find_ci(target: Target, parts: Sequence[str], *, base: str = "") -> str | None:
    """The image path of ``base/parts…`` matching each name case-insensitively (an exact match wins);
    None when a component does not exist. Raises HiveUnreadable when a folder cannot be listed."""
    path = base
    for part in parts:
        try:
            names = target.list_dir(path or "/")
        except FileMissing:
            return None
        except TargetError as e:
            raise HiveUnreadable(f"{path or '/'}: {e}") from e
        if part in names:
            hit = part
        else:
            folded = [n for n in names if n.casefold() == part.casefold()]
            if not folded:
                return None
            hit = folded[0]
        path = f"{path}/{hit}"
    return path or "/"


class OfflineRegistry(RegistryReader):
    backend = "offline-hives"

    def __init__(self, target: Target, config_dir: str) -> None:
        self._target = target
        self._config = config_dir
        self._lock = threading.RLock()
        self._hives: dict[str, Any] = {}  # image path -> parsed hive, or the RegistryError it gave
        self._dirty: dict[str, bool] = {}
        self._control_set: str | RegistryError | None = None
        self._users: list[UserProfile] | None = None
        self._users_from = ""

    @classmethod
    def find(cls, target: Target) -> OfflineRegistry | None:
        """A reader when the image holds ``Windows/System32/config/SYSTEM``, else None."""
        try:
            config = find_ci(target, CONFIG_DIR)
            if config is None or find_ci(target, ["SYSTEM"], base=config) is None:
                return None
        except RegistryError:
            return None
        return cls(target, config)

    # -- hives -----------------------------------------------------------------------------------------

    def _load(self, path: str, label: str) -> Any:
        with self._lock:
            cached = self._hives.get(path)
            if cached is None:
                try:
                    cached = self._parse(path, label)
                except RegistryError as e:
                    cached = e
                self._hives[path] = cached
        if isinstance(cached, RegistryError):
            raise cached
        return cached

    def _parse(self, path: str, label: str) -> Any:
        from Registry import Registry

        try:
            data = self._target.read_file(path, max_bytes=HIVE_MAX_BYTES)
        except FileMissing as e:
            raise HiveMissing(f"{label} hive {path}: no such file") from e
        except FileTooLarge as e:
            raise HiveUnreadable(f"{label} hive {path}: {e}") from e
        except TargetError as e:
            raise HiveUnreadable(f"{label} hive {path}: {e}") from e
        try:
            hive = Registry.Registry(io.BytesIO(data))
            root = hive.root()
            root.name()
            self._dirty[path] = not hive._regf.validate_sequence_numbers()
        except Exception as e:  # the parser raises many types on damaged bytes; none may escape as a crash
            raise HiveCorrupted(f"{label} hive {path}: not a readable registry hive ({_brief(e)})") from e
        return hive

    def _machine_hive(self, name: str) -> tuple[Any, str]:
        path = find_ci(self._target, [name], base=self._config)
        if path is None:
            raise HiveMissing(f"{name} hive not in the image ({self._config}/{name})")
        return self._load(path, name), path

    def _user_hive(self, user_id: str) -> tuple[Any, str]:
        for u in self.users():
            if u.id.casefold() == user_id.casefold():
                if u.hive is None:
                    raise HiveMissing(f"user {u.id}: {u.note or 'no NTUSER.DAT in the image'}")
                return self._load(u.hive, f"user {u.id}"), u.hive
        raise HiveMissing(f"no user profile {user_id} in this image")

    # -- keys ------------------------------------------------------------------------------------------

    def control_set(self) -> str:
        """``ControlSet00N`` named by ``SYSTEM\\Select\\Current``: the set the machine booted with."""
        with self._lock:
            if self._control_set is None:
                try:
                    self._control_set = self._read_control_set()
                except RegistryError as e:
                    self._control_set = e
        if isinstance(self._control_set, RegistryError):
            raise self._control_set
        return self._control_set

    def _read_control_set(self) -> str:
        hive, path = self._machine_hive("SYSTEM")
        try:
            key = _walk(hive, ["Select"], f"SYSTEM hive {path}")
            values = _values(key, ("Current",), f"SYSTEM hive {path}")
        except _NotFound as e:
            raise HiveCorrupted(f"SYSTEM hive {path}: no Select key, so the current control set is unknown") from e
        current = values.get("Current")
        if current is None or not isinstance(current.data, int) or not 1 <= current.data <= 999:
            raise HiveCorrupted(f"SYSTEM hive {path}: Select\\Current is missing or not a control set number")
        return f"ControlSet{current.data:03d}"

    def _resolve(self, key: str) -> tuple[Any, list[str], str, str]:
        """(parsed hive, key path inside it, label for messages, the key as read) of a full key path."""
        parts = [p for p in key.split("\\") if p]
        if len(parts) < 2:
            raise RegistryError(f"{key}: not a key path (HKLM\\<hive>\\... or HKU\\<user>\\...)")
        root = parts[0].upper()
        if root in ("HKLM", "HKEY_LOCAL_MACHINE"):
            name = parts[1].upper()
            if name not in MACHINE_HIVES:
                raise RegistryError(f"{key}: HKLM\\{parts[1]} is not a hive mamoru reads")
            hive, path = self._machine_hive(name)
            rest = parts[2:]
            if name == "SYSTEM" and rest and rest[0].casefold() == "currentcontrolset":
                rest = [self.control_set(), *rest[1:]]
            return hive, rest, f"{name} hive {path}", "\\".join([parts[0], parts[1], *rest])
        if root in ("HKU", "HKEY_USERS"):
            hive, path = self._user_hive(parts[1])
            return hive, parts[2:], f"user hive {path}", key
        raise RegistryError(f"{key}: only HKLM and HKU are read")

    def _answer(self, query: RegQuery, key: str, user: UserProfile | None) -> RegAnswer:
        shown = key
        try:
            hive, rest, label, shown = self._resolve(key)
            try:
                k = _walk(hive, rest, label)
                values = _values(k, query.values, label)
                subkeys = _subkeys(k, label) if query.subkeys else ()
            except _NotFound:
                return RegAnswer(query=query, key=shown, status="missing", user=user)
        except RegistryError as e:
            return RegAnswer(query=query, key=shown, status="error", user=user, error=e)
        return RegAnswer(query=query, key=shown, status="ok", values=values, subkeys=subkeys, user=user)

    def read(self, queries: Sequence[RegQuery]) -> list[RegAnswer]:
        out: list[RegAnswer] = []
        for q in queries:
            parts = q.key.split("\\")
            if len(parts) >= 2 and parts[0].upper() in ("HKU", "HKEY_USERS") and parts[1] == "*":
                try:
                    users = self.users()
                except RegistryError as e:
                    out.append(RegAnswer(query=q, key=q.key, status="error", error=e))
                    continue
                for u in users:
                    out.append(self._answer(q, "\\".join([parts[0], u.id, *parts[2:]]), u))
            else:
                out.append(self._answer(q, q.key, None))
        return out

    # -- users -----------------------------------------------------------------------------------------

    def users(self) -> list[UserProfile]:
        with self._lock:
            if self._users is None:
                self._users = self._find_users()
            return list(self._users)

    def _find_users(self) -> list[UserProfile]:
        listed = self._answer(RegQuery(PROFILE_LIST, (), subkeys=True), PROFILE_LIST, None)
        if listed.status == "ok":
            self._users_from = "ProfileList"
            sids = [s for s in listed.subkeys if s.startswith("S-1-5-21-") and not s.lower().endswith(".bak")]
            queries = [RegQuery(f"{PROFILE_LIST}\\{sid}", ("ProfileImagePath",)) for sid in sids]
            system_drive = self._system_drive()
            return [self._profile(sid, a, system_drive) for sid, a in zip(sids, self.read(queries), strict=True)]
        why = str(listed.error) if listed.error is not None else "SOFTWARE has no ProfileList key"
        self._users_from = f"Users folder (SIDs unknown: {why})"
        return self._users_by_folder(why)

    def _system_drive(self) -> str:
        [a] = self.read([RegQuery(r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion", ("SystemRoot",))])
        v = a.value("SystemRoot")
        m = _DRIVE.match(v.data) if v is not None and isinstance(v.data, str) else None
        return m.group(1).upper() if m else "C"

    def _profile(self, sid: str, answer: RegAnswer, system_drive: str) -> UserProfile:
        v = answer.value("ProfileImagePath")
        if answer.status != "ok" or v is None or not isinstance(v.data, str):
            why = str(answer.error) if answer.error else "no ProfileImagePath"
            return UserProfile(id=sid, sid=sid, profile="", note=why)
        windows_path = re.sub(r"(?i)^%systemdrive%", f"{system_drive}:", v.data)
        m = _DRIVE.match(windows_path)
        if m is None or m.group(1).upper() != system_drive:
            return UserProfile(id=sid, sid=sid, profile=windows_path,
                               note=f"profile folder {windows_path} is not on this volume ({system_drive}:)")
        parts = [p for p in windows_path[3:].split("\\") if p]
        hive = find_ci(self._target, [*parts, "NTUSER.DAT"])
        return UserProfile(id=sid, sid=sid, profile=windows_path, hive=hive,
                           note="" if hive else "no NTUSER.DAT in the profile folder of this image")

    def _users_by_folder(self, why: str) -> list[UserProfile]:
        users_dir = find_ci(self._target, ["Users"])
        if users_dir is None:
            return []
        out = []
        for name in self._target.list_dir(users_dir):
            if name.casefold() in NOT_PERSONS:
                continue
            hive = find_ci(self._target, ["NTUSER.DAT"], base=f"{users_dir}/{name}")
            if hive is not None:
                out.append(UserProfile(id=f"profile:{name}", sid=None, profile=f"{users_dir}/{name}", hive=hive,
                                       note="SID unknown: the SOFTWARE hive's ProfileList could not be read"))
        return out

    def source(self) -> dict[str, Any]:
        with self._lock:
            hives = {p: ("error: " + str(h)) if isinstance(h, RegistryError) else
                     ("dirty (transaction logs not applied: the newest changes may be missing)"
                      if self._dirty.get(p) else "ok")
                     for p, h in sorted(self._hives.items())}
            cs = self._control_set if isinstance(self._control_set, str) else None
            return {"backend": self.backend, "config_dir": self._config, "hives": hives, "control_set": cs,
                    "users_from": self._users_from or None}


def _brief(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _walk(hive: Any, parts: Sequence[str], label: str) -> Any:
    from Registry import Registry

    key = hive.root()
    for i, part in enumerate(parts):
        try:
            key = key.subkey(part)
        except Registry.RegistryKeyNotFoundException as e:
            raise _NotFound(part) from e
        except Exception as e:
            where = "\\".join(parts[: i + 1])
            raise HiveCorrupted(f"{label}: damaged at {where} ({_brief(e)})") from e
    return key


def _values(key: Any, names: tuple[str, ...] | None, label: str) -> dict[str, RegValue]:
    wanted = None if names is None else {n.casefold() for n in names}
    out: dict[str, RegValue] = {}
    if wanted is not None and not wanted:
        return out
    try:
        for v in key.values():
            name = v.name()
            if wanted is not None and name.casefold() not in wanted:
                continue
            code = v.value_type()
            out[name] = RegValue(name=name, type=code, data=decode(code, v.raw_data()))
    except Exception as e:
        raise HiveCorrupted(f"{label}: values of {key.path()!s:.200} are damaged ({_brief(e)})") from e
    return out


def _subkeys(key: Any, label: str) -> tuple[str, ...]:
    try:
        return tuple(k.name() for k in key.subkeys())
    except Exception as e:
        raise HiveCorrupted(f"{label}: subkeys of {key.path()!s:.200} are damaged ({_brief(e)})") from e


def windows_platform(target: Target) -> PlatformInfo | None:
    """PlatformInfo of an image holding a Windows SYSTEM hive, else None (``RootfsTarget.platform``)."""
    try:
        reader = target.registry()
    except RegistryUnavailable:
        return None
    except RegistryError:
        return PlatformInfo(system="windows", hostname="")
    cv = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion"
    name, ver, guid = reader.read([
        RegQuery(r"HKLM\SYSTEM\CurrentControlSet\Control\ComputerName\ComputerName", ("ComputerName",)),
        RegQuery(cv, ("ProductName", "DisplayVersion", "ReleaseId", "CurrentBuild", "UBR")),
        RegQuery(r"HKLM\SOFTWARE\Microsoft\Cryptography", ("MachineGuid",)),
    ])

    def text(a: RegAnswer, value: str) -> str:
        v = a.value(value)
        return str(v.data) if v is not None and isinstance(v.data, str | int) else ""

    product, build = text(ver, "ProductName"), text(ver, "CurrentBuild")
    if product.startswith("Windows 10") and build.isdigit() and int(build) >= 22000:
        product = "Windows 11" + product[len("Windows 10"):]  # Windows 11 still says "Windows 10" here
    release = text(ver, "DisplayVersion") or text(ver, "ReleaseId")
    full_build = ".".join(p for p in (build, text(ver, "UBR")) if p)
    version = " ".join(p for p in (release, f"(build {full_build})" if full_build else "") if p)
    return PlatformInfo(system="windows", hostname=text(name, "ComputerName"), distro=product or "Windows",
                        version=version, machine_id=text(guid, "MachineGuid"))
