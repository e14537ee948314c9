"""The two binary SAM values mamoru reads: an account's ``F`` and the account domain's ``F``.

Neither holds a secret (password hashes are in ``V``, which mamoru never reads). Layouts as documented by
Impacket's ``secretsdump`` (``USER_ACCOUNT_F``/``DOMAIN_ACCOUNT_F``) and RegRipper's ``samparse``; every
field is checked for plausibility, and anything that does not fit raises ValueError, so a damaged value
becomes an error in the facts, never a setting that passes.
"""

from __future__ import annotations

import datetime as dt
import enum
import struct
from typing import TypedDict

#: Revisions of the F structures seen from Windows XP to 11.
_REVISIONS = (2, 3)
_NEVER = (0, 0x7FFFFFFFFFFFFFFF, 0xFFFFFFFFFFFFFFFF)
_FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)


class ACB(enum.IntFlag):
    """Account control bits of a SAM account (``F`` offset 0x38)."""

    DISABLED = 0x0001
    HOME_DIR_REQUIRED = 0x0002
    PASSWORD_NOT_REQUIRED = 0x0004
    TEMP_DUPLICATE = 0x0008
    NORMAL = 0x0010
    MNS_LOGON = 0x0020
    DOMAIN_TRUST = 0x0040
    WORKSTATION_TRUST = 0x0080
    SERVER_TRUST = 0x0100
    PASSWORD_DOES_NOT_EXPIRE = 0x0200
    AUTO_LOCKED = 0x0400


_ALL_ACB = 0x07FF


class UserF(TypedDict):
    rid: int
    acb: int
    flags: list[str]
    disabled: bool
    password_not_required: bool
    locked: bool
    last_logon: str | None
    password_last_set: str | None
    account_expires: str | None
    failed_logins: int
    logins: int


class DomainF(TypedDict):
    min_password_length: int
    password_history_length: int
    complexity: bool
    lockout_threshold: int
    lockout_duration_seconds: int | None  # None: until an administrator unlocks
    lockout_window_seconds: int | None
    max_password_age_days: int | None  # None: never expires


def filetime(value: int) -> str | None:
    """A FILETIME (100 ns since 1601) as ISO 8601 UTC; None for "never"/unset."""
    if value in _NEVER or value >= 0x7FFF_FFFF_FFFF_FFFF:
        return None
    try:
        when = _FILETIME_EPOCH + dt.timedelta(microseconds=value // 10)
    except OverflowError:
        return None
    return when.isoformat().replace("+00:00", "Z")


def _interval_seconds(value: int) -> int | None:
    """A SAM time interval: a negative count of 100 ns; the most negative value means "forever"."""
    signed = value - (1 << 64) if value >= 1 << 63 else value
    if signed == -(1 << 63):
        return None
    if signed > 0:
        raise ValueError(f"time interval {signed} is positive")
    return -signed // 10_000_000


def parse_user_f(raw: bytes, rid: int) -> UserF:
    """An account's F value; ``rid`` is the one its key is named after (the F must say the same)."""
    if len(raw) < 0x44:
        raise ValueError(f"account F value is {len(raw)} bytes, shorter than 0x44")
    revision = struct.unpack_from("<H", raw, 0)[0]
    if revision not in _REVISIONS:
        raise ValueError(f"account F value has unknown revision {revision}")
    (last_logon,) = struct.unpack_from("<Q", raw, 0x08)
    pw_set, expires = struct.unpack_from("<QQ", raw, 0x18)
    (f_rid,) = struct.unpack_from("<I", raw, 0x30)
    (acb,) = struct.unpack_from("<H", raw, 0x38)
    failed, logins = struct.unpack_from("<HH", raw, 0x40)
    if f_rid != rid:
        raise ValueError(f"account F value names RID {f_rid}, its key RID {rid}")
    flags = ACB(acb & _ALL_ACB)
    return UserF(rid=rid, acb=acb, flags=[f.name or "" for f in ACB if f in flags],
                 disabled=ACB.DISABLED in flags, password_not_required=ACB.PASSWORD_NOT_REQUIRED in flags,
                 locked=ACB.AUTO_LOCKED in flags, last_logon=filetime(last_logon),
                 password_last_set=filetime(pw_set), account_expires=filetime(expires), failed_logins=failed,
                 logins=logins)


def parse_domain_f(raw: bytes) -> DomainF:
    """The account domain's F value: the local password and lockout policy."""
    if len(raw) < 0x58:
        raise ValueError(f"domain F value is {len(raw)} bytes, shorter than 0x58")
    revision = struct.unpack_from("<H", raw, 0)[0]
    if revision not in _REVISIONS:
        raise ValueError(f"domain F value has unknown revision {revision}")
    max_age, _min_age, _force_logoff, lock_duration, lock_window = struct.unpack_from("<QQQQQ", raw, 0x18)
    properties = struct.unpack_from("<I", raw, 0x4C)[0]
    min_len, history, threshold = struct.unpack_from("<HHH", raw, 0x50)
    # Windows caps these (length 14, or 128 with RelaxMinimumPasswordLengthLimits; history 24; threshold 999).
    if min_len > 128 or history > 1024 or threshold > 999:
        raise ValueError(f"implausible domain policy (min length {min_len}, history {history}, "
                         f"lockout threshold {threshold})")
    max_age_s = _interval_seconds(max_age)
    return DomainF(min_password_length=min_len, password_history_length=history, complexity=bool(properties & 1),
                  lockout_threshold=threshold, lockout_duration_seconds=_interval_seconds(lock_duration),
                  lockout_window_seconds=_interval_seconds(lock_window),
                   max_password_age_days=None if max_age_s is None else max_age_s // 86400)
