"""MLIT-9-5-4: recording access (LG-01 logging runs, LG-03 data access audited, LG-04 logs protected,
LG-05 clock synchronised).

Processes are judged only where they can be seen: a directory image has none,
and a ``hidepid`` /proc hides other users' processes from a non-root scan, so
"no syslog daemon seen" is then ``error``, not ``fail``.
"""

from __future__ import annotations

import posixpath
from typing import Any

from agent.config.policy import Policy
from checks.access_control import not_collected
from checks.base import (
    FactSet,
    FactsUnavailable,
    Phrase,
    Status,
    Text,
    Verdict,
    check,
    error,
    explain,
    fact_phrase,
    phrase,
)
from collectors.processes import find
from collectors.timesync import LOCAL_REFIDS

#: Daemons that record the system's events (journald's comm is cut to 15 characters by the kernel).
LOGGERS = frozenset({"systemd-journald", "systemd-journal", "rsyslogd", "syslog-ng", "syslogd", "metalog",
                     "busybox-syslogd"})
#: Groups that may write logs on Debian, Ubuntu and RHEL: the log daemons' own, and utmp for wtmp/lastlog.
LOG_WRITER_GROUPS = frozenset({"root", "adm", "syslog", "systemd-journal", "utmp"})
#: Personal accounts start here on Debian and RHEL; a log owned by a person can be rewritten by that person.
FIRST_PERSON_UID = 1000
#: LG-04's findings as the evidence records them (the message words them per language).
_EVIDENCE = {"writable_by_everyone": "writable by everyone", "writable_by_group": "writable by group {group}",
             "owned_by_person": "owned by a personal account"}


def processes_or_verdict(facts: FactSet) -> dict[str, Any] | Verdict:
    try:
        procs: dict[str, Any] = facts.need("processes")
    except FactsUnavailable as e:
        return error(phrase("processes_unseen", reason=e.reason if isinstance(e.reason, Text) else explain(e.reason)))
    return procs


@check("LG-01", needs=("processes",))
def LG_01(facts: FactSet, policy: Policy) -> Verdict:
    procs = processes_or_verdict(facts)
    if isinstance(procs, Verdict):
        return procs
    running = find(procs["processes"], LOGGERS)
    expected = {"running": "one of " + ", ".join(sorted(LOGGERS))}
    evidence = {"logging_processes": [{"pid": p["pid"], "comm": p["comm"], "exe": p["exe"]} for p in running],
                "processes_seen": len(procs["processes"])}
    if running:
        names = sorted({p["comm"] for p in running})
        return Verdict(status=Status.PASS, message="pass", params={"daemons": names}, evidence=evidence,
                       expected=expected)
    if procs.get("restricted"):
        return error("/proc hides other users' processes (hidepid): run as root",
                     "/proc が他の利用者のプロセスを隠しています (hidepid)。root で実行してください",
                     evidence=evidence, expected=expected)
    return Verdict(status=Status.FAIL, message="fail", evidence=evidence, expected=expected)


def _names(accounts: dict[str, Any], section: str, key: str) -> dict[int, str]:
    data = accounts.get(section, {})
    return {e[key]: e["name"] for e in data.get("users" if section == "passwd" else "groups", [])}


@check("LG-04", needs=("log_permissions", "accounts"))
def LG_04(facts: FactSet, policy: Policy) -> Verdict:
    lp = facts.need("log_permissions")
    accounts = facts.need("accounts")
    paths: list[str] = policy["logging"]["protected_logs"]
    expected = {"others": "no write access", "group_write": sorted(LOG_WRITER_GROUPS),
                "owner": f"root or a system account (UID < {FIRST_PERSON_UID})"}
    missing = not_collected(paths, lp.get("protected_logs", []))
    if missing:
        return error(phrase("log_paths_not_collected", paths=missing), expected=expected)
    records = [lp["paths"][p] for p in paths if lp["paths"][p]["exists"]]
    if not records:
        return Verdict(status=Status.NOT_APPLICABLE, message="none_here", params={"paths": paths}, expected=expected)
    group_facts = accounts.get("group", {})
    if "error" in group_facts:  # group names decide which group-writable logs are acceptable
        return error(phrase("group_unreadable", error=explain(group_facts["error"])))
    groups = {g["gid"]: g["name"] for g in group_facts.get("groups", [])}
    users = {u["uid"]: u["name"] for u in accounts.get("passwd", {}).get("users", [])}
    problems: list[Phrase] = []
    seen: set[str] = set()
    checked = 0
    for rec in records:
        for entry in rec["ancestors"] + rec["entries"]:
            if entry["path"] in seen:
                continue
            seen.add(entry["path"])
            checked += 1
            mode = int(entry["mode"], 8)
            group = groups.get(entry["gid"], str(entry["gid"]))
            where = f"{entry['path']} ({entry['mode']} {users.get(entry['uid'], entry['uid'])}:{group})"
            if mode & 0o002:
                problems.append(phrase("writable_by_everyone", where=where))
            if mode & 0o020 and group not in LOG_WRITER_GROUPS:
                problems.append(phrase("writable_by_group", where=where, group=group))
            if FIRST_PERSON_UID <= entry["uid"] < 65534:
                problems.append(phrase("owned_by_person", where=where))
    evidence = {"checked": checked, "paths": {r["path"]: {"entries": len(r["entries"]), "top": r["entries"][0]}
                                              for r in records},
                "problems": [f"{p.params['where']}: {_EVIDENCE[p.key].format(**p.params)}" for p in problems]}
    if problems:
        return Verdict(status=Status.FAIL, message="fail", params={"problems": problems[:20]}, evidence=evidence,
                       expected=expected)
    unreadable = [u for r in records for u in r["unreadable"]]
    if unreadable:
        if any("denied" in u.lower() for u in unreadable):
            return Verdict(status=Status.ERROR, message="needs_root", params={"path": unreadable[0].split(":")[0]},
                           evidence={**evidence, "unreadable": unreadable[:20]}, expected=expected)
        return error(phrase("not_examined", errors=[explain(u) for u in unreadable[:5]]),
                     evidence=evidence, expected=expected)
    if any(r["truncated"] for r in records):
        return error(phrase("too_many_files"), evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="pass",
                   params={"count": checked, "paths": [posixpath.normpath(r["path"]) for r in records]},
                   evidence=evidence, expected=expected)


def _covers(watch: dict[str, Any], path: str) -> bool:
    """Whether a watch records reads and writes of ``path`` (a directory watch covers its subtree)."""
    if watch["action"] != "always" or not {"r", "w"} <= set(watch["perms"]):
        return False
    wp = watch["path"].rstrip("/") or "/"
    target = path.rstrip("/") or "/"
    if wp == target:
        return True
    inside = target.startswith(wp.rstrip("/") + "/")
    return inside and watch["recursive"] is not False


def _uncovered(watches: list[dict[str, Any]], paths: list[str]) -> list[str]:
    excluded = [w for w in watches if w["action"] == "never"]
    out = []
    for p in paths:
        if not any(_covers(w, p) for w in watches) or any(
                p.rstrip("/") == w["path"].rstrip("/") or p.startswith(w["path"].rstrip("/") + "/") for w in excluded):
            out.append(p)
    return out


@check("LG-03", needs=("audit", "data_permissions"))
def LG_03(facts: FactSet, policy: Policy) -> Verdict:
    audit = facts.need("audit")
    dp = facts.need("data_permissions")
    paths: list[str] = policy["data_paths"]
    expected = {"auditd": "running and receiving events",
                "watches": "read and write (-p rw) on every personal-data location", "data_paths": paths}
    if not paths:
        return Verdict(status=Status.NOT_APPLICABLE, message="no_data_paths", expected=expected)
    missing = not_collected(paths, dp.get("data_paths", []))
    if missing:
        return error(phrase("data_paths_not_collected", paths=missing), expected=expected)
    present = [p for p in paths if dp["paths"][p]["exists"]]
    if not present:
        return Verdict(status=Status.NOT_APPLICABLE, message="none_here", params={"paths": paths}, expected=expected)
    conf = audit.get("configured", {})
    if not audit.get("live"):
        return _audit_on_image(conf, present, expected)
    if not audit.get("tool"):
        return Verdict(status=Status.FAIL, message="fail_not_installed", expected=expected)
    if audit.get("problem"):
        if audit.get("permission_denied"):
            return Verdict(status=Status.ERROR, message="needs_root", params={"path": phrase("kernel_audit_rules")},
                           expected=expected)
        return error(phrase("audit_problem", error=fact_phrase("audit", audit["problem"])), expected=expected)
    status = audit["status"]
    evidence = {"enabled": status.get("enabled"), "auditd_pid": status.get("pid"), "lost": status.get("lost"),
                "loaded_rules": audit["loaded_rules"],
                "watches": [f"{w['path']} -p {w['perms']}" for w in audit["loaded"] if w["action"] == "always"]}
    if status.get("enabled") not in (1, 2):
        return Verdict(status=Status.FAIL, message="fail_disabled", evidence=evidence, expected=expected)
    if not status.get("pid"):
        return Verdict(status=Status.FAIL, message="fail_no_daemon", evidence=evidence, expected=expected)
    uncovered = _uncovered(audit["loaded"], present)
    if uncovered:
        return Verdict(status=Status.FAIL, message="fail_uncovered", params={"paths": uncovered},
                       evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"paths": present, "pid": status["pid"]},
                   evidence=evidence, expected=expected)


def _audit_on_image(conf: dict[str, Any], present: list[str], expected: dict[str, Any]) -> Verdict:
    """An image: rules files prove nothing is audited *now*, but missing ones prove nothing would be."""
    evidence = {"configured_files": conf.get("files", []), "enabled_at_boot": conf.get("enabled_at_boot"),
                "configured_watches": [f"{w['path']} -p {w['perms']}" for w in conf.get("watches", [])]}
    if conf.get("problem"):
        return error(phrase("audit_rules_problem", error=fact_phrase("audit", conf["problem"])), evidence=evidence,
                     expected=expected)
    if not conf.get("installed"):
        return Verdict(status=Status.FAIL, message="fail_not_installed", evidence=evidence, expected=expected)
    uncovered = _uncovered(conf.get("watches", []), present)
    if uncovered:
        return Verdict(status=Status.FAIL, message="fail_config_uncovered", params={"paths": uncovered},
                       evidence=evidence, expected=expected)
    if not conf.get("enabled_at_boot"):
        return Verdict(status=Status.FAIL, message="fail_not_enabled", evidence=evidence, expected=expected)
    return error("the rules files would audit every location, but loaded rules cannot be seen on an image",
                 "ルールファイルはすべての場所を監査する設定ですが、イメージでは読み込み済みのルールを確認できません",
                 evidence=evidence, expected=expected)


@check("LG-05", needs=("timesync",))
def LG_05(facts: FactSet, policy: Policy) -> Verdict:
    ts = facts.need("timesync")
    max_ms = policy["logging"]["max_clock_offset_ms"]
    expected = {"daemon": "chronyd, systemd-timesyncd or ntpd running and synchronised",
                "offset_ms": f"<= {max_ms}", "reference": "a time server, not the local clock"}
    conf = ts.get("configured", {})
    if ts.get("processes_error"):
        return error(phrase("processes_unseen", reason=explain(ts["processes_error"])), evidence={"configured": conf},
                     expected=expected)
    daemons = ts.get("daemons", [])
    evidence: dict[str, Any] = {"daemons": daemons, "configured": conf}
    if not daemons:
        if ts.get("restricted"):
            return error("/proc hides other users' processes (hidepid): run as root",
                         "/proc が他の利用者のプロセスを隠しています (hidepid)。root で実行してください",
                         evidence=evidence, expected=expected)
        return Verdict(status=Status.FAIL, message="fail_none", evidence=evidence, expected=expected)
    reasons: list[Phrase] = []
    unknown: list[Phrase] = []
    for d in daemons:
        name = f"{d['daemon']} (pid {d['pid']})"
        if d.get("problem"):
            unknown.append(phrase("daemon_problem", daemon=name, error=fact_phrase("timesync", d["problem"])))
            continue
        state = d.get("state")
        if d["daemon"] == "timesyncd":
            if state and state.get("synchronized"):
                return Verdict(status=Status.PASS, message="pass_timesyncd", params={"daemon": name},
                               evidence=evidence, expected=expected)
            reasons.append(phrase("not_synchronised", daemon=name))
        elif d["daemon"] == "chrony" and state:
            offset_ms = abs(state["system_offset_s"]) * 1000
            if state["leap_status"] != "Normal":
                reasons.append(phrase("leap_status", daemon=name, status=state["leap_status"]))
            elif state["reference_id"] in LOCAL_REFIDS or state["reference_id"] == "00000000":
                reasons.append(phrase("local_clock", daemon=name))
            elif offset_ms > max_ms:
                reasons.append(phrase("clock_off", daemon=name, offset_ms=f"{offset_ms:.0f}"))
            else:
                return Verdict(status=Status.PASS, message="pass",
                               params={"daemon": name, "reference": state["reference"] or state["reference_id"],
                                       "offset_ms": round(offset_ms, 3)}, evidence=evidence, expected=expected)
        else:
            unknown.append(phrase("state_unreadable", daemon=name))
    if unknown:
        return error(phrase("sync_unknown", reasons=unknown), evidence=evidence, expected=expected)
    return Verdict(status=Status.FAIL, message="fail", params={"reasons": reasons}, evidence=evidence,
                   expected=expected)
