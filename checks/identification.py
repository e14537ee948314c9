"""MLIT-9-5-1: identification and authentication (IA-01, IA-04)."""

from __future__ import annotations

from typing import Any

from agent.config.policy import Policy
from checks.base import FactSet, Phrase, Status, Text, Verdict, check, error, explain, fact_phrase, phrase


def passwd_or_error(accounts: dict[str, Any]) -> list[dict[str, Any]] | Verdict:
    """The user list, or the error verdict explaining why it cannot be trusted."""
    passwd = accounts.get("passwd", {})
    if "error" in passwd:
        return error(phrase("file_unreadable", path="/etc/passwd", error=explain(passwd["error"])))
    if passwd.get("malformed_lines"):
        lines = passwd["malformed_lines"]
        return error(phrase("file_malformed", path="/etc/passwd", lines=lines), evidence={"malformed_lines": lines})
    users: list[dict[str, Any]] = passwd["users"]
    return users


@check("IA-01", needs=("accounts",))
def IA_01(facts: FactSet, policy: Policy) -> Verdict:
    accounts = facts.need("accounts")
    users = passwd_or_error(accounts)
    if isinstance(users, Verdict):
        return users
    nologin = set(policy["accounts"]["nologin_shells"])
    login_capable = [u for u in users if u["shell"] and u["shell"] not in nologin]
    expected = {"login_capable_accounts": "password set or locked", "nologin_shells": sorted(nologin)}
    shadow = accounts.get("shadow", {})
    needs_shadow = any(u["passwd_field"] == "shadow" for u in login_capable)
    if needs_shadow and "error" in shadow:
        if shadow.get("permission"):
            return Verdict(status=Status.ERROR, message="needs_root", params={"path": "/etc/shadow"},
                           expected=expected)
        return error(phrase("file_unreadable", path="/etc/shadow", error=explain(shadow["error"])),
                     expected=expected)
    if needs_shadow and shadow.get("malformed_lines"):
        return error(phrase("file_malformed", path="/etc/shadow", lines=shadow["malformed_lines"]), expected=expected)
    states = shadow.get("states", {})
    problems = []
    for u in login_capable:
        if u["passwd_field"] == "empty":
            problems.append(f"{u['name']}: empty password field in /etc/passwd")
        elif u["passwd_field"] == "shadow":
            state = states.get(u["name"])
            if state is None:
                problems.append(f"{u['name']}: no entry in /etc/shadow")
            elif state == "empty":
                problems.append(f"{u['name']}: empty password field")
    evidence = {"login_capable": [f"{u['name']} ({u['shell']})" for u in login_capable], "problems": problems}
    if problems:
        return Verdict(status=Status.FAIL, message="fail", params={"accounts": [p.split(":")[0] for p in problems]},
                       evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"count": len(login_capable)}, evidence=evidence,
                   expected=expected)


def sshd_settings(facts: FactSet) -> dict[str, list[str]] | Verdict:
    sshd = facts.need("sshd")
    if not sshd.get("installed"):
        return Verdict(status=Status.NOT_APPLICABLE, message="no_sshd")
    if sshd.get("problem"):
        return error(phrase("sshd_problem", error=fact_phrase("sshd", sshd["problem"])),
                     evidence={"files": sshd.get("files", [])})
    settings: dict[str, list[str]] = sshd["settings"]
    return settings


def sshd_configs(facts: FactSet) -> list[tuple[str, dict[str, list[str]]]] | Verdict:
    """(label, settings) of every running listener, each by its own config; else of the installed config.

    A running sshd enforces the file it was started with (``-f``), which need not be
    /etc/ssh/sshd_config; when none runs, the installed config is what will start.
    """
    sshd = facts.need("sshd")
    instances = sshd.get("instances") or []
    if not instances:
        settings = sshd_settings(facts)
        if isinstance(settings, Verdict):
            return settings
        return [("/etc/ssh/sshd_config", settings)]
    out = []
    for inst in instances:
        label = f"{inst['config']} (pid {', '.join(map(str, inst['pids']))})"
        if inst.get("problem"):
            return error(phrase("sshd_instance_problem", label=label, error=fact_phrase("sshd", inst["problem"])),
                         evidence={"files": inst.get("files", [])})
        out.append((label, inst["settings"]))
    return out


def first(settings: dict[str, list[str]], key: str) -> str | None:
    values = settings.get(key)
    return values[0] if values else None


@check("IA-04", needs=("sshd",))
def IA_04(facts: FactSet, policy: Policy) -> Verdict:
    configs = sshd_configs(facts)
    if isinstance(configs, Verdict):
        return configs
    verdicts = [(label, _ia04_one(settings, policy, facts)) for label, settings in configs]
    return merge_instances(verdicts)


def merge_instances(verdicts: list[tuple[str, Verdict]]) -> Verdict:
    """One verdict for several sshd listeners: the worst one decides; the evidence keeps each."""
    if len(verdicts) == 1:
        label, v = verdicts[0]
        evidence = {**v.evidence, "config": label} if isinstance(v.evidence, dict) else v.evidence
        return Verdict(status=v.status, message=v.message, params=v.params, evidence=evidence, expected=v.expected)
    order = {Status.ERROR: 0, Status.FAIL: 1, Status.PASS: 2}
    label, worst = min(verdicts, key=lambda lv: order.get(lv[1].status, 3))
    params = dict(worst.params)
    for key, value in params.items():
        if isinstance(value, list):
            params[key] = [phrase("labelled", item=x, label=label) if isinstance(x, Phrase | Text)
                           else f"{x} ({label})" for x in value]
    return Verdict(status=worst.status, message=worst.message, params=params,
                   evidence={"instances": {lb: v.evidence for lb, v in verdicts}}, expected=worst.expected)


def _ia04_one(settings: dict[str, list[str]], policy: Policy, facts: FactSet) -> Verdict:
    pol = policy["sshd"]
    allowed_root = {"prohibit-password" if v == "without-password" else v for v in pol["permit_root_login"]}
    expected = {"permitrootlogin": sorted(allowed_root), "permitemptypasswords": "no",
                "maxauthtries": f"<= {pol['max_auth_tries']}"}
    root = first(settings, "permitrootlogin")
    empty = first(settings, "permitemptypasswords")
    tries = first(settings, "maxauthtries")
    if root is None or empty is None or tries is None or not tries.isdigit():
        return error("sshd did not report PermitRootLogin, PermitEmptyPasswords and MaxAuthTries",
                     "sshd の PermitRootLogin / PermitEmptyPasswords / MaxAuthTries を取得できません")
    root_n = "prohibit-password" if root.lower() == "without-password" else root.lower()
    evidence = {"permitrootlogin": root_n, "permitemptypasswords": empty.lower(), "maxauthtries": int(tries)}
    bad = []
    if root_n not in allowed_root:
        bad.append(f"PermitRootLogin {root_n}")
    if empty.lower() != "no":
        bad.append(f"PermitEmptyPasswords {empty.lower()}")
    if int(tries) > pol["max_auth_tries"]:
        bad.append(f"MaxAuthTries {tries}")
    if bad:
        return Verdict(status=Status.FAIL, message="fail", params={"settings": bad}, evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.PASS, message="pass", evidence=evidence, expected=expected)
