"""Windows judges, and the checks that judge Linux and Windows with one policy.

Each registered check here is the Linux check it extends (same metadata file, same policy keys) with a
Windows judge beside it: the judge that runs is chosen by which facts the target produced — a Windows target
runs the ``win_*`` collectors, a Linux one never does — so a bundle judged later picks the same judge.

Group Policy (``SOFTWARE\\Policies``) overrides local settings; when the policy cannot be read (no SOFTWARE
hive in the image) a judge cannot know what is in force, and says ``error`` rather than judging the local
setting alone. Documented Windows defaults are used only where Windows itself writes no value (the firewall's
default inbound action), and the evidence says so.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from agent.config.policy import Policy
from checks import access_control, authentication, identification, logging_more, physical, transfer
from checks import logging as log_checks
from checks.base import Check, FactSet, Judge, Phrase, Status, Text, Verdict, error, explain, phrase

DISABLED = 4  # service Start value


def with_windows(linux: Check, collector: str, judge: Judge) -> Check:
    """``linux`` plus a Windows judge that runs when the target produced ``collector``'s facts."""

    def dispatch(facts: FactSet, policy: Policy) -> Verdict:
        if facts.has(collector):
            return judge(facts, policy)
        return linux.judge(facts, policy)

    dispatch.__doc__ = f"{linux.id}: Linux judge, or the Windows judge when {collector!r} ran."
    return Check(meta=linux.meta, needs=(*linux.needs, collector), judge=dispatch)


# -- reading registry answers in facts -------------------------------------------------------------------


def value(answer: Mapping[str, Any] | None, name: str) -> Any:
    """The value ``name`` of a registry answer in the facts (case-insensitive), or None."""
    if not answer or answer.get("status") != "ok":
        return None
    for k, v in answer.get("values", {}).items():
        if k.lower() == name.lower():
            return v.get("value")
    return None


def problem(answer: Mapping[str, Any] | None) -> str | None:
    """Why an answer could not be read (None when it was read, or the key does not exist)."""
    if answer is None:
        return "not read"
    if answer.get("status") == "error":
        err = answer.get("error") or {}
        return f"{answer.get('key')}: {err.get('message', 'unreadable')}"
    return None


#: The kinds of error a registry backend, a Windows collector or the PowerShell batch records, worded in
#: ``_facts.yaml`` (``win.kind.<kind>``).
ERROR_KINDS = ("hive_missing", "hive_unreadable", "hive_corrupted", "unavailable", "missing", "garbage", "timeout",
               "offline", "error", "file")
#: "HKLM\\...: what" or "/path: what": the key or file an error message is about, and the rest.
_WHERE = re.compile(r"^((?:HK[A-Z_]*\\|/)[^:]*): (.+)$", re.S)


def why(message: str, kind: str | None) -> Text | Phrase:
    """What an English error means, for the Japanese text: its wording in ``_errors.yaml`` when known, else
    its kind in words (the English message itself stays in the English text and the evidence)."""
    text = explain(message)
    if text.ja != text.en:
        return text
    return phrase(f"win.kind.{kind if kind in ERROR_KINDS else 'error'}")


def error_phrase(err: Mapping[str, Any] | None, where: str | None = None, *, kind: str | None = None) -> Phrase:
    """An error recorded as ``{kind, message}`` (a collector's, a registry answer's, a batch part's), worded per
    language: English as recorded (``where: message``), Japanese as where it happened and what it means."""
    err = err or {}
    message = str(err.get("message") or err.get("error") or "unreadable")
    kind = kind or str(err.get("kind") or "error")
    detail = f"{where}: {message}" if where else message
    if where is None and (m := _WHERE.match(message)):
        where, message = m.group(1), m.group(2)
    return phrase("win.error_at" if where else "win.error", where=where or "", why=why(message, kind),
                  detail=detail)


def unreadable(answer: Mapping[str, Any] | None) -> Phrase | None:
    """``problem`` worded per language (None when the answer was read, or the key does not exist)."""
    if answer is None:
        return phrase("win.not_read")
    if answer.get("status") == "error":
        return error_phrase(answer.get("error") or {}, str(answer.get("key")))
    return None


def english(words: Any, check: Check | None = None) -> str:
    """A phrase as English text, for the evidence (which keeps the judge's findings in one language)."""
    return Text(ja="{w}", en="{w}").format({"w": words}, check.meta.messages.get if check else None).en


def dword(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def number(v: Any) -> int | None:
    """A number Windows keeps as REG_SZ ("600") or REG_DWORD; None for anything else."""
    if isinstance(v, str) and v.strip().isdigit():
        return int(v.strip())
    return dword(v)


def effective(policy_answer: Mapping[str, Any] | None, local_answer: Mapping[str, Any] | None,
              name: str) -> tuple[Any, str]:
    """(value, where it came from): Group Policy over the local setting."""
    pv = value(policy_answer, name)
    if pv is not None:
        return pv, "policy"
    lv = value(local_answer, name)
    return (lv, "local") if lv is not None else (None, "unset")


def _errors(reasons: list[Phrase], *, evidence: Any, expected: Any) -> Verdict:
    return error(phrase("win.unreadable_settings", reasons=reasons), evidence=evidence, expected=expected)


#: Where a setting in force came from (``effective``), in words.
SOURCES = {"policy": phrase("win.from.policy"), "local": phrase("win.from.local"), "unset": phrase("win.from.unset"),
           "Windows default (block)": phrase("win.from.default_block")}


def _shown(v: Any) -> Any:
    """A registry value in a message: as it is, or "unset" in words."""
    return phrase("win.unset") if v is None else v


# -- PH-01 screen lock -----------------------------------------------------------------------------------


def _user_screen(u: Mapping[str, Any], max_idle: int,
                 require_policy: bool) -> tuple[str, list[Phrase], Phrase | None]:
    who = (u.get("user") or {}).get("sid") or (u.get("user") or {}).get("id") or "?"
    if u.get("user") is None:
        return who, [], unreadable(u.get("desktop")) or phrase("win_users_unlisted")
    why = unreadable(u.get("desktop")) or unreadable(u.get("policy"))
    if why:
        return who, [], why
    pol, desk = u.get("policy"), u.get("desktop")
    active, a_from = effective(pol, desk, "ScreenSaveActive")
    secure, s_from = effective(pol, desk, "ScreenSaverIsSecure")
    timeout, t_from = effective(pol, desk, "ScreenSaveTimeOut")
    saver, _ = effective(pol, desk, "SCRNSAVE.EXE")
    bad: list[Phrase] = []
    if number(active) != 1:
        bad.append(phrase("win_saver_off", value=_shown(active)))
    if not (isinstance(saver, str) and saver.strip()):
        bad.append(phrase("win_no_saver"))
    if number(secure) != 1:
        bad.append(phrase("win_no_password", value=_shown(secure)))
    seconds = number(timeout)
    if seconds is None:
        bad.append(phrase("win_no_timeout", value=_shown(timeout)))
    elif not 1 <= seconds <= max_idle:
        bad.append(phrase("win_timeout_long", seconds=seconds, max=max_idle))
    if require_policy:
        loose = [n for n, src in (("ScreenSaveActive", a_from), ("ScreenSaverIsSecure", s_from),
                                  ("ScreenSaveTimeOut", t_from)) if src != "policy"]
        if loose:
            bad.append(phrase("win_not_enforced", names=loose))
    return who, bad, None


def ph01_windows(facts: FactSet, policy: Policy) -> Verdict:
    sl = facts.need("win_screenlock")
    pol = policy["screen_lock"]
    max_idle, require = pol["max_idle_seconds"], pol["require_system_lock"]
    expected = {"InactivityTimeoutSecs (machine policy)": f"1..{max_idle}",
                "or every user": {"ScreenSaveActive": "1", "ScreenSaverIsSecure": "1", "SCRNSAVE.EXE": "set",
                                  "ScreenSaveTimeOut": f"1..{max_idle}",
                                  "set by Group Policy": bool(require)}}
    machine = sl["machine"]
    inactivity = dword(value(machine, "InactivityTimeoutSecs"))
    evidence: dict[str, Any] = {"source": sl.get("source"), "InactivityTimeoutSecs": inactivity,
                                "machine_key": machine.get("key"), "users": []}
    if inactivity is not None and 1 <= inactivity <= max_idle:
        return Verdict(status=Status.PASS, message="win_pass_machine", params={"seconds": inactivity},
                       evidence=evidence, expected=expected)
    failing: list[Phrase] = []
    unknown: list[Phrase] = []
    machine_unknown = unreadable(machine)
    for u in sl["users"]:
        who, bad, cause = _user_screen(u, max_idle, require)
        evidence["users"].append({"user": u.get("user"), "problems": [english(p, physical.PH_01) for p in bad],
                                  "error": problem(u.get("desktop")) or problem(u.get("policy")) if cause else None,
                                  "desktop": u.get("desktop"), "policy": u.get("policy")})
        if cause:
            unknown.append(phrase("win.who", who=who, what=cause))
        elif bad:
            failing.append(phrase("win.who", who=who, what=bad))
    if not sl["users"]:
        unknown.append(phrase("win_no_profiles"))
    machine_text = (phrase("win_machine_off") if inactivity == 0 else phrase("win.seconds", seconds=inactivity)
                    if inactivity is not None else phrase("win_machine_unset"))
    if failing and machine_unknown is None:
        return Verdict(status=Status.FAIL, message="win_fail", params={"users": failing, "machine": machine_text},
                       evidence=evidence, expected=expected)
    if machine_unknown is not None:
        unknown.insert(0, phrase("win_machine_unknown", why=machine_unknown))
    if unknown or failing:
        return _errors(unknown + [phrase("win.would_fail", what=f) for f in failing], evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.PASS, message="win_pass_users", params={"count": len(sl["users"])},
                   evidence=evidence, expected=expected)


# -- AC-01 firewall --------------------------------------------------------------------------------------


def ac01_windows(facts: FactSet, policy: Policy) -> Verdict:
    fw = facts.need("win_firewall")
    expected = {"profiles": ["domain", "private", "public"], "EnableFirewall": 1,
                "DefaultInboundAction": "1 (block)", "MpsSvc Start": "not 4 (disabled)"}
    evidence: dict[str, Any] = {"source": fw.get("source"), "service_start": value(fw["service"], "Start"),
                                "profiles": {}}
    start = dword(value(fw["service"], "Start"))
    if start == DISABLED:
        return Verdict(status=Status.FAIL, message="win_fail",
                       params={"problems": [phrase("win_service_disabled")]},
                       evidence=evidence, expected=expected)
    unknown = [p for p in (unreadable(fw["service"]),) if p]
    if fw["service"].get("status") == "missing":
        unknown.append(phrase("win_service_absent"))
    bad: list[Phrase] = []
    for name in ("domain", "private", "public"):
        local, pol = fw["local"][name], fw["policy"][name]
        cause = unreadable(local) or unreadable(pol)
        if cause:
            unknown.append(phrase("win_profile_why", profile=name, why=cause))
            continue
        enabled, e_from = effective(pol, local, "EnableFirewall")
        inbound, i_from = effective(pol, local, "DefaultInboundAction")
        if inbound is None:
            inbound, i_from = 1, "Windows default (block)"
        evidence["profiles"][name] = {"EnableFirewall": enabled, "from": e_from, "DefaultInboundAction": inbound,
                                      "inbound_from": i_from}
        if dword(enabled) is None:
            unknown.append(phrase("win_not_recorded", profile=name))
        elif enabled != 1:
            bad.append(phrase("win_profile_off", profile=name, source=SOURCES.get(e_from, e_from)))
        if dword(inbound) != 1:
            bad.append(phrase("win_inbound_allowed", profile=name, source=SOURCES.get(i_from, i_from)))
    if bad and not unknown:
        return Verdict(status=Status.FAIL, message="win_fail", params={"problems": bad}, evidence=evidence,
                       expected=expected)
    if unknown:
        return _errors(unknown + [phrase("win.would_fail", what=b) for b in bad], evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.PASS, message="win_pass", evidence=evidence, expected=expected)


# -- TX-05 SMBv1 -----------------------------------------------------------------------------------------


def _start(answer: Mapping[str, Any]) -> tuple[bool | None, str, Any]:
    """(enabled?, why, why worded per language) of a driver or service from its key: missing key = not
    installed."""
    if answer.get("status") == "missing":
        return False, "not installed", phrase("win.not_installed")
    why = problem(answer)
    if why:
        return None, why, unreadable(answer)
    start = dword(value(answer, "Start"))
    if start is None:
        return None, f"{answer.get('key')}: no Start value", phrase("win.no_start", where=answer.get("key"))
    return start != DISABLED, f"Start={start}", f"Start={start}"


def tx05_windows(facts: FactSet, policy: Policy) -> Verdict:
    smb = facts.need("win_smb")
    expected = {"LanmanServer\\Parameters\\SMB1": 0, "mrxsmb10 Start": "4 (disabled) or not installed"}
    on: list[Phrase] = []
    unknown: list[Phrase] = []
    client, c_why, c_words = _start(smb["smb1_client_driver"])
    if client is None:
        unknown.append(phrase("win_client_why", why=c_words))
    elif client:
        on.append(phrase("win_client_on", why=c_words))
    server_service, s_why, s_words = _start(smb["server_service"])
    smb1 = dword(value(smb["server_parameters"], "SMB1"))
    driver, d_why, d_words = _start(smb["smb1_server_driver"])
    server: bool | None
    words: Any
    if server_service is False:
        server, why = False, f"Server service {s_why}"
    elif smb1 == 0:
        server, why = False, "SMB1=0"
    elif driver is False:
        server, why = False, f"SMBv1 server driver srv {d_why}"
    elif problem(smb["server_parameters"]) or server_service is None or driver is None:
        server, why = None, problem(smb["server_parameters"]) or (s_why if server_service is None else d_why)
        words = unreadable(smb["server_parameters"]) or (s_words if server_service is None else d_words)
    else:
        server, why = True, f"SMB1={'unset (enabled by default)' if smb1 is None else smb1}, srv {d_why}"
        words = (phrase("win_smb1_default", driver=d_words) if smb1 is None
                 else phrase("win_smb1_set", value=smb1, driver=d_words))
    if server is None:
        unknown.append(phrase("win_server_why", why=words))
    elif server:
        on.append(phrase("win_server_on", why=words))
    evidence = {"source": smb.get("source"), "client": c_why, "server": why, "smb1_value": smb1}
    if on:
        return Verdict(status=Status.FAIL, message="win_fail", params={"where": on}, evidence=evidence,
                       expected=expected)
    if unknown:
        return _errors(unknown, evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="win_pass", evidence=evidence, expected=expected)


# -- LG-02 / LG-04 Security event log --------------------------------------------------------------------

KEEP = 0xFFFFFFFF


def security_log(ev: Mapping[str, Any]) -> tuple[dict[str, Any], list[Phrase]]:
    """The Security log's settings in force (policy over local) and what could not be read."""
    local, pol = ev["local"], ev["policy"]
    unknown = [p for p in (unreadable(local), unreadable(pol)) if p]
    if local.get("status") == "missing":
        unknown.append(phrase("win.log_not_configured", where=local.get("key")))
    retention = value(pol, "Retention")
    if retention is not None:  # policy: REG_SZ "1" = do not overwrite, "0" = overwrite as needed
        retention, r_from = (KEEP if number(retention) == 1 else 0 if number(retention) == 0 else retention), "policy"
    else:
        retention, r_from = value(local, "Retention"), "local"
    backup, b_from = effective(pol, local, "AutoBackupLogFiles")
    size_kb = number(value(pol, "MaxSize"))
    max_bytes = size_kb * 1024 if size_kb is not None else dword(value(local, "MaxSize"))
    return {"Retention": retention, "retention_from": r_from, "AutoBackupLogFiles": number(backup),
            "backup_from": b_from, "MaxSize_bytes": max_bytes,
            "RestrictGuestAccess": dword(value(local, "RestrictGuestAccess")), "files": ev.get("files"),
            "source": ev.get("source")}, unknown


def oldest_record(ev: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """(the Security log's oldest record as {time, record_id, age_days}, None) or (None, why it is unknown).

    The age is counted from the collection time the facts carry, so a bundle judged later says the same."""
    o = ev.get("oldest")
    if not isinstance(o, Mapping):
        return None, "the oldest record was not collected"
    err = o.get("error")
    if err is not None:
        return None, str(err.get("message", "unreadable")) if isinstance(err, Mapping) else str(err)
    v, now = o.get("value"), o.get("collected_at")
    when = v.get("TimeCreated") if isinstance(v, Mapping) else None
    rid = v.get("RecordId") if isinstance(v, Mapping) else None
    if not isinstance(when, str) or dword(rid) is None or not isinstance(now, int | float) or isinstance(now, bool):
        return None, "the eventlog part answered no TimeCreated (text) and RecordId (number)"
    try:
        t = dt.datetime.fromisoformat(when)
    except ValueError:
        return None, f"TimeCreated {when[:40]!r} is not an ISO 8601 time"
    if t.tzinfo is None:
        return None, f"TimeCreated {when[:40]!r} has no time zone"
    age = (now - t.timestamp()) / 86400
    if age < -1:
        return None, f"the oldest record ({when[:40]}) is dated after the scan"
    return {"time": when, "record_id": rid, "age_days": round(max(age, 0.0), 1)}, None


def lg02_windows(facts: FactSet, policy: Policy) -> Verdict:
    ev = facts.need("win_eventlog")
    want = policy["logging"]["retention_days"]
    expected = {"retention_days": f">= {want}", "Security log": "never overwritten (Retention=-1, archived "
                "when full) or its oldest record older than the retention period"}
    s, unknown = security_log(ev)
    oldest, why = oldest_record(ev)
    live = isinstance(ev.get("oldest"), Mapping) and bool(ev["oldest"].get("live"))
    s["oldest_record"] = oldest if oldest is not None else {"read": False, "why": why, "live": live}
    if unknown:
        return _errors(unknown, evidence=s, expected=expected)
    retention = dword(s["Retention"])
    if retention is None:
        return error(f"Security log Retention is {s['Retention']!r}", "Security ログの Retention 値が不正です",
                     evidence=s, expected=expected)
    mb = round((s["MaxSize_bytes"] or 0) / 2**20, 1)
    if retention not in (0, KEEP) and retention // 86400 < want:  # configured too short: the records cannot last
        return Verdict(status=Status.FAIL, message="fail_short",
                       params={"store": phrase("win_store"), "days": retention // 86400, "want": want},
                       evidence=s, expected=expected)
    if live:  # configured AND actual: what the log holds now must cover the period too
        if oldest is None:
            return error(phrase("win_oldest_unreadable", reason=explain(why or "unreadable")), evidence=s,
                         expected=expected)
        if oldest["age_days"] >= want:
            return Verdict(status=Status.PASS, message="win_pass_oldest",
                           params={"days": oldest["age_days"], "want": want, "time": oldest["time"]},
                           evidence=s, expected=expected)
        if retention == 0:
            return Verdict(status=Status.FAIL, message="win_fail_oldest",
                           params={"days": oldest["age_days"], "want": want, "mb": mb, "time": oldest["time"]},
                           evidence=s, expected=expected)
        # Set to keep its records, yet younger than the period: a new PC, or a log that was cleared.
        return Verdict(status=Status.MANUAL, message="win_manual_young",
                       params={"days": oldest["age_days"], "want": want, "time": oldest["time"]},
                       evidence=s, expected=expected)
    # Offline: the settings only (the oldest record is not read from an image).
    if retention == KEEP:
        msg = "win_pass_archive" if s["AutoBackupLogFiles"] == 1 else "win_pass_keep"
        return Verdict(status=Status.PASS, message=msg, evidence=s, expected=expected)
    if retention > 0:
        return Verdict(status=Status.PASS, message="pass",
                       params={"store": phrase("win_store"), "days": retention // 86400},
                       evidence=s, expected=expected)
    # Retention 0: overwritten when full; how many days that is, only the oldest record tells.
    files = s["files"]
    if files is None:
        return error("the oldest record of the live Security log was not read",
                     "稼働中の Security ログの最古の記録を読めていません", evidence=s, expected=expected)
    if not files.get("present"):
        return Verdict(status=Status.ERROR, message="win_no_evtx", params={"mb": mb, "log": files.get("log")},
                       evidence=s, expected=expected)
    return Verdict(status=Status.MANUAL, message="win_manual_oldest", params={"mb": mb, "days": want},
                   evidence=s, expected=expected)


def lg04_windows(facts: FactSet, policy: Policy) -> Verdict:
    ev = facts.need("win_eventlog")
    expected = {"Retention": "-1 (do not overwrite)", "AutoBackupLogFiles": 1, "RestrictGuestAccess": "1 or unset"}
    s, unknown = security_log(ev)
    if unknown:
        return _errors(unknown, evidence=s, expected=expected)
    retention = dword(s["Retention"])
    bad: list[Phrase] = []
    if retention is None:
        return error(f"Security log Retention is {s['Retention']!r}", "Security ログの Retention 値が不正です",
                     evidence=s, expected=expected)
    if retention == 0:
        mb = round((s["MaxSize_bytes"] or 0) / 2**20, 1)
        bad.append(phrase("win_overwritten", mb=mb))
    elif retention == KEEP and s["AutoBackupLogFiles"] != 1:
        bad.append(phrase("win_discarded"))
    if s["RestrictGuestAccess"] == 0:
        bad.append(phrase("win_guests"))
    if bad:
        return Verdict(status=Status.FAIL, message="win_fail", params={"problems": bad}, evidence=s,
                       expected=expected)
    return Verdict(status=Status.PASS, message="win_pass", evidence=s, expected=expected)


# -- IA-01 / IA-02 / IA-03 local accounts and policy (SAM) -----------------------------------------------


def _account_name(a: Mapping[str, Any]) -> str:
    return f"{a.get('name') or '?'} (RID {a.get('rid', a.get('rid_key'))})"


def ia01_windows(facts: FactSet, policy: Policy) -> Verdict:
    acc = facts.need("win_accounts")
    expected = {"enabled accounts": "no PASSWORD_NOT_REQUIRED flag", "Guest": "disabled"}
    if acc.get("accounts_error"):
        e = acc["accounts_error"]
        return error(phrase("win.accounts_unreadable", error=error_phrase(e)), evidence={"error": e},
                     expected=expected)
    rows = [{k: a.get(k) for k in ("name", "rid", "flags", "disabled", "password_not_required", "error")}
            for a in acc["accounts"]]
    evidence = {"source": acc.get("source"), "accounts_source": acc.get("accounts_source", "SAM"), "accounts": rows,
                "LimitBlankPasswordUse": value(acc.get("lsa"), "LimitBlankPasswordUse")}
    bad: list[Phrase] = []
    unknown: list[Phrase] = []
    for a in acc["accounts"]:
        if a.get("error"):
            unknown.append(phrase("win.who", who=_account_name(a), what=error_phrase(a["error"])))
            continue
        if a["disabled"]:
            continue
        if a["password_not_required"]:
            bad.append(phrase("win_no_password_required", account=_account_name(a)))
        if a.get("builtin_guest"):
            bad.append(phrase("win_guest_enabled", account=_account_name(a)))
    if bad:
        return Verdict(status=Status.FAIL, message="fail", params={"accounts": bad}, evidence=evidence,
                       expected=expected)
    if unknown:
        return _errors(unknown, evidence=evidence, expected=expected)
    enabled = sum(1 for a in acc["accounts"] if not a["disabled"])
    return Verdict(status=Status.PASS, message="win_pass", params={"count": enabled,
                                                                   "total": len(acc["accounts"])},
                   evidence=evidence, expected=expected)


def _domain(facts: FactSet, expected: Any) -> tuple[dict[str, Any] | None, Verdict | None]:
    acc = facts.need("win_accounts")
    if acc.get("domain") is None:
        e = acc.get("domain_error")
        words = error_phrase(e) if e else phrase("win.no_domain_policy")
        return None, error(phrase("win.password_policy_unreadable", error=words), evidence={"error": e},
                           expected=expected)
    return {**acc["domain"], "source": acc.get("source"), "domain_source": acc.get("domain_source", "SAM")}, None


def ia02_windows(facts: FactSet, policy: Policy) -> Verdict:
    want_len, want_classes = policy["password"]["min_length"], policy["password"]["min_classes"]
    expected = {"min_length": f">= {want_len}", "complexity (3 of 4 classes)": want_classes > 0}
    dom, err = _domain(facts, expected)
    if err is not None or dom is None:
        return err or error(phrase("win.no_domain_policy"))
    bad: list[Phrase] = []
    if dom["min_password_length"] < want_len:
        bad.append(phrase("win_min_length", length=dom["min_password_length"], want=want_len))
    if want_classes > 0 and not dom["complexity"]:
        bad.append(phrase("win_complexity_off"))
    if want_classes > 3:
        bad.append(phrase("win_classes", want=want_classes))
    if bad:
        return Verdict(status=Status.FAIL, message="win_fail", params={"problems": bad}, evidence=dom,
                       expected=expected)
    return Verdict(status=Status.PASS, message="win_pass", params={"length": dom["min_password_length"],
                                                                   "complexity": dom["complexity"]},
                   evidence=dom, expected=expected)


def ia03_windows(facts: FactSet, policy: Policy) -> Verdict:
    max_tries, min_unlock = policy["lockout"]["max_tries"], policy["lockout"]["min_unlock_seconds"]
    expected = {"lockout_threshold": f"1..{max_tries}", "lockout_duration": f">= {min_unlock} s or until unlocked"}
    dom, err = _domain(facts, expected)
    if err is not None or dom is None:
        return err or error(phrase("win.no_domain_policy"))
    bad: list[Phrase] = []
    threshold, duration = dom["lockout_threshold"], dom["lockout_duration_seconds"]
    if threshold == 0:
        bad.append(phrase("win_never_locked"))
    elif threshold > max_tries:
        bad.append(phrase("win_threshold", threshold=threshold, max=max_tries))
    if threshold and duration is not None and duration < min_unlock:
        bad.append(phrase("win_short", duration=duration, min=min_unlock))
    if bad:
        return Verdict(status=Status.FAIL, message="win_fail", params={"problems": bad}, evidence=dom,
                       expected=expected)
    return Verdict(status=Status.PASS, message="win_pass",
                   params={"tries": threshold, "duration": phrase("win_until_unlocked") if duration is None
                           else phrase("win.seconds", seconds=duration)}, evidence=dom, expected=expected)


PH_01 = with_windows(physical.PH_01, "win_screenlock", ph01_windows)
AC_01 = with_windows(access_control.AC_01, "win_firewall", ac01_windows)
TX_05 = with_windows(transfer.TX_05, "win_smb", tx05_windows)
LG_02 = with_windows(log_checks.LG_02, "win_eventlog", lg02_windows)
LG_04 = with_windows(logging_more.LG_04, "win_eventlog", lg04_windows)
IA_01 = with_windows(identification.IA_01, "win_accounts", ia01_windows)
IA_02 = with_windows(authentication.IA_02, "win_accounts", ia02_windows)
IA_03 = with_windows(authentication.IA_03, "win_accounts", ia03_windows)
