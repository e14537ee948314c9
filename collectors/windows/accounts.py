"""Local accounts and the local password/lockout policy, from the SAM hive (offline) — never a hash.

Names come from ``Users\\Names\\<name>``, whose default value carries the account's RID in its *type* field;
each ``Users\\<RID>\\F`` holds the account control bits (disabled, password not required) and logon times;
``Domains\\Account\\F`` holds minimum password length, complexity and the lockout threshold and duration.
``V`` (where the password hashes are) is never read.

Live, the SAM is closed even to administrators: when the live registry refuses it, the policy comes from
``secedit /export`` (``domain_source: "secedit"``) and the accounts from CIM ``Win32_UserAccount`` with ADSI
for their last logons (``accounts_source: "cim"``, ``last_logon_source: "adsi"``), parts of the PowerShell
batch (``collectors/windows/live_sam.py``); the facts keep the same shape, and say which source answered.
"""

from __future__ import annotations

import time
from typing import Any

from agent.targets.base import Target
from agent.targets.registry import RegAnswer, RegistryReader, RegQuery
from collectors.windows.base import Answers, WindowsCollector
from collectors.windows.live import live_part
from collectors.windows.live_sam import GUEST_RID, cim_accounts, closed_live, part_file, registry_refusal
from collectors.windows.sam import parse_domain_f, parse_user_f
from collectors.windows.secedit import secedit_file

ACCOUNT = r"HKLM\SAM\SAM\Domains\Account"
DOMAIN_F = RegQuery(ACCOUNT, ("F",))
NAMES = RegQuery(rf"{ACCOUNT}\Users\Names", (), subkeys=True)
USERS = RegQuery(rf"{ACCOUNT}\Users", (), subkeys=True)
LSA = RegQuery(r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa", ("LimitBlankPasswordUse",))


def _error(a: RegAnswer) -> dict[str, Any] | None:
    if a.status == "error" and a.error is not None:
        return {"kind": a.error.kind, "message": str(a.error)}
    if a.status == "missing":
        return {"kind": "missing", "message": f"{a.key}: no such key"}
    return None


def _part_error(part: str, err: dict[str, Any]) -> dict[str, Any]:
    return {"kind": err["kind"], "message": f"{part}: {err['message']}"}


def live_domain(target: Target) -> dict[str, Any]:
    """The password and lockout policy from the ``secedit`` part (the SAM's domain F, live)."""
    out: dict[str, Any] = {"domain": None, "domain_error": None, "domain_source": "secedit"}
    value, err, via = live_part(target, "secedit")
    out["domain_via"] = via
    if err is not None:
        out["domain_error"] = _part_error("secedit", err)
        return out
    try:
        out["domain"] = dict(secedit_file(part_file(value, "secedit")))
    except ValueError as e:
        out["domain_error"] = {"kind": "garbage", "message": f"secedit export: {e}"}
    return out


def live_accounts(target: Target, collected_at: int) -> dict[str, Any]:
    """Every local account from the ``localusers`` part (CIM for the flags, ADSI for the last logon)."""
    out: dict[str, Any] = {"accounts": [], "accounts_error": None, "accounts_source": "cim",
                           "last_logon_source": "adsi"}
    value, err, via = live_part(target, "localusers")
    out["accounts_via"] = via
    if err is not None:
        out["accounts_error"] = _part_error("localusers", err)
        return out
    try:
        out["accounts"] = cim_accounts(value, collected_at)
    except ValueError as e:
        out["accounts_error"] = {"kind": "garbage", "message": f"localusers: {e}"}
    return out


class AccountsCollector(WindowsCollector):
    id = "win_accounts"
    registry_reads = (DOMAIN_F, NAMES, USERS, LSA)
    powershell_parts = ("secedit", "localusers")

    def build(self, target: Target, reader: RegistryReader, answers: Answers) -> dict[str, Any]:
        facts: dict[str, Any] = {"domain": None, "domain_error": None, "accounts": [], "accounts_error": None,
                                 "lsa": answers.one(LSA).fact(), "collected_at": int(time.time()),
                                 "domain_source": "SAM", "accounts_source": "SAM", "last_logon_source": "SAM",
                                 "sam_refused": None}
        dom = answers.one(DOMAIN_F)
        f = dom.value("F")
        if closed_live(reader, dom):
            facts["sam_refused"] = registry_refusal(dom)
            facts.update(live_domain(target))
        elif _error(dom) or f is None or not isinstance(f.data, bytes):
            facts["domain_error"] = _error(dom) or {"kind": "missing", "message": f"{dom.key}: no F value"}
        else:
            try:
                facts["domain"] = dict(parse_domain_f(f.data))
            except ValueError as e:
                facts["domain_error"] = {"kind": "hive_corrupted", "message": f"{dom.key}\\F: {e}"}
        names, users = answers.one(NAMES), answers.one(USERS)
        refused = next((a for a in (names, users) if closed_live(reader, a)), None)
        if refused is not None:
            facts["sam_refused"] = registry_refusal(refused)
            facts.update(live_accounts(target, facts["collected_at"]))
            return facts
        problem = _error(names) or _error(users)
        if problem:
            facts["accounts_error"] = problem
            return facts
        rid_keys = [k for k in users.subkeys if k.casefold() != "names"]
        second = reader.read([RegQuery(f"{NAMES.key}\\{n}", ("(default)",)) for n in names.subkeys]
                             + [RegQuery(f"{USERS.key}\\{k}", ("F",)) for k in rid_keys])
        by_rid: dict[int, str] = {}
        for name, a in zip(names.subkeys, second[: len(names.subkeys)], strict=True):
            v = a.value("(default)")
            if v is not None:
                by_rid[v.type] = name
        for key, a in zip(rid_keys, second[len(names.subkeys):], strict=True):
            entry: dict[str, Any] = {"rid_key": key, "name": None, "error": None}
            try:
                rid = int(key, 16)
            except ValueError:
                entry["error"] = {"kind": "hive_corrupted", "message": f"{a.key}: not a RID"}
                facts["accounts"].append(entry)
                continue
            entry["name"] = by_rid.get(rid)
            fv = a.value("F")
            if _error(a) or fv is None or not isinstance(fv.data, bytes):
                entry["error"] = _error(a) or {"kind": "missing", "message": f"{a.key}: no F value"}
            else:
                try:
                    entry.update(parse_user_f(fv.data, rid))
                except ValueError as e:
                    entry["error"] = {"kind": "hive_corrupted", "message": f"{a.key}\\F: {e}"}
            entry["builtin_guest"] = rid == GUEST_RID
            facts["accounts"].append(entry)
        return facts


ACCOUNTS = AccountsCollector()
