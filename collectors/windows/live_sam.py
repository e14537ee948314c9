"""What the SAM and SECURITY hives say offline, asked of a running PC instead, where they are closed.

On a running Windows the registry refuses ``HKLM\\SAM\\SAM`` and ``HKLM\\SECURITY`` even to administrators
(only SYSTEM may read them), so the account, Administrators and audit-policy collectors take these answers
from PowerShell parts of the one batch (``agent/targets/ps``): ``secedit`` and ``auditpol`` exports (files,
as base64), CIM ``Win32_UserAccount`` with ADSI ``WinNT`` for last logons, and ADSI for the group's members.
Each is turned into the shape the hive gives offline, so the judges read both alike; anything that does not
fit raises ValueError, which the collectors record as an error (never a default that could pass).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from agent.targets.registry import RegAnswer, RegistryReader

GUEST_RID = 501
_LOCAL_SID = re.compile(r"S-1-5-21-\d{1,10}-\d{1,10}-\d{1,10}-(\d{1,10})")
_SID = re.compile(r"S-1-\d{1,14}(-\d{1,10}){1,15}")
_MAX_AGE_SECONDS = 200 * 365 * 86400


def closed_live(reader: RegistryReader, answer: RegAnswer) -> bool:
    """True when a LIVE registry refused the key (the SAM and SECURITY hives are SYSTEM's only).

    An image's unreadable hive stays an error: there is no running system to ask instead.
    """
    return (reader.backend != "offline-hives" and answer.status == "error" and answer.error is not None
            and answer.error.kind == "hive_unreadable")


def registry_refusal(answer: RegAnswer) -> dict[str, Any]:
    """Why the hive was not used, for the evidence."""
    return {"key": answer.key, "kind": answer.error.kind if answer.error else None,
            "message": str(answer.error) if answer.error else None}


def part_file(value: Any, part: str) -> bytes:
    """The bytes of a file a part exported (``{"exit_code": 0, "data": base64}``)."""
    if not isinstance(value, Mapping):
        raise ValueError(f"the {part} part's answer is not an object")
    data, rc = value.get("data"), value.get("exit_code")
    if rc != 0 or isinstance(rc, bool):
        raise ValueError(f"the {part} part's exit code is {str(rc)[:20]!r}, not 0")
    if not isinstance(data, str):
        raise ValueError(f"the {part} part's answer has no base64 'data' text")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"the {part} part's data is not base64 ({e})") from e
    return raw


def _iso(value: Any, what: str) -> str | None:
    """An ISO 8601 date as the parts write it (``...Z``), normalized as ``sam.filetime`` writes SAM dates."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{what} is not a date")
    try:
        when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise ValueError(f"{what} {value[:40]!r} is not an ISO 8601 date") from e
    if when.tzinfo is None:
        raise ValueError(f"{what} {value[:40]!r} has no time zone")
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def _bool(row: Mapping[str, Any], key: str) -> bool:
    v = row.get(key)
    if not isinstance(v, bool):
        raise ValueError(f"{key} is {type(v).__name__}, not a boolean")
    return v


def cim_account(row: Any, collected_at: int) -> dict[str, Any]:
    """One ``localusers`` row as the SAM-based collector's account entry (``sam.UserF`` plus name, errors).

    The flags come from CIM (PasswordRequired false is the SAM's PASSWORD_NOT_REQUIRED bit); the last logon,
    password age and expiry from ADSI. An ADSI failure leaves the account judged for IA-01/PM-02 but its
    last logon undetermined (``last_logon_error``): PM-04 then cannot call it active.
    """
    if not isinstance(row, Mapping):
        raise ValueError("a local account row is not an object")
    name, sid = row.get("Name"), row.get("SID")
    if not isinstance(name, str) or not isinstance(sid, str) or not name:
        raise ValueError("a local account has no Name/SID text")
    entry: dict[str, Any] = {"rid_key": None, "name": name, "sid": sid, "error": None, "last_logon_error": None}
    m = _LOCAL_SID.fullmatch(sid)
    try:
        if m is None:
            raise ValueError(f"SID {sid[:60]!r} is not a local account's")
        rid = int(m.group(1))
        disabled, required, locked = _bool(row, "Disabled"), _bool(row, "PasswordRequired"), _bool(row, "Lockout")
    except ValueError as e:
        entry["error"] = {"kind": "garbage", "message": f"{name}: {e}"}
        entry["builtin_guest"] = False
        return entry
    flags = [f for f, on in (("DISABLED", disabled), ("PASSWORD_NOT_REQUIRED", not required),
                             ("AUTO_LOCKED", locked)) if on]
    entry.update(rid_key=f"{rid:08X}", rid=rid, acb=None, flags=flags, disabled=disabled,
                 password_not_required=not required, locked=locked, last_logon=None, password_last_set=None,
                 account_expires=None, failed_logins=None, logins=None, builtin_guest=rid == GUEST_RID)
    adsi_error = row.get("adsi_error")
    try:
        if adsi_error is not None and (not isinstance(adsi_error, str) or adsi_error):
            raise ValueError(f"ADSI: {str(adsi_error)[:120]}")
        age = row.get("PasswordAge")
        if age is not None and (not isinstance(age, int) or isinstance(age, bool) or not 0 <= age <= _MAX_AGE_SECONDS):
            raise ValueError(f"PasswordAge {str(age)[:20]!r} is not a number of seconds")
        entry["last_logon"] = _iso(row.get("LastLogin"), "LastLogin")
        entry["account_expires"] = _iso(row.get("AccountExpirationDate"), "AccountExpirationDate")
        if age is not None:
            when = dt.datetime.fromtimestamp(collected_at, dt.UTC) - dt.timedelta(seconds=age)
            entry["password_last_set"] = when.isoformat().replace("+00:00", "Z")
    except ValueError as e:
        entry["last_logon_error"] = {"kind": "error", "message": f"{name}: {e}"}
    return entry


def cim_accounts(value: Any, collected_at: int) -> list[dict[str, Any]]:
    """Every local account of the ``localusers`` part; ValueError when the answer is not that part's shape."""
    users = value.get("users") if isinstance(value, Mapping) else None
    if not isinstance(users, list) or not users:
        raise ValueError("the localusers part's answer has no list of users (a PC always has Administrator)")
    out = [cim_account(u, collected_at) for u in users]
    sids = [a["sid"] for a in out]
    if len(set(sids)) != len(sids):
        raise ValueError("the localusers part lists one SID twice")
    return out


def account_domain(accounts: list[dict[str, Any]]) -> str:
    """The PC's account domain SID (S-1-5-21-a-b-c), shared by every local account."""
    heads = {str(a["sid"]).rpartition("-")[0] for a in accounts if a.get("rid") is not None}
    if len(heads) != 1:
        raise ValueError(f"the local accounts do not share one domain SID ({len(heads)} found)")
    return heads.pop()


def adsi_members(value: Any, domain: str, names: Mapping[int, str]) -> list[dict[str, Any]]:
    """The ``admins`` part's members as ``groups.Member`` (sid, rid, name); ValueError on any doubt.

    A member whose SID ADSI could not read is an error for the whole group: which account it is, and so
    whether it is approved, is unknown.
    """
    if not isinstance(value, Mapping) or value.get("group_sid") != "S-1-5-32-544":
        raise ValueError("the admins part did not read the group S-1-5-32-544")
    rows = value.get("members")
    if not isinstance(rows, list):
        raise ValueError("the admins part's answer has no list of members")
    out: list[dict[str, Any]] = []
    for row in rows:
        if not isinstance(row, Mapping):
            raise ValueError("a member row is not an object")
        sid, name = row.get("sid"), row.get("name")
        shown = str(row.get("adspath") or name or "?")[:120]
        if not isinstance(sid, str) or _SID.fullmatch(sid) is None:
            raise ValueError(f"member {shown}: no SID ({str(row.get('error') or sid)[:60]})")
        head, _, tail = sid.rpartition("-")
        if head == domain:
            out.append({"sid": sid, "rid": int(tail), "name": names.get(int(tail), name if isinstance(name, str)
                                                                      else None)})
        else:
            out.append({"sid": sid, "rid": None, "name": name if isinstance(name, str) and name else None})
    return out
