"""MLIT-9-5-4: recording access (LG-02 retention)."""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from typing import Any

from agent.config.policy import Policy
from checks.base import FactSet, Phrase, Status, Verdict, check, error, fact_phrase, phrase
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
    stores: list[_Store] = []
    problems: list[Phrase] = []
    problem_facts: list[dict[str, Any]] = []  # the same, as evidence

    rot = lr["logrotate"]
    if rot.get("installed"):
        if rot.get("problem"):
            problems.append(fact_phrase("log_retention", rot["problem"]))
            problem_facts.append({"logrotate": rot["problem"]})
        else:
            for st in rot.get("stanzas", []):
                covered = [p for p in auth_logs if any(fnmatch.fnmatchcase(p, pat) for pat in st["paths"])]
                if not covered:
                    continue
                days = _logrotate_days(st)
                if days is None:
                    problems.append(phrase("no_period", where=st["where"]))
                    problem_facts.append({"logrotate": {"code": "no_period", "where": st["where"]}})
                    continue
                on_disk = {p: lr.get("auth_logs_on_disk", {}).get(p) for p in covered}
                stores.append(_Store(
                    name=phrase("store_logrotate", paths=covered), days=days,
                    # A rotation rule for a log nobody writes keeps nothing.
                    on_disk=any(v is not None for v in on_disk.values()),
                    evidence={"store": f"logrotate {', '.join(covered)}", "where": st["where"],
                              "rotate": st.get("rotate", 0), "period": st.get("period"),
                              "maxage": st.get("maxage"), "days": days, "on_disk": on_disk}))
    jd = lr["journald"]
    if jd.get("installed"):
        if jd.get("problem"):
            problems.append(fact_phrase("log_retention", jd["problem"]))
            problem_facts.append({"journald": jd["problem"]})
        else:
            s = jd.get("settings", {})
            storage = s.get("Storage", "auto").lower()
            persistent = storage == "persistent" or (storage == "auto" and jd.get("var_log_journal_exists"))
            if persistent:
                raw = s.get("MaxRetentionSec", "0")
                secs = parse_timespan(raw)
                if secs is None:
                    problems.append(phrase("bad_timespan", value=raw))
                    problem_facts.append({"journald": {"code": "bad_timespan", "MaxRetentionSec": raw}})
                else:
                    # 0 means no time limit; only the size caps (SystemMaxUse) then bound retention.
                    days = math.inf if secs == 0 else secs / 86400
                    files = jd.get("journal_files", 0)
                    stores.append(_Store(
                        name=phrase("store_journald"), days=days, on_disk=files > 0,
                        evidence={"store": "journald (persistent)", "storage": storage, "max_retention_sec": raw,
                                  "system_max_use": s.get("SystemMaxUse", "default"),
                                  "days": "unlimited by time" if days == math.inf else round(days, 1),
                                  "journal_files_on_disk": files}))
    for st in stores:
        if not st.on_disk:
            st.evidence["not_counted"] = "configured, but nothing of it is on disk"
    evidence = {"stores": [st.evidence for st in stores], "problems": problem_facts}
    long_enough = [st for st in stores if st.on_disk and st.days >= want]
    if long_enough:
        best = long_enough[0]
        return Verdict(status=Status.PASS, message="pass_unlimited" if best.days == math.inf else "pass",
                       params={"store": best.name, "days": best.shown_days()}, evidence=evidence, expected=expected)
    if problems:
        return error(phrase("problems", problems=problems), evidence=evidence, expected=expected)
    # The actual reason first: a store that would be long enough, or the longest one, with nothing on disk.
    empty = sorted((st for st in stores if not st.on_disk), key=lambda st: st.days, reverse=True)
    kept = [st for st in stores if st.on_disk]
    if empty and (empty[0].days >= want or not kept):
        return Verdict(status=Status.FAIL, message="fail_not_on_disk",
                       params={"store": empty[0].name, "period": empty[0].period(), "want": want},
                       evidence=evidence, expected=expected)
    if kept:
        best = max(kept, key=lambda st: st.days)
        return Verdict(status=Status.FAIL, message="fail_short",
                       params={"store": best.name, "days": best.shown_days(), "want": want},
                       evidence=evidence, expected=expected)
    return Verdict(status=Status.FAIL, message="fail_none", evidence=evidence, expected=expected)


@dataclasses.dataclass
class _Store:
    """One place that keeps authentication records: its name (worded per language), how long it keeps them,
    whether anything of it is on disk, and its evidence."""

    name: Phrase
    days: float
    on_disk: bool
    evidence: dict[str, Any]

    def shown_days(self) -> float:
        return round(self.days, 1)

    def period(self) -> Phrase:
        return phrase("unlimited") if self.days == math.inf else phrase("days", days=round(self.days, 1))
