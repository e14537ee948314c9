"""MLIT-9-5-3: access-privilege management (PM-01, PM-03)."""

from __future__ import annotations

from typing import Any

from agent.config.policy import Policy
from checks.base import FactSet, Status, Verdict, check, error, fact_phrase, phrase
from checks.identification import passwd_or_error


@check("PM-01", needs=("accounts",))
def PM_01(facts: FactSet, policy: Policy) -> Verdict:
    users = passwd_or_error(facts.need("accounts"))
    if isinstance(users, Verdict):
        return users
    uid0 = [u["name"] for u in users if u["uid"] == 0]
    expected = {"uid0_accounts": ["root"]}
    evidence = {"uid0_accounts": uid0}
    others = [n for n in uid0 if n != "root"]
    if others:
        return Verdict(status=Status.FAIL, message="fail", params={"accounts": others}, evidence=evidence,
                       expected=expected)
    if "root" not in uid0:
        return error(phrase("no_root"), evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="pass", evidence=evidence, expected=expected)


def _expands_to_all(command: str, aliases: dict[str, list[str]], seen: frozenset[str] = frozenset()) -> bool:
    cmd = command.strip()
    if cmd == "ALL":
        return True
    if cmd in aliases and cmd not in seen:
        return any(_expands_to_all(c, aliases, seen | {cmd}) for c in aliases[cmd] if not c.startswith("!"))
    return False


def _no_authenticate(defaults: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Defaults lines that switch password prompts off (``!authenticate``)."""
    return [d for d in defaults if any(s.replace(" ", "") == "!authenticate" for s in d["settings"])]


@check("PM-03", needs=("sudoers",))
def PM_03(facts: FactSet, policy: Policy) -> Verdict:
    sudo = facts.need("sudoers")
    if not sudo.get("installed"):
        return Verdict(status=Status.NOT_APPLICABLE, message="no_sudo")
    if sudo.get("problem"):
        if sudo.get("permission_denied"):
            return Verdict(status=Status.ERROR, message="needs_root", params={"path": "/etc/sudoers"})
        return error(phrase("sudoers_problem", problem=fact_phrase("sudoers", sudo["problem"])),
                     evidence={"files": sudo.get("files", [])})
    cmnd_aliases = sudo.get("aliases", {}).get("cmnd", {})
    no_auth = _no_authenticate(sudo.get("defaults", []))
    global_no_auth = any(d["scope"] == "" for d in no_auth)
    scoped_users = {u for d in no_auth if d["scope"].startswith(":") for u in d["scope"][1:].split(",")}
    offending = []
    for rule in sudo.get("rules", []):
        if not _expands_to_all(rule["command"], cmnd_aliases):
            continue
        passwordless = rule["nopasswd"] or global_no_auth or bool(set(rule["users"]) & scoped_users)
        if passwordless:
            offending.append(f"{rule['where']}: {','.join(rule['users'])} -> {rule['command']}")
    evidence = {"files": sudo.get("files", []), "passwordless_all": offending,
                "no_authenticate_defaults": [d["where"] for d in no_auth]}
    expected = {"passwordless_all_rules": 0}
    if offending:
        return Verdict(status=Status.FAIL, message="fail", params={"rules": offending}, evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"files": len(sudo.get("files", []))},
                   evidence=evidence, expected=expected)
