"""MLIT-9-5-1: identification and authentication (IA-02 password quality, IA-03 lockout, IA-05 shared IDs).

IA-02 and IA-03 judge the PAM stacks as PAM runs them: a module only counts
when it enforces (not ``optional``, not a ``-type`` line whose module is not
installed), and its settings are its arguments laid over its configuration
file and its compiled-in defaults.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from agent.config.policy import Policy
from checks.base import FactSet, Phrase, Status, Verdict, check, error, explain, fact_phrase, phrase
from checks.identification import passwd_or_error

QUALITY_MODULES = {"pam_pwquality.so", "pam_cracklib.so", "pam_passwdqc.so", "pam_unix.so"}
#: Password changes that a directory service judges, not this host.
REMOTE_PASSWORD_MODULES = {"pam_sss.so", "pam_ldap.so", "pam_krb5.so", "pam_winbind.so"}
#: Login services whose auth stack must lock out (those that exist on the target).
LOGIN_SERVICES = ("login", "sshd", "gdm-password", "lightdm", "sddm", "xrdp-sesman")
CLASSES = ("dcredit", "ucredit", "lcredit", "ocredit")
#: cracklib's FascistCheck and libpwquality refuse anything shorter than 6, whatever minlen says.
BASE_MIN_LENGTH = 6


def module_name(entry: dict[str, Any]) -> str:
    return str(entry["module"]).rsplit("/", 1)[-1]


def arg_map(args: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for a in args:
        key, eq, value = a.partition("=")
        out[key] = value if eq else ""
    return out


class Unusable(ValueError):
    """A module setting mamoru cannot use; carries the reason, worded per language."""

    def __init__(self, reason: Phrase) -> None:
        super().__init__(reason.key)
        self.reason = reason


def _int(value: Any, where: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as e:
        raise Unusable(phrase("pam.not_a_number", where=where, value=repr(value))) from e


def _credited(minlen: int, credits: list[int]) -> int:
    """Shortest accepted length: each positive credit lets one character of its class count twice."""
    return max(BASE_MIN_LENGTH, minlen - sum(max(c, 0) for c in credits))


def enforcing(entries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Entries that take part in the decision, and the missing non-optional modules (PAM fails on those)."""
    kept, missing = [], []
    for e in entries:
        if e.get("present") is False:
            if not e.get("optional"):
                missing.append(f"{e['where']}: {e['module']}")
            continue
        if e["control"] == "optional":
            continue  # its failure is ignored whenever another module decides
        kept.append(e)
    return kept, missing


def quality_of(entry: dict[str, Any], pwquality_conf: dict[str, Any]) -> dict[str, Any] | None:
    """Minimum length and required character classes one password module enforces, or None."""
    name = module_name(entry)
    args = arg_map(entry["args"])
    where = entry["where"]
    if name == "pam_pwquality.so":
        s: dict[str, Any] = {"minlen": 8, "minclass": 0, "enforcing": 1, **dict.fromkeys(CLASSES, 0)}
        s.update(pwquality_conf)
        s.update({k: v for k, v in args.items() if k in s})
        if _int(s["enforcing"], where) == 0:
            return {"module": name, "where": where, "enforcing": False}
        credits = [_int(s[c], where) for c in CLASSES]
        minlen = max(BASE_MIN_LENGTH, _int(s["minlen"], where))
        return {"module": name, "where": where, "min_length": _credited(minlen, credits),
                "classes": max(_int(s["minclass"], where), sum(1 for c in credits if c < 0)),
                "minlen": _int(s["minlen"], where), "credits": dict(zip(CLASSES, credits, strict=True))}
    if name == "pam_cracklib.so":  # does not read pwquality.conf; credits default to 1
        s = {"minlen": 9, "minclass": 0, **dict.fromkeys(CLASSES, 1)}
        s.update({k: v for k, v in args.items() if k in s})
        credits = [_int(s[c], where) for c in CLASSES]
        minlen = _int(s["minlen"], where)
        return {"module": name, "where": where, "min_length": _credited(minlen, credits),
                "classes": max(_int(s["minclass"], where), sum(1 for c in credits if c < 0)),
                "minlen": minlen, "credits": dict(zip(CLASSES, credits, strict=True))}
    if name == "pam_passwdqc.so":
        if args.get("enforce", "everyone") == "none":
            return {"module": name, "where": where, "enforcing": False}
        if "config" in args:
            raise Unusable(phrase("pam.passwdqc_config", where=where))
        values = args.get("min", "disabled,24,11,8,7").split(",")
        if len(values) != 5:
            raise Unusable(phrase("pam.passwdqc_min", where=where))
        # N0: one class, N1: two, N2: passphrase, N3: three classes, N4: four.
        enabled = [(i, _int(v, where)) for i, v in enumerate(values) if v != "disabled"]
        if not enabled:
            raise Unusable(phrase("pam.passwdqc_disabled", where=where))
        classes = {0: 1, 1: 2, 2: 1, 3: 3, 4: 4}[min(i for i, _ in enabled)]
        return {"module": name, "where": where, "min_length": min(v for _, v in enabled), "classes": classes}
    if name == "pam_unix.so":
        return {"module": name, "where": where, "min_length": _int(args.get("minlen", "6"), where), "classes": 0}
    return None


@check("IA-02", needs=("pam", "login_defs"))
def IA_02(facts: FactSet, policy: Policy) -> Verdict:
    pam = facts.need("pam")
    defs = facts.need("login_defs")
    want_len, want_classes = policy["password"]["min_length"], policy["password"]["min_classes"]
    expected = {"min_length": f">= {want_len}", "min_classes": f">= {want_classes}"}
    pass_min_len = defs.get("settings", {}).get("PASS_MIN_LEN")
    if pam.get("pam_d") is None:
        # Without PAM, passwd(1) itself applies login.defs PASS_MIN_LEN.
        if defs.get("problem"):
            return error(fact_phrase("login_defs", defs["problem"]))
        if pass_min_len is None or not pass_min_len.isdigit():
            return error(phrase("no_pam_no_login_defs"), expected=expected)
        evidence: dict[str, Any] = {"source": "/etc/login.defs PASS_MIN_LEN", "min_length": int(pass_min_len)}
        return _verdict_quality(int(pass_min_len), 0, want_len, want_classes, evidence, expected)
    services = pam.get("services", {})
    service = "passwd" if "passwd" in services else "other"
    record = services.get(service)
    if record is None:
        return error(phrase("no_passwd_stack"), expected=expected)
    if record.get("problem"):
        return error(fact_phrase("pam", record["problem"]), expected=expected)
    pwq = pam.get("pwquality", {})
    entries, missing = enforcing(record["stack"]["password"])
    if missing:
        return error(phrase("pam.modules_missing", modules=missing), expected=expected)
    uses_pwq = any(module_name(e) == "pam_pwquality.so" for e in entries)
    if uses_pwq and pwq.get("problem"):
        return error(phrase("pam.conf_problem", file="pwquality.conf", problem=fact_phrase("pam", pwq["problem"])),
                     expected=expected)
    try:
        modules = [q for e in entries if (q := quality_of(e, pwq.get("settings", {}))) is not None]
    except Unusable as e:
        return error(phrase("pam.unusable", reason=e.reason), expected=expected)
    active = [m for m in modules if m.get("enforcing", True)]
    evidence = {"service": service, "file": record["file"], "modules": modules,
                "pwquality_files": pwq.get("files", []),
                "login_defs_PASS_MIN_LEN": pass_min_len, "note": "PASS_MIN_LEN is not used when PAM is"}
    if not active:
        remote = sorted({module_name(e) for e in entries} & REMOTE_PASSWORD_MODULES)
        if remote:
            via = ", ".join(remote)
            return error(phrase("remote_passwords", via=via), evidence=evidence, expected=expected)
        return Verdict(status=Status.FAIL, message="fail_none", params={"service": service},
                       evidence=evidence, expected=expected)
    min_len = max(m["min_length"] for m in active)
    classes = max(m["classes"] for m in active)
    evidence.update(min_length=min_len, classes=classes)
    return _verdict_quality(min_len, classes, want_len, want_classes, evidence, expected)


def _verdict_quality(min_len: int, classes: int, want_len: int, want_classes: int, evidence: dict[str, Any],
                     expected: dict[str, Any]) -> Verdict:
    params = {"min_length": min_len, "classes": classes, "want_length": want_len, "want_classes": want_classes}
    if min_len < want_len or classes < want_classes:
        return Verdict(status=Status.FAIL, message="fail", params=params, evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="pass", params=params, evidence=evidence, expected=expected)


def lockout_of(entries: list[dict[str, Any]],
               faillock_conf: dict[str, Any]) -> tuple[list[dict[str, Any]], Phrase | None]:
    """Lockout mechanisms in one auth stack, and why the stack does not lock out (None if it does)."""
    found: list[dict[str, Any]] = []
    fl = [e for e in entries if module_name(e) == "pam_faillock.so"]
    if fl:
        modes = {m for e in fl for m in ("preauth", "authfail", "authsucc") if m in e["args"]}
        s: dict[str, Any] = {"deny": 3, "unlock_time": 600}
        s.update({k: v for k, v in faillock_conf.items() if k in s})
        for e in fl:
            args = arg_map(e["args"])
            if "conf" in args and args["conf"] != "/etc/security/faillock.conf":
                raise Unusable(phrase("pam.faillock_conf", where=e["where"], file=args["conf"]))
            for k in ("deny", "unlock_time"):
                if k in args:
                    s[k] = 0 if args[k] == "never" else _int(args[k], e["where"])
        found.append({"module": "pam_faillock.so", "where": [e["where"] for e in fl], "deny": int(s["deny"]),
                      "unlock_time": int(s["unlock_time"]),
                      "complete": {"preauth", "authfail"} <= modes})
    for name in ("pam_tally2.so", "pam_tally.so"):
        for e in (e for e in entries if module_name(e) == name):
            args = arg_map(e["args"])
            deny = _int(args["deny"], e["where"]) if "deny" in args else 0
            found.append({"module": name, "where": [e["where"]], "deny": deny,
                          "unlock_time": _int(args.get("unlock_time", "0"), e["where"]), "complete": True})
    return found, None if found else phrase("no_lockout_module")


@check("IA-03", needs=("pam", "sshd"))
def IA_03(facts: FactSet, policy: Policy) -> Verdict:
    pam = facts.need("pam")
    max_tries = policy["lockout"]["max_tries"]
    min_unlock = policy["lockout"]["min_unlock_seconds"]
    expected = {"deny": f"1..{max_tries}", "unlock_time": f"0 (admin unlock) or >= {min_unlock} s"}
    if pam.get("pam_d") is None:
        return error(phrase("no_pam"), expected=expected)
    services = {s: r for s, r in pam.get("services", {}).items() if s in LOGIN_SERVICES}
    if not services:
        return error(phrase("no_login_service"), expected=expected)
    fl_conf = pam.get("faillock", {})
    evidence: dict[str, Any] = {}
    weak: list[Phrase] = []
    for service, record in services.items():
        if record.get("problem"):
            return error(fact_phrase("pam", record["problem"]), expected=expected)
        entries, missing = enforcing(record["stack"]["auth"])
        if missing:
            return error(phrase("pam.modules_missing", modules=missing), expected=expected)
        if any(module_name(e) == "pam_faillock.so" for e in entries) and fl_conf.get("problem"):
            problem = fact_phrase("pam", fl_conf["problem"])
            return error(phrase("pam.conf_problem", file="faillock.conf", problem=problem), expected=expected)
        try:
            mechanisms, why = lockout_of(entries, fl_conf.get("settings", {}))
        except Unusable as e:
            return error(phrase("pam.unusable", reason=e.reason), expected=expected)
        good = [m for m in mechanisms if m["complete"] and 0 < m["deny"] <= max_tries
                and (m["unlock_time"] == 0 or m["unlock_time"] >= min_unlock)]
        evidence[service] = {"file": record["file"], "mechanisms": mechanisms}
        if not good:
            if why is None:
                m = mechanisms[0]
                why = (phrase("faillock_incomplete") if not m["complete"]
                       else phrase("lockout_settings", module=m["module"], deny=m["deny"],
                                   unlock_time=m["unlock_time"]))
            weak.append(phrase("service_why", service=service, why=why))
    bypass = _ssh_bypasses_pam(facts)
    if bypass:
        weak.append(phrase("ssh_bypass", config=bypass))
        evidence["sshd"] = {**evidence.get("sshd", {}),
                            "bypass": f"sshd ({bypass}): UsePAM no with password logins, so PAM lockout does not apply"}
    if weak:
        return Verdict(status=Status.FAIL, message="fail", params={"services": weak}, evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"services": sorted(services)}, evidence=evidence,
                   expected=expected)


def _ssh_bypasses_pam(facts: FactSet) -> str | None:
    """The sshd config with UsePAM no and password logins, if any: sshd then checks passwords itself, and
    PAM's lockout never sees SSH password guesses."""
    sshd = facts.need("sshd")
    configs = [i for i in sshd.get("instances", []) if i.get("settings")] or (
        [{"config": "/etc/ssh/sshd_config", "settings": sshd.get("settings", {})}] if sshd.get("installed") else [])
    for inst in configs:
        s = inst["settings"]
        usepam = (s.get("usepam") or ["no"])[0].lower()
        pw = (s.get("passwordauthentication") or ["yes"])[0].lower()
        kbd = (s.get("kbdinteractiveauthentication") or ["yes"])[0].lower()
        if s and usepam == "no" and (pw == "yes" or kbd == "yes"):
            return str(inst["config"])
    return None


@check("IA-05", needs=("accounts",))
def IA_05(facts: FactSet, policy: Policy) -> Verdict:
    accounts = facts.need("accounts")
    users = passwd_or_error(accounts)
    if isinstance(users, Verdict):
        return users
    group = accounts.get("group", {})
    if "error" in group:
        return error(phrase("file_unreadable", path="/etc/group", error=explain(group["error"])))
    if group.get("malformed_lines"):
        return error(phrase("file_malformed", path="/etc/group", lines=group["malformed_lines"]))
    groups = group.get("groups", [])
    uid_owners: dict[int, list[str]] = {}
    for u in users:
        uid_owners.setdefault(u["uid"], []).append(u["name"])
    gid_owners: dict[int, list[str]] = {}
    for g in groups:
        gid_owners.setdefault(g["gid"], []).append(g["name"])
    found: dict[str, Any] = {
        "duplicate_uids": {str(k): v for k, v in uid_owners.items() if len(v) > 1},
        "duplicate_user_names": sorted(n for n, c in Counter(u["name"] for u in users).items() if c > 1),
        "duplicate_gids": {str(k): v for k, v in gid_owners.items() if len(v) > 1},
        "duplicate_group_names": sorted(n for n, c in Counter(g["name"] for g in groups).items() if c > 1),
    }
    evidence = {**found, "users": len(users), "groups": len(groups)}
    expected = dict.fromkeys(found, "none")
    problems = [phrase("same_uid", uid=uid, names=names) for uid, names in found["duplicate_uids"].items()]
    problems += [phrase("user_twice", name=n) for n in found["duplicate_user_names"]]
    problems += [phrase("same_gid", gid=gid, names=names) for gid, names in found["duplicate_gids"].items()]
    problems += [phrase("group_twice", name=n) for n in found["duplicate_group_names"]]
    if problems:
        return Verdict(status=Status.FAIL, message="fail", params={"problems": problems}, evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"users": len(users), "groups": len(groups)},
                   evidence=evidence, expected=expected)
