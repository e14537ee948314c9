"""Local accounts: /etc/passwd, /etc/shadow, /etc/group.

Password hashes never leave this module: each shadow entry becomes a state —
``empty`` (no password at all), ``locked`` (``!``/``*`` prefix), ``set`` —
which is all a check needs and all a report may show.

A line that does not have exactly the shape of its file yields nothing but its
line number: a shadow line that lost its user field would otherwise turn the
hash into a "user name" and carry it into the report and the bundle. So a
name must look like one (no ``$`` except at the end, which no ``$id$`` crypt
hash satisfies), the numeric fields must be numbers, and a shadow password
field that is a number means the fields have shifted left (no hash, lock
mark or empty field is ever all digits).
"""

from __future__ import annotations

import re
from typing import Any

from agent.targets.base import FileMissing, FileUnreadable, Target, TargetError
from collectors.base import Collector, Facts
from collectors.textfiles import read_text

#: A user or group name, as shadow-utils' relaxed rule (is_valid_user_name with --badname) allows them, letters
#: of any script included, but without blanks, control characters or ``/``; ``$`` only last (Samba machine
#: accounts). Every ``$id$``
#: crypt hash has a ``$`` inside; a 13-character DES hash can look like a name, which is why parse_shadow
#: also refuses a line whose password field is a number (the sign of a missing user field).
_NAME = re.compile(r"\w[\w.@-]{0,255}\$?")
#: shadow(5) day counts: empty or a number (``-1`` is written by some tools for "never").
_DAYS = re.compile(r"-?[0-9]*")


def valid_name(field: str) -> bool:
    """Does this field look like an account or group name (and so cannot be a displaced password hash)?"""
    return _NAME.fullmatch(field) is not None and not field.isdigit()


def password_state(field: str) -> str:
    if field == "":
        return "empty"
    if field[0] in "!*":
        return "locked"
    return "set"


def _file_problem(e: TargetError) -> dict[str, Any]:
    return {"error": str(e), "permission": isinstance(e, FileUnreadable) and "denied" in str(e).lower()}


def parse_passwd(lines: list[str]) -> tuple[list[dict[str, Any]], list[int]]:
    users, malformed = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith(("+", "-")):  # NIS compat entries: not local accounts
            continue
        parts = line.split(":")
        if len(parts) != 7 or not valid_name(parts[0]) or not parts[2].isdigit() or not parts[3].isdigit():
            malformed.append(n)
            continue
        name, pw, uid, gid, _gecos, home, shell = parts
        users.append({
            "name": name,
            "uid": int(uid),
            "gid": int(gid),
            "home": home,
            "shell": shell,
            # "x" means "see shadow"; anything else in passwd is a legacy in-place password.
            "passwd_field": "shadow" if pw == "x" else password_state(pw),
            "line": n,
        })
    return users, malformed


def _shadow_fields(line: str) -> list[str] | None:
    """The nine fields of a well-formed shadow(5) line, else None (the caller keeps only the line number)."""
    parts = line.split(":")
    if (len(parts) != 9 or not valid_name(parts[0]) or not all(_DAYS.fullmatch(f) for f in parts[2:8])
            or (parts[1] and _DAYS.fullmatch(parts[1]))):
        return None
    return parts


def parse_shadow(lines: list[str]) -> tuple[dict[str, str], list[int]]:
    states: dict[str, str] = {}
    malformed = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = _shadow_fields(line)
        if parts is None:
            malformed.append(n)
            continue
        states[parts[0]] = password_state(parts[1])
    return states, malformed


def _day(field: str) -> int | None:
    return int(field) if field.isdigit() else None


def parse_shadow_aging(lines: list[str]) -> dict[str, dict[str, int | None]]:
    """Dates from shadow(5) in days since 1970: last password change, inactivity grace, account expiry."""
    aging: dict[str, dict[str, int | None]] = {}
    for line in lines:
        parts = None if line.startswith("#") else _shadow_fields(line)
        if parts is None:
            continue
        aging[parts[0]] = {"last_change": _day(parts[2]), "inactive": _day(parts[6]), "expire": _day(parts[7])}
    return aging


def parse_group(lines: list[str]) -> tuple[list[dict[str, Any]], list[int]]:
    groups, malformed = [], []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(":")
        if len(parts) != 4 or not valid_name(parts[0]) or not parts[2].isdigit():
            malformed.append(n)
            continue
        groups.append({"name": parts[0], "gid": int(parts[2]),
                       "members": [m for m in parts[3].split(",") if m]})
    return groups, malformed


class AccountsCollector(Collector):
    id = "accounts"
    reads = ("/etc/passwd", "/etc/shadow", "/etc/group")
    version = "3"  # 2: shadow aging dates; 3: a name or day field of the wrong shape makes the line malformed

    def collect(self, target: Target) -> Facts:
        facts: Facts = {}
        try:
            passwd = read_text(target, "/etc/passwd")
            users, bad = parse_passwd(passwd.lines)
            facts["passwd"] = {"users": users, "malformed_lines": bad}
        except TargetError as e:
            facts["passwd"] = _file_problem(e)
        try:
            shadow = read_text(target, "/etc/shadow")
            states, bad = parse_shadow(shadow.lines)
            facts["shadow"] = {"states": states, "malformed_lines": bad, "aging": parse_shadow_aging(shadow.lines)}
        except FileMissing:
            facts["shadow"] = {"missing": True}
        except TargetError as e:
            facts["shadow"] = _file_problem(e)
        try:
            group = read_text(target, "/etc/group")
            groups, bad = parse_group(group.lines)
            facts["group"] = {"groups": groups, "malformed_lines": bad}
        except TargetError as e:
            facts["group"] = _file_problem(e)
        return facts


COLLECTOR = AccountsCollector()
