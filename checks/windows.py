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
from collections.abc import Mapping
from typing import Any

from agent.config.policy import Policy
from checks import access_control, authentication, identification, logging_more, physical, transfer
from checks import logging as log_checks
from checks.base import Check, FactSet, Judge, Status, Verdict, error, explain, phrase

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


def _errors(reasons: list[str], *, evidence: Any, expected: Any) -> Verdict:
    text = "; ".join(reasons)
    return error(text, f"読み取れない設定があり判定できません: {text}", evidence=evidence, expected=expected)


# -- PH-01 screen lock -----------------------------------------------------------------------------------


def _user_screen(u: Mapping[str, Any], max_idle: int, require_policy: bool) -> tuple[str, list[str], str | None]:
    who = (u.get("user") or {}).get("sid") or (u.get("user") or {}).get("id") or "?"
    if u.get("user") is None:
        return who, [], problem(u.get("desktop")) or "user profiles could not be listed"
    why = problem(u.get("desktop")) or problem(u.get("policy"))
    if why:
        return who, [], why
    pol, desk = u.get("policy"), u.get("desktop")
    active, a_from = effective(pol, desk, "ScreenSaveActive")
    secure, s_from = effective(pol, desk, "ScreenSaverIsSecure")
    timeout, t_from = effective(pol, desk, "ScreenSaveTimeOut")
    saver, _ = effective(pol, desk, "SCRNSAVE.EXE")
    bad = []
    if number(active) != 1:
        bad.append(f"screen saver off (ScreenSaveActive={active if active is not None else 'unset'})")
    if not (isinstance(saver, str) and saver.strip()):
        bad.append("no screen saver chosen (SCRNSAVE.EXE unset)")
    if number(secure) != 1:
        bad.append(f"no password on resume (ScreenSaverIsSecure={secure if secure is not None else 'unset'})")
    seconds = number(timeout)
    if seconds is None:
        bad.append(f"no idle time set (ScreenSaveTimeOut={timeout if timeout is not None else 'unset'})")
    elif not 1 <= seconds <= max_idle:
        bad.append(f"ScreenSaveTimeOut {seconds} s > {max_idle} s")
    if require_policy:
        loose = [n for n, src in (("ScreenSaveActive", a_from), ("ScreenSaverIsSecure", s_from),
                                  ("ScreenSaveTimeOut", t_from)) if src != "policy"]
        if loose:
            bad.append("not enforced by Group Policy: " + ", ".join(loose))
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
    failing, unknown = [], []
    machine_unknown = problem(machine)
    for u in sl["users"]:
        who, bad, why = _user_screen(u, max_idle, require)
        evidence["users"].append({"user": u.get("user"), "problems": bad, "error": why,
                                  "desktop": u.get("desktop"), "policy": u.get("policy")})
        if why:
            unknown.append(f"{who}: {why}")
        elif bad:
            failing.append(f"{who}: {'; '.join(bad)}")
    if not sl["users"]:
        unknown.append("no user profile with an NTUSER.DAT hive was found")
    machine_text = ("off (0)" if inactivity == 0 else f"{inactivity} s" if inactivity is not None else "not set")
    if failing and machine_unknown is None:
        return Verdict(status=Status.FAIL, message="win_fail", params={"users": failing, "machine": machine_text},
                       evidence=evidence, expected=expected)
    if machine_unknown is not None:
        unknown.insert(0, f"machine inactivity lock unknown: {machine_unknown}")
    if unknown or failing:
        return _errors(unknown + [f"(would fail) {f}" for f in failing], evidence=evidence, expected=expected)
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
                       params={"problems": ["the firewall service (MpsSvc) is disabled"]},
                       evidence=evidence, expected=expected)
    unknown = [p for p in (problem(fw["service"]),) if p]
    if fw["service"].get("status") == "missing":
        unknown.append("the firewall service (MpsSvc) is not registered")
    bad = []
    for name in ("domain", "private", "public"):
        local, pol = fw["local"][name], fw["policy"][name]
        why = problem(local) or problem(pol)
        if why:
            unknown.append(f"{name} profile: {why}")
            continue
        enabled, e_from = effective(pol, local, "EnableFirewall")
        inbound, i_from = effective(pol, local, "DefaultInboundAction")
        if inbound is None:
            inbound, i_from = 1, "Windows default (block)"
        evidence["profiles"][name] = {"EnableFirewall": enabled, "from": e_from, "DefaultInboundAction": inbound,
                                      "inbound_from": i_from}
        if dword(enabled) is None:
            unknown.append(f"{name} profile: EnableFirewall is not recorded")
        elif enabled != 1:
            bad.append(f"{name} profile off ({e_from})")
        if dword(inbound) != 1:
            bad.append(f"{name} profile allows inbound connections by default ({i_from})")
    if bad and not unknown:
        return Verdict(status=Status.FAIL, message="win_fail", params={"problems": bad}, evidence=evidence,
                       expected=expected)
    if unknown:
        return _errors(unknown + [f"(would fail) {b}" for b in bad], evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="win_pass", evidence=evidence, expected=expected)


# -- TX-05 SMBv1 -----------------------------------------------------------------------------------------


def _start(answer: Mapping[str, Any]) -> tuple[bool | None, str]:
    """(enabled?, why) of a driver or service from its key: missing key = not installed."""
    if answer.get("status") == "missing":
        return False, "not installed"
    why = problem(answer)
    if why:
        return None, why
    start = dword(value(answer, "Start"))
    if start is None:
        return None, f"{answer.get('key')}: no Start value"
    return start != DISABLED, f"Start={start}"


def tx05_windows(facts: FactSet, policy: Policy) -> Verdict:
    smb = facts.need("win_smb")
    expected = {"LanmanServer\\Parameters\\SMB1": 0, "mrxsmb10 Start": "4 (disabled) or not installed"}
    on, unknown = [], []
    client, c_why = _start(smb["smb1_client_driver"])
    if client is None:
        unknown.append(f"SMBv1 client: {c_why}")
    elif client:
        on.append(f"SMBv1 client driver mrxsmb10 ({c_why})")
    server_service, s_why = _start(smb["server_service"])
    smb1 = dword(value(smb["server_parameters"], "SMB1"))
    driver, d_why = _start(smb["smb1_server_driver"])
    server: bool | None
    if server_service is False:
        server, why = False, f"Server service {s_why}"
    elif smb1 == 0:
        server, why = False, "SMB1=0"
    elif driver is False:
        server, why = False, f"SMBv1 server driver srv {d_why}"
    elif problem(smb["server_parameters"]) or server_service is None or driver is None:
        server, why = None, problem(smb["server_parameters"]) or (s_why if server_service is None else d_why)
    else:
        server, why = True, f"SMB1={'unset (enabled by default)' if smb1 is None else smb1}, srv {d_why}"
    if server is None:
        unknown.append(f"SMBv1 server: {why}")
    elif server:
        on.append(f"SMBv1 server ({why})")
    evidence = {"source": smb.get("source"), "client": c_why, "server": why, "smb1_value": smb1}
    if on:
        return Verdict(status=Status.FAIL, message="win_fail", params={"where": on}, evidence=evidence,
                       expected=expected)
    if unknown:
        return _errors(unknown, evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="win_pass", evidence=evidence, expected=expected)


# -- LG-02 / LG-04 Security event log --------------------------------------------------------------------

KEEP = 0xFFFFFFFF


def security_log(ev: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The Security log's settings in force (policy over local) and what could not be read."""
    local, pol = ev["local"], ev["policy"]
    unknown = [p for p in (problem(local), problem(pol)) if p]
    if local.get("status") == "missing":
        unknown.append(f"{local.get('key')}: the Security log is not configured")
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
                       params={"store": "Security event log", "days": retention // 86400, "want": want},
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
                       params={"store": "Security event log", "days": retention // 86400},
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
    bad = []
    if retention is None:
        return error(f"Security log Retention is {s['Retention']!r}", "Security ログの Retention 値が不正です",
                     evidence=s, expected=expected)
    if retention == 0:
        mb = round((s["MaxSize_bytes"] or 0) / 2**20, 1)
        bad.append(f"the oldest events are overwritten when the log is full ({mb} MB): a flood of events erases them")
    elif retention == KEEP and s["AutoBackupLogFiles"] != 1:
        bad.append("when the log is full, new events are discarded (no AutoBackupLogFiles)")
    if s["RestrictGuestAccess"] == 0:
        bad.append("guests may read the Security log (RestrictGuestAccess=0)")
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
        return error(f"local accounts: {e['message']}", f"ローカルアカウントを読めません: {e['message']}",
                     expected=expected)
    rows = [{k: a.get(k) for k in ("name", "rid", "flags", "disabled", "password_not_required", "error")}
            for a in acc["accounts"]]
    evidence = {"source": acc.get("source"), "accounts": rows, "LimitBlankPasswordUse":
                value(acc.get("lsa"), "LimitBlankPasswordUse")}
    bad, unknown = [], []
    for a in acc["accounts"]:
        if a.get("error"):
            unknown.append(f"{_account_name(a)}: {a['error']['message']}")
            continue
        if a["disabled"]:
            continue
        if a["password_not_required"]:
            bad.append(f"{_account_name(a)}: password not required")
        if a.get("builtin_guest"):
            bad.append(f"{_account_name(a)}: the Guest account is enabled")
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
        e = acc.get("domain_error") or {"message": "no domain policy"}
        return None, error(f"local password policy: {e['message']}",
                           f"ローカルのパスワードポリシーを読めません: {e['message']}", expected=expected)
    return {**acc["domain"], "source": acc.get("source")}, None


def ia02_windows(facts: FactSet, policy: Policy) -> Verdict:
    want_len, want_classes = policy["password"]["min_length"], policy["password"]["min_classes"]
    expected = {"min_length": f">= {want_len}", "complexity (3 of 4 classes)": want_classes > 0}
    dom, err = _domain(facts, expected)
    if err is not None or dom is None:
        return err or error("no domain policy")
    bad = []
    if dom["min_password_length"] < want_len:
        bad.append(f"minimum password length {dom['min_password_length']} < {want_len}")
    if want_classes > 0 and not dom["complexity"]:
        bad.append("password complexity is off")
    if want_classes > 3:
        bad.append(f"Windows complexity asks for 3 character classes, the policy wants {want_classes}")
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
        return err or error("no domain policy")
    bad = []
    threshold, duration = dom["lockout_threshold"], dom["lockout_duration_seconds"]
    if threshold == 0:
        bad.append("accounts are never locked (lockout threshold 0)")
    elif threshold > max_tries:
        bad.append(f"lockout after {threshold} failures > {max_tries}")
    if threshold and duration is not None and duration < min_unlock:
        bad.append(f"lockout lasts {duration} s < {min_unlock} s")
    if bad:
        return Verdict(status=Status.FAIL, message="win_fail", params={"problems": bad}, evidence=dom,
                       expected=expected)
    return Verdict(status=Status.PASS, message="win_pass",
                   params={"tries": threshold, "duration": "until an administrator unlocks" if duration is None
                           else f"{duration} s"}, evidence=dom, expected=expected)


PH_01 = with_windows(physical.PH_01, "win_screenlock", ph01_windows)
AC_01 = with_windows(access_control.AC_01, "win_firewall", ac01_windows)
TX_05 = with_windows(transfer.TX_05, "win_smb", tx05_windows)
LG_02 = with_windows(log_checks.LG_02, "win_eventlog", lg02_windows)
LG_04 = with_windows(logging_more.LG_04, "win_eventlog", lg04_windows)
IA_01 = with_windows(identification.IA_01, "win_accounts", ia01_windows)
IA_02 = with_windows(authentication.IA_02, "win_accounts", ia02_windows)
IA_03 = with_windows(authentication.IA_03, "win_accounts", ia03_windows)
