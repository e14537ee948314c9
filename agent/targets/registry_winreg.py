"""Registry answers on the PC itself, through ``winreg`` (only on Windows; NOT tested: no Windows here).

The same queries as the offline backend: ``CurrentControlSet`` is Windows' own, ``HKU\\<SID>`` is a loaded
user hive (a user who is not logged on has none: that user's answer is HiveUnreadable, never "missing"),
and values are decoded from the raw bytes by ``registry.decode`` exactly as offline, so facts match.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from agent.targets.registry import (
    HiveCorrupted,
    HiveUnreadable,
    RegAnswer,
    RegistryError,
    RegistryReader,
    RegistryUnavailable,
    RegQuery,
    RegValue,
    UserProfile,
)

PROFILE_LIST = r"SOFTWARE\Microsoft\Windows NT\CurrentVersion\ProfileList"


class WinregRegistry(RegistryReader):
    backend = "winreg"

    def __init__(self) -> None:
        if sys.platform != "win32":
            raise RegistryUnavailable("winreg exists only on Windows")

    def users(self) -> list[UserProfile]:
        if sys.platform != "win32":
            raise RegistryUnavailable("winreg exists only on Windows")
        import winreg

        out = []
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, PROFILE_LIST) as plist:
            for i in range(winreg.QueryInfoKey(plist)[0]):
                sid = winreg.EnumKey(plist, i)
                if not sid.startswith("S-1-5-21-") or sid.lower().endswith(".bak"):
                    continue
                with winreg.OpenKey(plist, sid) as k:
                    path = str(winreg.QueryValueEx(k, "ProfileImagePath")[0])
                try:
                    winreg.OpenKey(winreg.HKEY_USERS, sid).Close()
                    note = ""
                except OSError:
                    note = "user not logged on: the hive is not loaded"
                out.append(UserProfile(id=sid, sid=sid, profile=path, hive=None, note=note))
        return out

    def read(self, queries: Sequence[RegQuery]) -> list[RegAnswer]:
        out: list[RegAnswer] = []
        for q in queries:
            parts = q.key.split("\\")
            if parts[0].upper() in ("HKU", "HKEY_USERS") and len(parts) > 1 and parts[1] == "*":
                try:
                    users = self.users()
                except (OSError, RegistryError) as e:
                    out.append(RegAnswer(query=q, key=q.key, status="error", error=HiveUnreadable(str(e))))
                    continue
                out += [self._one(q, "\\".join(["HKU", u.id, *parts[2:]]), u) for u in users]
            else:
                out.append(self._one(q, q.key, None))
        return out

    def _one(self, q: RegQuery, key: str, user: UserProfile | None) -> RegAnswer:
        if sys.platform != "win32":
            raise RegistryUnavailable("winreg exists only on Windows")
        import winreg

        from agent.targets.registry import decode

        parts = key.split("\\")
        root = winreg.HKEY_USERS if parts[0].upper() in ("HKU", "HKEY_USERS") else winreg.HKEY_LOCAL_MACHINE
        sub = "\\".join(parts[1:])
        try:
            k = winreg.OpenKey(root, sub, 0, winreg.KEY_READ)
        except FileNotFoundError:
            if user is not None and user.note:
                return RegAnswer(query=q, key=key, status="error", user=user, error=HiveUnreadable(user.note))
            return RegAnswer(query=q, key=key, status="missing", user=user)
        except OSError as e:
            return RegAnswer(query=q, key=key, status="error", user=user, error=HiveUnreadable(f"{key}: {e}"))
        values: dict[str, RegValue] = {}
        subkeys: tuple[str, ...] = ()
        with k:
            n_sub, n_val, _ = winreg.QueryInfoKey(k)
            for i in range(n_val):
                name, _data, code = winreg.EnumValue(k, i)
                shown = name or "(default)"
                if q.values is not None and shown.lower() not in {v.lower() for v in q.values}:
                    continue
                try:
                    values[shown] = RegValue(name=shown, type=code, data=decode(code, _raw(k, name)))
                except ValueError as e:
                    return RegAnswer(query=q, key=key, status="error", user=user,
                                     error=HiveCorrupted(f"{key}\\{shown}: {e}"))
            if q.subkeys:
                subkeys = tuple(winreg.EnumKey(k, i) for i in range(n_sub))
        return RegAnswer(query=q, key=key, status="ok", values=values, subkeys=subkeys, user=user)


def _raw(key: object, name: str) -> bytes:
    """The value's bytes as stored, through RegQueryValueExW (winreg itself only gives decoded data)."""
    if sys.platform != "win32":
        raise RegistryUnavailable("winreg exists only on Windows")
    import ctypes
    from ctypes import wintypes

    advapi = ctypes.WinDLL("advapi32")
    size = wintypes.DWORD(0)
    handle = wintypes.HKEY(int(key))  # type: ignore[call-overload,unused-ignore]
    advapi.RegQueryValueExW(handle, name, None, None, None, ctypes.byref(size))
    buf = ctypes.create_string_buffer(size.value)
    rc = advapi.RegQueryValueExW(handle, name, None, None, buf, ctypes.byref(size))
    if rc != 0:
        raise HiveUnreadable(f"value {name!r}: error {rc}")
    return buf.raw[: size.value]
