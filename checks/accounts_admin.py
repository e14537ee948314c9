"""MLIT-9-5-3: access-privilege management (PM-02 approved administrators, PM-04 dormant accounts)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from agent.config.policy import Policy
from checks.base import FactSet, Phrase, Status, Verdict, check, error, explain, fact_phrase, phrase
from checks.identification import passwd_or_error
from checks.privileges import _expands_to_all

DAY = 86400


def _group_or_error(accounts: dict[str, Any]) -> list[dict[str, Any]] | Verdict:
    group = accounts.get("group", {})
    if "error" in group:
        return error(phrase("file_unreadable", path="/etc/group", error=explain(group["error"])))
    if group.get("malformed_lines"):
        return error(phrase("file_malformed", path="/etc/group", lines=group["malformed_lines"]))
    groups: list[dict[str, Any]] = group.get("groups", [])
    return groups


def _members(group: dict[str, Any], users: list[dict[str, Any]]) -> set[str]:
    """Listed members plus the users whose primary group it is."""
    return set(group["members"]) | {u["name"] for u in users if u["gid"] == group["gid"]}


def _runs_as_root(runas: str | None) -> bool:
    if runas is None or runas.strip() == "":
        return True  # sudo's default runas user is root
    users = runas.split(":", 1)[0]
    return any(u.strip() in ("ALL", "root", "#0") for u in users.split(","))


class _Resolver:
    """Turns sudoers user lists (names, %groups, #uids, User_Aliases) into account names."""

    def __init__(self, users: list[dict[str, Any]], groups: list[dict[str, Any]], aliases: dict[str, list[str]]):
        self.users, self.groups, self.aliases = users, groups, aliases
        self.unresolvable: list[str] = []
        self.everyone = False

    def resolve(self, item: str, seen: frozenset[str] = frozenset()) -> set[str]:
        item = item.strip()
        if item.startswith("!"):
            return set()  # an exclusion never adds an administrator
        if item == "ALL":
            self.everyone = True
            return set()
        if item in self.aliases and item not in seen:
            return set().union(set(), *(self.resolve(i, seen | {item}) for i in self.aliases[item]))
        if item.startswith("%#") and item[2:].isdigit():
            return set().union(*(_members(g, self.users) for g in self.groups if g["gid"] == int(item[2:])))
        if item.startswith("%") and not item.startswith(("%:", "%#")):
            return set().union(*(_members(g, self.users) for g in self.groups if g["name"] == item[1:]))
        if item.startswith("#") and item[1:].isdigit():
            return {u["name"] for u in self.users if u["uid"] == int(item[1:])}
        if item.startswith(("+", "%:", "%#")):
            self.unresolvable.append(item)  # netgroups and non-Unix groups live outside this host
            return set()
        return {item}


@check("PM-02", needs=("accounts", "sudoers"))
def PM_02(facts: FactSet, policy: Policy) -> Verdict:
    accounts = facts.need("accounts")
    sudo = facts.need("sudoers")
    users = passwd_or_error(accounts)
    if isinstance(users, Verdict):
        return users
    groups = _group_or_error(accounts)
    if isinstance(groups, Verdict):
        return groups
    pol = policy["accounts"]
    approved = sorted(set(pol["approved_admins"]))
    expected = {"administrators": approved or "(approved_admins not set)", "admin_groups": pol["admin_groups"]}
    sources: dict[str, list[str]] = {}
    for g in groups:
        if g["name"] in pol["admin_groups"]:
            for name in _members(g, users):
                sources.setdefault(name, []).append(f"group {g['name']}")
    resolver = _Resolver(users, groups, sudo.get("aliases", {}).get("user", {}))
    if sudo.get("installed"):
        if sudo.get("problem"):
            if sudo.get("permission_denied"):
                return Verdict(status=Status.ERROR, message="needs_root", params={"path": "/etc/sudoers"},
                               expected=expected)
            return error(phrase("sudoers_problem", problem=fact_phrase("sudoers", sudo["problem"])),
                         expected=expected)
        cmnd = sudo.get("aliases", {}).get("cmnd", {})
        for rule in sudo.get("rules", []):
            if not (_expands_to_all(rule["command"], cmnd) and _runs_as_root(rule.get("runas"))):
                continue
            for item in rule["users"]:
                for name in resolver.resolve(item):
                    sources.setdefault(name, []).append(f"sudoers {rule['where']}")
    sources.pop("root", None)  # root is the administrator by definition; PM-01 checks UID 0
    admins = sorted(sources)
    evidence = {"administrators": {n: sorted(set(s)) for n, s in sorted(sources.items())},
                "approved": approved, "unresolvable": resolver.unresolvable}
    if resolver.everyone:
        return Verdict(status=Status.FAIL, message="fail_everyone", evidence=evidence, expected=expected)
    if resolver.unresolvable:
        return error(phrase("unresolvable", items=resolver.unresolvable), evidence=evidence, expected=expected)
    if not admins:
        return Verdict(status=Status.PASS, message="pass_root_only", evidence=evidence, expected=expected)
    if not approved:
        return Verdict(status=Status.MANUAL, message="manual", params={"admins": admins},
                       evidence=evidence, expected=expected)
    unapproved = [a for a in admins if a not in approved]
    evidence["not_admin_now"] = [a for a in approved if a not in sources]
    if unapproved:
        return Verdict(status=Status.FAIL, message="fail", params={"admins": unapproved}, evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"admins": admins},
                   evidence=evidence, expected=expected)


def _date(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%d")


def _login_sources(ll: dict[str, Any]) -> tuple[list[dict[str, Any]], Phrase | None]:
    """The usable login-record sources, or why they cannot be trusted."""
    sources = [ll["lastlog"], ll["lastlog2"], *ll["wtmp"]]
    for s in sources:
        if s.get("problem"):
            return [], phrase("records_unusable", problem=fact_phrase("lastlog", s["problem"]))
    present = [s for s in sources if s.get("present")]
    if not present:
        return [], phrase("no_login_records")
    return present, None


@check("PM-04", needs=("accounts", "lastlog", "login_defs"))
def PM_04(facts: FactSet, policy: Policy) -> Verdict:
    accounts = facts.need("accounts")
    ll = facts.need("lastlog")
    defs = facts.need("login_defs")
    users = passwd_or_error(accounts)
    if isinstance(users, Verdict):
        return users
    days = policy["accounts"]["dormant_days"]
    exempt = set(policy["accounts"]["dormant_exempt"])
    nologin = set(policy["accounts"]["nologin_shells"])
    expected = {"last_login_within_days": days, "or": "account disabled (expired, or locked without SSH keys)"}
    if defs.get("problem"):
        return error(fact_phrase("login_defs", defs["problem"]))
    settings = defs.get("settings", {})
    try:
        uid_min, uid_max = int(settings.get("UID_MIN", 1000)), int(settings.get("UID_MAX", 60000))
    except ValueError:
        return error(phrase("uid_range_not_numbers"))
    people = [u for u in users if uid_min <= u["uid"] <= uid_max and u["shell"] and u["shell"] not in nologin
              and u["name"] not in exempt]
    shadow = accounts.get("shadow", {})
    if people and "error" in shadow:
        if shadow.get("permission"):
            return Verdict(status=Status.ERROR, message="needs_root", params={"path": "/etc/shadow"},
                           expected=expected)
        return error(phrase("file_unreadable", path="/etc/shadow", error=explain(shadow["error"])))
    if people and shadow.get("malformed_lines"):
        return error(phrase("file_malformed", path="/etc/shadow", lines=shadow["malformed_lines"]))
    present, problem = _login_sources(ll)
    if problem and people:
        return error(problem, expected=expected)
    now = ll["now"]
    lastlog_like = any(s["path"] in (ll["lastlog"]["path"], ll["lastlog2"]["path"]) for s in present)
    wtmp_reach = min((s["oldest"] for s in present if s.get("oldest")), default=now)
    states, aging = shadow.get("states", {}), shadow.get("aging", {})
    report: dict[str, str] = {}
    dormant: list[Phrase] = []
    unknown: list[str] = []
    for u in people:
        name = u["name"]
        age = aging.get(name, {})
        if age.get("expire") is not None and age["expire"] * DAY <= now:
            report[name] = f"disabled (expired {_date(age['expire'] * DAY)})"
            continue
        state = states.get(name) if u["passwd_field"] == "shadow" else u["passwd_field"]
        if state == "locked":
            keys = ll["authorized_keys"].get(name)
            if keys is False:
                report[name] = "disabled (password locked, no SSH keys)"
                continue
            if keys is None:
                unknown.append(name)
                continue
        stamps = [s["records"].get(str(u["uid"]) if s["path"] == ll["lastlog"]["path"] else name)
                  for s in present]
        last = max((t for t in stamps if t), default=None)
        if last is not None:
            idle = int((now - last) // DAY)
            report[name] = f"last login {_date(last)} ({idle} days ago)"
            if idle > days:
                dormant.append(phrase("dormant_idle", name=name, days=idle))
            continue
        if not lastlog_like and wtmp_reach > now - days * DAY:
            unknown.append(name)  # wtmp alone does not reach back far enough to say "never"
            continue
        changed = age.get("last_change")
        if changed:
            idle = int((now - changed * DAY) // DAY)
            report[name] = f"never logged in; password set {_date(changed * DAY)} ({idle} days ago)"
            if idle > days:
                dormant.append(phrase("dormant_never", name=name))
        else:
            report[name] = "never logged in; no creation date"
            dormant.append(phrase("dormant_never", name=name))
    evidence = {"accounts": report, "uid_range": [uid_min, uid_max], "sources": [s["path"] for s in present],
                "exempt": sorted(exempt), "undetermined": unknown}
    if dormant:
        return Verdict(status=Status.FAIL, message="fail", params={"accounts": dormant, "days": days},
                       evidence=evidence, expected=expected)
    if unknown:
        return error(phrase("undetermined", accounts=unknown), evidence=evidence, expected=expected)
    enabled = [n for n, r in report.items() if not r.startswith("disabled")]
    if not enabled:
        return Verdict(status=Status.PASS, message="pass_none", evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"count": len(enabled), "days": days},
                   evidence=evidence, expected=expected)
