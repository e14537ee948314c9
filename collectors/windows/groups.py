"""Members of the local Administrators group (alias S-1-5-32-544), from the SAM hive.

``SAM\\Domains\\Builtin\\Aliases\\00000220\\C`` holds the alias's name, comment and member SIDs; the account
domain's SID (the last 24 bytes of ``SAM\\Domains\\Account\\V``, which holds no secret, unlike an account's
``V``) tells which members are this PC's own accounts, named from ``Users\\Names`` (RID in the type field).
Other members (domain users and groups, well-known SIDs) are kept as SIDs. Layouts as documented by RegRipper's
``samparse`` and Impacket; anything that does not fit raises ValueError.

Live, the SAM is closed even to administrators: when the live registry refuses it, the members come from
ADSI ``WinNT://`` (the ``admins`` part, group found by its SID), and which of them are this PC's accounts from
the account domain SID the ``localusers`` part shows (``members_source: "adsi"``).
"""

from __future__ import annotations

import struct
import time
from typing import Any, TypedDict

from agent.targets.base import Target
from agent.targets.registry import RegAnswer, RegistryReader, RegQuery
from collectors.windows.base import Answers, WindowsCollector
from collectors.windows.live import live_part
from collectors.windows.live_sam import account_domain, adsi_members, cim_accounts, closed_live, registry_refusal

ADMINISTRATORS_RID = 0x220
ALIAS_C = RegQuery(rf"HKLM\SAM\SAM\Domains\Builtin\Aliases\{ADMINISTRATORS_RID:08X}", ("C",))
ACCOUNT_V = RegQuery(r"HKLM\SAM\SAM\Domains\Account", ("V",))
NAMES = RegQuery(r"HKLM\SAM\SAM\Domains\Account\Users\Names", (), subkeys=True)
_C_HEADER = 0x34
_MAX_MEMBERS = 10_000
#: Well-known SIDs that may appear in Administrators, for the evidence.
WELL_KNOWN = {"S-1-5-4": "INTERACTIVE", "S-1-5-11": "Authenticated Users", "S-1-1-0": "Everyone",
              "S-1-5-32-545": "Users", "S-1-5-18": "SYSTEM", "S-1-5-7": "ANONYMOUS LOGON"}


class Member(TypedDict):
    sid: str
    rid: int | None  # set when the SID is in this PC's account domain
    name: str | None  # the local account's name, or a well-known name


def parse_sid(raw: bytes, offset: int = 0) -> tuple[str, int]:
    """(SID string, its length in bytes) of a binary SID at ``offset``."""
    if len(raw) < offset + 8:
        raise ValueError("SID shorter than 8 bytes")
    revision, count = raw[offset], raw[offset + 1]
    if revision != 1 or not 1 <= count <= 15:
        raise ValueError(f"not a SID (revision {revision}, {count} sub-authorities)")
    size = 8 + 4 * count
    if len(raw) < offset + size:
        raise ValueError("SID runs past the end of its value")
    authority = int.from_bytes(raw[offset + 2: offset + 8], "big")
    subs = struct.unpack_from(f"<{count}I", raw, offset + 8)
    return "S-1-" + "-".join(str(x) for x in (authority, *subs)), size


def parse_alias_c(raw: bytes) -> list[str]:
    """The member SIDs of a local group (alias) from its ``C`` value."""
    if len(raw) < _C_HEADER:
        raise ValueError(f"alias C value is {len(raw)} bytes, shorter than its header")
    rid = struct.unpack_from("<I", raw, 0)[0]
    offset, length, count = struct.unpack_from("<III", raw, 0x28)
    if rid != ADMINISTRATORS_RID:
        raise ValueError(f"alias C value names RID 0x{rid:x}, not Administrators (0x220)")
    start = _C_HEADER + offset
    if count > _MAX_MEMBERS or start + length > len(raw) or (count and length < 12):
        raise ValueError(f"alias C value lists {count} members in {length} bytes at 0x{start:x} of {len(raw)}")
    sids, pos = [], start
    for _ in range(count):
        sid, size = parse_sid(raw[: start + length], pos)
        sids.append(sid)
        pos += size
    if pos != start + length:
        raise ValueError(f"alias C value: {count} members take {pos - start} bytes, not {length}")
    return sids


def domain_sid(account_v: bytes) -> str:
    """The account domain's SID: the last 24 bytes of ``Domains\\Account\\V`` (S-1-5-21-a-b-c)."""
    if len(account_v) < 24:
        raise ValueError("account domain V value is too short to hold a SID")
    sid, _ = parse_sid(account_v[-24:])
    if not sid.startswith("S-1-5-21-") or sid.count("-") != 6:
        raise ValueError(f"account domain V value does not end with a domain SID ({sid})")
    return sid


def _error(a: RegAnswer, what: str) -> dict[str, Any] | None:
    if a.status == "error" and a.error is not None:
        return {"kind": a.error.kind, "message": str(a.error)}
    if a.status == "missing":
        return {"kind": "missing", "message": f"{a.key}: no such key ({what})"}
    return None


class LocalAdminsCollector(WindowsCollector):
    """Who is in the local Administrators group: local accounts by name and RID, others by SID."""

    id = "win_admins"
    registry_reads = (ALIAS_C, ACCOUNT_V, NAMES)
    powershell_parts = ("admins", "localusers")

    def build(self, target: Target, reader: RegistryReader, answers: Answers) -> dict[str, Any]:
        out: dict[str, Any] = {"members": None, "domain_sid": None, "error": None, "members_source": "SAM",
                               "sam_refused": None}
        alias, account, names = answers.one(ALIAS_C), answers.one(ACCOUNT_V), answers.one(NAMES)
        refused = next((a for a in (alias, account, names) if closed_live(reader, a)), None)
        if refused is not None:
            out.update(sam_refused=registry_refusal(refused), members_source="adsi")
            return self.live(target, out)
        problem = _error(alias, "the Administrators group") or _error(account, "the account domain") \
            or _error(names, "account names")
        if problem:
            out["error"] = problem
            return out
        c, v = alias.value("C"), account.value("V")
        try:
            if c is None or not isinstance(c.data, bytes):
                raise ValueError(f"{alias.key}: no binary C value")
            if v is None or not isinstance(v.data, bytes):
                raise ValueError(f"{account.key}: no binary V value")
            sids = parse_alias_c(c.data)
            dom = domain_sid(v.data)
        except ValueError as e:
            out["error"] = {"kind": "hive_corrupted", "message": str(e)}
            return out
        by_rid: dict[int, str] = {}
        for name, a in zip(names.subkeys, reader.read([RegQuery(f"{NAMES.key}\\{n}", ("(default)",))
                                                        for n in names.subkeys]), strict=True):
            val = a.value("(default)")
            if val is not None:
                by_rid[val.type] = name
        members: list[Member] = []
        for sid in sids:
            head, _, tail = sid.rpartition("-")
            if head == dom:
                members.append(Member(sid=sid, rid=int(tail), name=by_rid.get(int(tail))))
            else:
                members.append(Member(sid=sid, rid=None, name=WELL_KNOWN.get(sid)))
        out.update(members=members, domain_sid=dom)
        return out

    @staticmethod
    def live(target: Target, out: dict[str, Any]) -> dict[str, Any]:
        """The members from the ``admins`` part; local ones told by the domain SID of ``localusers``."""
        group, g_err, via = live_part(target, "admins")
        users, u_err, _ = live_part(target, "localusers")
        out["via"] = via
        for part, err in (("admins", g_err), ("localusers", u_err)):
            if err is not None:
                out["error"] = {"kind": err["kind"], "message": f"{part}: {err['message']}"}
                return out
        try:
            accounts = cim_accounts(users, int(time.time()))
            dom = account_domain(accounts)
            names = {int(a["rid"]): str(a["name"]) for a in accounts if a.get("rid") is not None}
            members = adsi_members(group, dom, names)
        except ValueError as e:
            out["error"] = {"kind": "garbage", "message": str(e)}
            return out
        out.update(members=members, domain_sid=dom)
        return out


LOCAL_ADMINS = LocalAdminsCollector()
