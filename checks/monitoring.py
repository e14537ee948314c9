"""MLIT-9-5-8: monitoring of the systems (MN-01 log forwarding, MN-02 intrusion/integrity monitoring,
MN-03 this audit on a schedule)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from agent.config.policy import Policy
from checks.base import FactSet, Status, Text, Verdict, check, error, fact_phrase, phrase
from collectors.processes import find

SEVERITIES = {"emerg": 0, "panic": 0, "alert": 1, "crit": 2, "err": 3, "error": 3, "warning": 4, "warn": 4,
              "notice": 5, "info": 6, "debug": 7}
AUTH_FACILITIES = ("auth", "authpriv")
DAY = 86400.0


def selector_covers(selector: str, facility: str, severity: str = "info") -> bool | None:
    """Whether a syslog selector (``*.info;mail.none``) passes ``facility.severity``; None if not a selector."""
    want = SEVERITIES[severity]
    selected = False
    for entry in selector.split(";"):
        if "." not in entry:
            return None
        facs, _, prio = entry.rpartition(".")
        prio = prio.strip().lower()
        neg = prio.startswith("!")
        prio = prio.lstrip("!")
        exact = prio.startswith("=")
        prio = prio.lstrip("=")
        if prio == "*":
            match = True
        elif prio == "none":
            match = False
            neg = False
        elif prio in SEVERITIES:
            match = want == SEVERITIES[prio] if exact else want <= SEVERITIES[prio]
        else:
            return None
        names = [f.strip().lower() for f in facs.split(",")]
        if "*" in names or facility in names:
            if neg:
                selected = selected and not match
            elif prio == "none":
                selected = False
            else:
                selected = match or selected
    return selected


def _forward_covers_auth(fw: dict[str, Any]) -> bool | None:
    """True/False when the selector says; None when a condition (if, ruleset, property filter) decides."""
    if fw.get("context"):
        return None
    sel = fw.get("selector")
    if sel is None:
        return True  # an action on its own applies to every message of the default ruleset
    results = [selector_covers(sel, f) for f in AUTH_FACILITIES]
    if any(r is None for r in results):
        return None
    return all(results)


@check("MN-01", needs=("log_forwarding", "processes"))
def MN_01(facts: FactSet, policy: Policy) -> Verdict:
    lf = facts.need("log_forwarding")
    pol = policy["log_forwarding"]
    expected = {"forwarding": "authentication logs (auth, authpriv) sent to a central server",
                "tls": "required" if pol["require_tls"] else "recommended"}
    rs, ju = lf["rsyslog"], lf["journal_upload"]
    forwards = [{**fw, "covers_auth": _forward_covers_auth(fw)} for fw in rs["forwards"]]
    evidence: dict[str, Any] = {"rsyslog_files": rs["files"], "forwards": forwards,
                                "journal_upload": {k: ju.get(k) for k in ("installed", "url", "enabled")}}
    problems = [p for p in (rs.get("problem"), ju.get("problem")) if p]
    good = [f for f in forwards if f["covers_auth"] and (f["tls"] or not pol["require_tls"])]
    upload = bool(ju.get("url")) and bool(ju.get("enabled"))
    if not good and not upload:
        if problems:
            return error(phrase("config_unreadable", problems=[fact_phrase("log_forwarding", p) for p in problems]),
                         evidence=evidence, expected=expected)
        if any(f["covers_auth"] is None for f in forwards):
            return error(phrase("conditional_only"), evidence=evidence, expected=expected)
        if not pol["required"]:
            return Verdict(status=Status.NOT_APPLICABLE, message="not_required", evidence=evidence,
                           expected=expected)
        if any(f["covers_auth"] and not f["tls"] for f in forwards):
            return Verdict(status=Status.FAIL, message="fail_tls", evidence=evidence, expected=expected)
        if forwards:
            return Verdict(status=Status.FAIL, message="fail_not_auth",
                           params={"targets": sorted({str(f["target"]) for f in forwards})},
                           evidence=evidence, expected=expected)
        return Verdict(status=Status.FAIL, message="fail_none", evidence=evidence, expected=expected)
    procs = facts.need("processes")
    running = []
    if good and find(procs["processes"], {"rsyslogd"}):
        running.append("rsyslogd")
    if upload and find(procs["processes"], {"systemd-journal-upload"}):
        running.append("systemd-journal-upload")
    evidence["running"] = running
    dests = sorted({f"{f['target']}:{f['port']}/{f['protocol']}" for f in good} | ({ju["url"]} if upload else set()))
    if not running:
        if procs.get("restricted"):
            return error(phrase("hidepid"), evidence=evidence, expected=expected)
        return Verdict(status=Status.FAIL, message="fail_not_running", params={"destinations": dests},
                       evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="pass", params={"destinations": dests, "daemons": running},
                   evidence=evidence, expected=expected)


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _tool_name(tool: dict[str, Any]) -> Text:
    """How the data file calls a tool, per language (a description beside the product name is translated)."""
    return Text(ja=tool["name"]["ja"], en=tool["name"]["en"])


@check("MN-02", needs=("monitoring", "processes"))
def MN_02(facts: FactSet, policy: Policy) -> Verdict:
    from collectors.monitoring import tools as tool_table

    table = tool_table()
    state = facts.need("monitoring")["tools"]
    accepted = list(policy["monitoring"]["accepted_tools"])
    expected = {"accepted_tools": accepted, "state": "at least one running (or scheduled with a baseline)"}
    evidence: dict[str, Any] = {}
    active: list[Text] = []
    daemons: list[str] = []
    for key in accepted:
        tool, st = table.get(key), state.get(key)
        if tool is None or not st or not st["installed"]:
            continue
        if "schedule" in tool:
            enabled = [j["where"] for j in st.get("jobs", []) if j["enabled"]]
            dbs = st.get("databases", [])
            evidence[key] = {"baseline": [d["path"] for d in dbs], "scheduled_by": enabled}
            if enabled and dbs:
                active.append(_tool_name(tool))
        else:
            daemons.append(key)
            evidence[key] = {k: v for k, v in st.items() if k in ("rules", "jails")}
    if daemons and not active:
        procs = facts.need("processes")
        for key in daemons:
            running = bool(find(procs["processes"], set(table[key]["processes"])))
            evidence[key]["running"] = running
            if running:
                active.append(_tool_name(table[key]))
        if not active and procs.get("restricted"):
            return error(phrase("hidepid"), evidence=evidence, expected=expected)
    if active:
        return Verdict(status=Status.PASS, message="pass", params={"tools": active}, evidence=evidence,
                       expected=expected)
    if evidence:
        return Verdict(status=Status.FAIL, message="fail_inactive",
                       params={"tools": [_tool_name(table[k]) for k in evidence]}, evidence=evidence,
                       expected=expected)
    return Verdict(status=Status.FAIL, message="fail_none", evidence=evidence, expected=expected)


def scheduled_centrally(policy: Policy) -> Verdict | None:
    """``schedule.central``: this host is audited from another machine (a fleet scan) on that machine's
    schedule, so its own scheduler has nothing to show; not_applicable, with the policy's stated reason."""
    pol = policy["schedule"]
    if not pol.get("central"):
        return None
    return Verdict(status=Status.NOT_APPLICABLE, message="not_applicable_central",
                   params={"reason": str(pol.get("central_reason", ""))},
                   expected={"schedule": "scheduled centrally (policy schedule.central)"})


@check("MN-03", needs=("schedule_state",))
def MN_03(facts: FactSet, policy: Policy) -> Verdict:
    central = scheduled_centrally(policy)
    if central is not None:
        return central
    ss = facts.need("schedule_state")
    pol = policy["schedule"]
    max_days = pol["max_report_age_days"]
    expected = {"schedule": "an enabled systemd timer, cron job or LaunchDaemon running mamoru scan or agent run",
                "report_dir": pol["report_dir"], "newest_report_age_days": f"<= {max_days}"}
    if ss["report_dir"] != pol["report_dir"]:
        return error(phrase("report_dir_mismatch", collected=ss["report_dir"], policy=pol["report_dir"]),
                     expected=expected)
    rep = ss["reports"]
    jobs = ss["jobs"]
    enabled = [j for j in jobs if j["enabled"]]
    age = (ss["collected_at"] - rep["finished"]) / DAY if rep["finished"] is not None else None
    evidence: dict[str, Any] = {"jobs": jobs, "report_dir": rep["dir"], "reports": rep["count"],
                                "newest": rep["newest"], "newest_finished": _iso(rep["finished"]),
                                "age_source": rep["age_source"], "problem": rep["problem"],
                                "age_days": round(age, 2) if age is not None else None}
    if not enabled:
        return Verdict(status=Status.FAIL, message="fail_no_schedule",
                       params={"disabled": [j["where"] for j in jobs]}, evidence=evidence, expected=expected)
    if rep["problem"]:
        return error(fact_phrase("schedule_state", rep["problem"]), evidence=evidence, expected=expected)
    if age is None:
        return Verdict(status=Status.FAIL, message="fail_no_report", params={"dir": rep["dir"]}, evidence=evidence,
                       expected=expected)
    params = {"where": enabled[0]["where"], "days": round(age, 1), "max": max_days, "dir": rep["dir"]}
    if age > max_days:
        return Verdict(status=Status.FAIL, message="fail_stale", params=params, evidence=evidence, expected=expected)
    return Verdict(status=Status.PASS, message="pass", params=params, evidence=evidence, expected=expected)
