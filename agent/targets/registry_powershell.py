"""Registry answers through the PowerShell batch (Windows over SSH): the ``registry`` part reads the keys.

The queries travel as JSON parameters of the part (never as command text); the part answers each with the
values' type codes and data (``ps/registry.ps1``), and this module turns that JSON into the same typed
``RegAnswer`` objects the offline and winreg backends give, checking every value against its type: JSON
that does not fit its type (a DWORD of -1, a string where a list belongs) is a damaged answer, an error,
never a value. A user whose hive is not loaded (not logged on) is an unreadable answer, as with winreg.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from agent.targets.powershell import PartError, PowerShellBatch
from agent.targets.registry import (
    HiveCorrupted,
    HiveUnreadable,
    RegAnswer,
    RegData,
    RegistryError,
    RegistryReader,
    RegQuery,
    RegType,
    RegValue,
    UserProfile,
)

_KINDS: dict[str, type[RegistryError]] = {"hive_unreadable": HiveUnreadable, "hive_corrupted": HiveCorrupted}


def query_json(q: RegQuery) -> dict[str, Any]:
    return {"key": q.key, "values": None if q.values is None else list(q.values), "subkeys": q.subkeys}


def _data(code: int, v: Mapping[str, Any]) -> RegData:
    """Typed data from the part's JSON, or ValueError when it cannot be what its type says."""
    data, enc = v.get("data"), v.get("enc")
    if code == RegType.REG_DWORD:
        if isinstance(data, int) and not isinstance(data, bool) and 0 <= data < 2**32:
            return data
    elif code == RegType.REG_QWORD:
        if isinstance(data, str) and enc == "decimal" and data.isdigit() and int(data) < 2**64:
            return int(data)
    elif code in (RegType.REG_SZ, RegType.REG_EXPAND_SZ):
        if isinstance(data, str):
            return data
    elif code == RegType.REG_MULTI_SZ:
        if isinstance(data, list) and all(isinstance(s, str) for s in data):
            return list(data)
    elif enc == "base64" and isinstance(data, str):
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            pass
    raise ValueError(f"{RegType(code).name if code in RegType._value2member_map_ else code}: "
                     f"data {str(data)[:40]!r} does not fit the type")


class PowerShellRegistry(RegistryReader):
    backend = "powershell"

    def __init__(self, batch: PowerShellBatch) -> None:
        self.batch = batch

    def prefetch(self, queries: Sequence[RegQuery]) -> None:
        self.batch.want(registry=[query_json(q) for q in queries])

    def users(self) -> list[UserProfile]:
        users, _ = self.batch.registry([])
        return [p for p in (self._user(u) for u in users) if p is not None]

    @staticmethod
    def _user(u: Any) -> UserProfile | None:
        if not isinstance(u, dict) or not isinstance(u.get("sid"), str):
            return None
        note = "" if u.get("loaded") is True else "user not logged on: the hive is not loaded"
        profile = u.get("profile")
        return UserProfile(id=u["sid"], sid=u["sid"], profile=profile if isinstance(profile, str) else "", hive=None,
                           note=note)

    def read(self, queries: Sequence[RegQuery]) -> list[RegAnswer]:
        users, per_query = self.batch.registry([query_json(q) for q in queries])
        by_sid = {p.id: p for p in (self._user(u) for u in users) if p is not None}
        out: list[RegAnswer] = []
        for q, answers in zip(queries, per_query, strict=True):
            if isinstance(answers, PartError):
                out.append(RegAnswer(query=q, key=q.key, status="error", error=HiveUnreadable(str(answers))))
                continue
            per_user = q.key.split("\\")[:2] in (["HKU", "*"], ["HKEY_USERS", "*"])
            if not answers and not per_user:
                out.append(RegAnswer(query=q, key=q.key, status="error",
                                     error=HiveCorrupted("the registry part gave no answer for this key")))
                continue
            out += [self._answer(q, a, by_sid) for a in answers]
        return out

    def _answer(self, q: RegQuery, a: Mapping[str, Any], users: Mapping[str, UserProfile]) -> RegAnswer:
        raw_key, raw_user = a.get("key"), a.get("user")
        key = raw_key if isinstance(raw_key, str) else q.key
        user = users.get(raw_user) if isinstance(raw_user, str) else None
        base = RegAnswer(query=q, key=key, status="error", user=user)
        status = a.get("status")
        if status == "missing":
            return dataclasses.replace(base, status="missing")
        if status == "error":
            raw_err = a.get("error")
            err: Mapping[str, Any] = raw_err if isinstance(raw_err, dict) else {}
            kind = _KINDS.get(str(err.get("kind")), HiveUnreadable)
            return dataclasses.replace(base, error=kind(str(err.get("message") or "unreadable")[:300]))
        raw_values = a.get("values")
        if status != "ok" or not isinstance(raw_values, dict):
            return dataclasses.replace(base, error=HiveCorrupted(f"{key}: the answer is not a registry answer"))
        values: dict[str, RegValue] = {}
        for name, v in raw_values.items():
            code = v.get("type") if isinstance(v, dict) else None
            try:
                if not isinstance(code, int) or isinstance(code, bool) or not 0 <= code < 2**32:
                    raise ValueError(f"type {code!r}")
                values[name] = RegValue(name=name, type=code, data=_data(code, v))
            except ValueError as e:
                return dataclasses.replace(base, error=HiveCorrupted(f"{key}\\{name}: {e}"))
        raw_subkeys = a.get("subkeys")
        subkeys = raw_subkeys if isinstance(raw_subkeys, list) else []
        return RegAnswer(query=q, key=key, status="ok", values=values, user=user,
                         subkeys=tuple(s for s in subkeys if isinstance(s, str)))

    def source(self) -> dict[str, Any]:
        return {"backend": self.backend, "via": self.batch.where}
