"""MLIT-9-5-4: recording access (LG-02 retention)."""

from __future__ import annotations

import fnmatch
from typing import Any

from agent.config.policy import Policy
from checks.base import FactSet, Status, Verdict, check, error
from collectors.log_retention import PERIODS, parse_timespan


def _logrotate_days(stanza: dict[str, Any]) -> float | None:
    period = stanza.get("period")
    rotate = stanza.get("rotate", 0)  # logrotate's default: keep no old logs
    if period not in PERIODS:
        return None
    days = max(rotate, 0) * PERIODS[period]
    if stanza.get("maxage") is not None and stanza["maxage"] > 0:
        days = min(days, stanza["maxage"])
    return float(days)


@check("LG-02", needs=("log_retention",))
def LG_02(facts: FactSet, policy: Policy) -> Verdict:
    lr = facts.need("log_retention")
    want = policy["logging"]["retention_days"]
    auth_logs = policy["logging"]["auth_logs"]
    expected = {"retention_days": f">= {want}", "auth_logs": auth_logs}
    stores: list[dict[str, Any]] = []
    problems: list[str] = []

    rot = lr["logrotate"]
    if rot.get("installed"):
        if rot.get("problem"):
            problems.append(f"logrotate: {rot['problem']}")
        else:
            for st in rot.get("stanzas", []):
                covered = [p for p in auth_logs if any(fnmatch.fnmatchcase(p, pat) for pat in st["paths"])]
                if not covered:
                    continue
                days = _logrotate_days(st)
                if days is None:
                    problems.append(f"logrotate {st['where']}: no rotation period, retention unknown")
                    continue
                on_disk = {p: lr.get("auth_logs_on_disk", {}).get(p) for p in covered}
                stores.append({"store": f"logrotate {', '.join(covered)}", "where": st["where"],
                               "rotate": st.get("rotate", 0), "period": st.get("period"),
                               "maxage": st.get("maxage"), "days": days, "on_disk": on_disk,
                               # A rotation rule for a log nobody writes keeps nothing.
                               "_counts": any(v is not None for v in on_disk.values())})
    jd = lr["journald"]
    if jd.get("installed"):
        if jd.get("problem"):
            problems.append(f"journald: {jd['problem']}")
        else:
            s = jd.get("settings", {})
            storage = s.get("Storage", "auto").lower()
            persistent = storage == "persistent" or (storage == "auto" and jd.get("var_log_journal_exists"))
            if persistent:
                raw = s.get("MaxRetentionSec", "0")
                secs = parse_timespan(raw)
                if secs is None:
                    problems.append(f"journald: MaxRetentionSec={raw!r} is not a time span")
                else:
                    # 0 means no time limit; only the size caps (SystemMaxUse) then bound retention.
                    days = float("inf") if secs == 0 else secs / 86400
                    files = jd.get("journal_files", 0)
                    stores.append({"store": "journald (persistent)", "storage": storage,
                                   "max_retention_sec": raw, "system_max_use": s.get("SystemMaxUse", "default"),
                                   "days": "unlimited by time" if days == float("inf") else round(days, 1),
                                   "journal_files_on_disk": files, "_days": days, "_counts": files > 0})
    long_enough = [s for s in stores if s["_counts"] and s.get("_days", s["days"]) >= want]
    for s in stores:
        s.pop("_days", None)
        if not s.pop("_counts"):
            s["not_counted"] = "configured, but nothing of it is on disk"
    evidence = {"stores": stores, "problems": problems}
    if long_enough:
        unlimited = long_enough[0]["days"] == "unlimited by time"
        return Verdict(status=Status.PASS, message="pass_unlimited" if unlimited else "pass",
                       params={"store": long_enough[0]["store"], "days": long_enough[0]["days"]},
                       evidence=evidence, expected=expected)
    if problems:
        return error("; ".join(problems), "ログ保存設定を判定できません: " + "; ".join(problems),
                     evidence=evidence, expected=expected)
    if stores:
        best = max(stores, key=lambda s: s["days"] if isinstance(s["days"], float) else 0.0)
        return Verdict(status=Status.FAIL, message="fail_short",
                       params={"store": best["store"], "days": best["days"], "want": want},
                       evidence=evidence, expected=expected)
    return Verdict(status=Status.FAIL, message="fail_none", evidence=evidence, expected=expected)
