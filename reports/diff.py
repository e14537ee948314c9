"""What changed between two reports of the same targets: the pure comparison behind ``mamoru diff``.

Findings are matched by (target id, check). The result is a plain JSON document (``DiffDoc``, described by
``reports/schema/diff.schema.json``, ``schema: mamoru-diff/1``) that the terminal renderer and ``--json``
both show, so what a person reads and what a tool ingests never disagree.

What counts as a regression (exit 1) — anything the new report can no longer vouch for that the old one did,
or anything worse. "Could not tell" is never fine:

* a finding that is now ``fail`` (not under a waiver in force) and was not (any status → fail), or whose
  waiver lapsed (waived fail → unwaived fail);
* a finding that is now ``error`` and was not (pass/fail/manual/not_applicable → error);
* ``pass`` → ``manual`` (was verified by the tool, now needs a person);
* a target whose scan got worse (ok → partial or error, partial → error);
* a target that vanished (its findings are not "fixed": nobody looked) and a check that is no longer run
  on a target that is still there.

* a guideline item whose coverage (``summary.coverage``, ``reports/coverage.py``) got worse: covered →
  partly → uncovered → absent, any step to the right. The report no longer vouches for as much of Art. 9 as
  the old one did, whatever the cause — an answer lapsed, a check now ``error``, a question added and not yet
  answered, the organisation or a check left out, or a new target whose checks could not judge the item (that
  target is listed as appeared, not as a regression; the item's coverage is).

Not regressions, but shown: coverage that got better (uncovered → covered), fail → pass (``fixed``), any
other status change (error → pass, pass → not_applicable, fail → not_applicable, …), a new failure under a
waiver in force, evidence that changed under the same status, targets that appeared and checks that were
added (their failures are listed with them: they are new to the comparison, not a step back on a machine).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Literal, TypedDict

from reports.model import STATUSES, Finding, Report, TargetRecord

SCHEMA = "mamoru-diff/1"
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}
#: How far a target's scan went, best first: a step to the right is a regression.
TARGET_STATUS_ORDER = {"ok": 0, "partial": 1, "error": 2}
#: Evidence values longer than this (as compact JSON) are cut in the diff, with the cut said.
VALUE_LIMIT = 200


class ReportInfo(TypedDict):
    file: str
    run_id: str
    finished: str
    tool_version: str
    policy_sha256: str
    scope: str


class Warning_(TypedDict):
    code: Literal["policy_changed", "tool_changed", "scope_changed", "old_is_newer"]
    old: str
    new: str


class Side(TypedDict):
    status: str
    waiver_state: str | None  # None: no waiver
    waived: bool  # a failure under a waiver in force


class Change(TypedDict):
    target: str
    check: str
    severity: str
    title: dict[str, str]
    message: dict[str, str]  # the new report's
    old: Side
    new: Side
    regression: bool


class ValueAdded(TypedDict):
    path: str  # RFC 6901 JSON pointer, under /evidence or /expected
    value: str  # compact JSON, cut at VALUE_LIMIT


class ValueChanged(TypedDict):
    path: str
    old: str
    new: str


class EvidenceChange(TypedDict):
    target: str
    check: str
    severity: str
    status: str
    title: dict[str, str]
    added: list[ValueAdded]
    removed: list[ValueAdded]
    changed: list[ValueChanged]


class Presence(TypedDict):
    target: str
    check: str
    severity: str
    status: str
    waived: bool
    title: dict[str, str]
    regression: bool


class TargetPresence(TypedDict):
    target: str
    hostname: str
    os: str
    status: str
    counts: dict[str, int]  # findings per status
    regression: bool


class TargetChange(TypedDict):
    target: str
    old_status: str
    new_status: str
    old_hostname: str
    new_hostname: str
    machine_changed: bool  # both reports know a machine id, and they differ: perhaps not the same machine
    regression: bool


class CoverageChange(TypedDict):
    item: str  # guideline item id
    title: dict[str, str]  # ja/en, from the guideline; empty strings for an item this mamoru does not know
    old_state: str  # covered | partly | uncovered | absent
    new_state: str
    regression: bool


class DiffDoc(TypedDict):
    schema: str
    old: ReportInfo
    new: ReportInfo
    warnings: list[Warning_]
    regressed: bool
    counts: dict[str, int]
    new_failures: list[Change]
    fixed: list[Change]
    status_changed: list[Change]
    evidence_changed: list[EvidenceChange]
    checks_added: list[Presence]
    checks_removed: list[Presence]
    targets_appeared: list[TargetPresence]
    targets_vanished: list[TargetPresence]
    targets_changed: list[TargetChange]
    coverage_changed: list[CoverageChange]


#: The lists of a DiffDoc, in the order a person reads them (the terminal follows it too).
SECTIONS = ("new_failures", "status_changed", "targets_vanished", "checks_removed", "targets_changed",
            "coverage_changed", "fixed", "evidence_changed", "targets_appeared", "checks_added")
#: summary.coverage states, best first: a step to the right is a regression.
COVERAGE_ORDER = {"covered": 0, "partly": 1, "uncovered": 2, "absent": 3}


def _info(report: Report, file: str) -> ReportInfo:
    return {"file": file, "run_id": report.run.id, "finished": report.run.finished,
            "tool_version": str(report.run.tool.get("version", "")),
            "policy_sha256": str(report.run.policy.get("sha256", "")), "scope": report.run.scope}


def _side(f: Finding) -> Side:
    state = f.waiver.get("state") if f.waiver else None
    return {"status": f.status, "waiver_state": str(state) if state is not None else None, "waived": f.waived}


def is_regression(old: Finding, new: Finding) -> bool:
    """The finding-level rule of the module docstring."""
    if new.status == "fail":
        return not new.waived and (old.status != "fail" or old.waived)
    if new.status == "error":
        return old.status != "error"
    return old.status == "pass" and new.status == "manual"


def _index(report: Report) -> dict[tuple[str, str], Finding]:
    """(target, check) -> finding. A report holds one finding per pair; should one hold two, the first is
    compared and the rest are kept under a numbered check (``IA-01#2``) so nothing drops out unseen."""
    out: dict[tuple[str, str], Finding] = {}
    for f in report.findings:
        key = (f.target, f.check)
        n = 1
        while key in out:
            n += 1
            key = (f.target, f"{f.check}#{n}")
        out[key] = f
    return out


def compact(value: Any, limit: int = VALUE_LIMIT) -> str:
    """A value as one line of JSON, cut at ``limit`` characters with the cut said. Odd values (lone
    surrogates, non-JSON objects) become text rather than an exception: a diff must never crash on evidence."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=repr)
    if len(text) > limit:
        return f"{text[:limit]}… (+{len(text) - limit})"
    return text


def _pointer(parts: list[str]) -> str:
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _flatten(value: Any, parts: list[str], out: dict[str, Any], depth: int = 0) -> None:
    """Leaves of nested objects by JSON pointer; lists and scalars are leaves (a list is compared whole).
    An empty object is a leaf too, so ``{}`` → ``{"a": 1}`` shows as a key added, not as nothing."""
    if isinstance(value, dict) and value and depth < 16:
        for k, v in value.items():
            _flatten(v, [*parts, str(k)], out, depth + 1)
    else:
        out[_pointer(parts)] = value


def value_diff(old: Any, new: Any, root: str) -> tuple[list[ValueAdded], list[ValueAdded], list[ValueChanged]]:
    """Keys added, removed and changed between two JSON values, by pointer under ``root``."""
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    _flatten(old, [root], a)
    _flatten(new, [root], b)
    added: list[ValueAdded] = [{"path": p, "value": compact(b[p])} for p in sorted(b.keys() - a.keys())]
    removed: list[ValueAdded] = [{"path": p, "value": compact(a[p])} for p in sorted(a.keys() - b.keys())]
    changed: list[ValueChanged] = [{"path": p, "old": compact(a[p]), "new": compact(b[p])}
                                   for p in sorted(a.keys() & b.keys()) if not _same(a[p], b[p])]
    return added, removed, changed


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON (``1 == True`` in Python, not in a report)."""
    return bool(a == b) and compact(a, 1 << 30) == compact(b, 1 << 30)


def _counts(report: Report, target: str) -> dict[str, int]:
    c = Counter({s: 0 for s in STATUSES})
    for f in report.findings:
        if f.target == target:
            c[f.status] += 1
    return dict(c)


def _presence(f: Finding, regression: bool) -> Presence:
    return {"target": f.target, "check": f.check, "severity": f.severity, "status": f.status, "waived": f.waived,
            "title": dict(f.title), "regression": regression}


def _target_presence(t: TargetRecord, report: Report, regression: bool) -> TargetPresence:
    return {"target": t.id, "hostname": t.hostname, "os": t.os, "status": t.status,
            "counts": _counts(report, t.id), "regression": regression}


def _warnings(old: Report, new: Report) -> list[Warning_]:
    out: list[Warning_] = []
    pairs: list[tuple[Literal["policy_changed", "tool_changed", "scope_changed"], str, str]] = [
        ("policy_changed", str(old.run.policy.get("sha256", "")), str(new.run.policy.get("sha256", ""))),
        ("tool_changed", str(old.run.tool.get("version", "")), str(new.run.tool.get("version", ""))),
        ("scope_changed", old.run.scope, new.run.scope),
    ]
    for code, a, b in pairs:
        if a != b:
            out.append({"code": code, "old": a, "new": b})
    if old.run.finished and new.run.finished and old.run.finished > new.run.finished:
        out.append({"code": "old_is_newer", "old": old.run.finished, "new": new.run.finished})
    return out


def _sort_key(item: Change | Presence | EvidenceChange) -> tuple[int, int, str, str]:
    """Regressions first, then by severity, then by target and check: a stable order for people and tools."""
    regression = bool(item.get("regression", False))
    return (0 if regression else 1, SEVERITY_ORDER.get(item["severity"], 9), item["target"], item["check"])


def coverage_changes(old: Report, new: Report) -> list[CoverageChange]:
    """Guideline items whose coverage state differs, worse first, then in the guideline's order."""
    from checks.base import guideline_items

    a, b = old.summary()["coverage"], new.summary()["coverage"]
    titles = guideline_items()
    order = list(b) + [k for k in a if k not in b]
    out: list[CoverageChange] = []
    for item in order:
        before, after = a.get(item, {}).get("state", "absent"), b.get(item, {}).get("state", "absent")
        if before == after:
            continue
        title = titles[item].as_dict() if item in titles else {"ja": "", "en": ""}
        out.append({"item": item, "title": title, "old_state": before, "new_state": after,
                    "regression": COVERAGE_ORDER.get(after, 3) > COVERAGE_ORDER.get(before, 3)})
    out.sort(key=lambda c: 0 if c["regression"] else 1)  # stable: guideline order within each group
    return out


def diff_reports(old: Report, new: Report, *, old_file: str = "", new_file: str = "") -> DiffDoc:
    """Compare ``old`` with ``new``: see the module docstring for the classes and what is a regression."""
    a, b = _index(old), _index(new)
    old_targets = {t.id: t for t in old.targets}
    new_targets = {t.id: t for t in new.targets}
    # A finding's target may be missing from ``targets`` in a hand-made report: its findings still count.
    old_ids = set(old_targets) | {t for t, _ in a}
    new_ids = set(new_targets) | {t for t, _ in b}
    both = old_ids & new_ids

    new_failures: list[Change] = []
    fixed: list[Change] = []
    status_changed: list[Change] = []
    evidence_changed: list[EvidenceChange] = []
    for key in sorted(a.keys() & b.keys()):
        fo, fn = a[key], b[key]
        if fo.status != fn.status or _side(fo) != _side(fn):
            change: Change = {"target": fn.target, "check": key[1], "severity": fn.severity, "title": dict(fn.title),
                              "message": dict(fn.message), "old": _side(fo), "new": _side(fn),
                              "regression": is_regression(fo, fn)}
            if fn.status == "fail" and (fo.status != "fail" or change["regression"]):
                new_failures.append(change)
            elif fo.status == "fail" and fn.status == "pass":
                fixed.append(change)
            else:
                status_changed.append(change)
        if fo.status == fn.status:
            ev = value_diff(fo.evidence, fn.evidence, "evidence")
            ex = value_diff(fo.expected, fn.expected, "expected")
            added, removed, changed = ev[0] + ex[0], ev[1] + ex[1], ev[2] + ex[2]
            if added or removed or changed:
                evidence_changed.append({"target": fn.target, "check": key[1], "severity": fn.severity,
                                         "status": fn.status, "title": dict(fn.title), "added": added,
                                         "removed": removed, "changed": changed})

    checks_added = [_presence(b[k], False) for k in sorted(b.keys() - a.keys()) if k[0] in both]
    checks_removed = [_presence(a[k], True) for k in sorted(a.keys() - b.keys()) if k[0] in both]

    def record(tid: str, targets: dict[str, TargetRecord]) -> TargetRecord:
        return targets.get(tid) or TargetRecord(id=tid, kind="", hostname="", os="", status="ok")

    targets_appeared = [_target_presence(record(t, new_targets), new, False) for t in sorted(new_ids - old_ids)]
    targets_vanished = [_target_presence(record(t, old_targets), old, True) for t in sorted(old_ids - new_ids)]
    targets_changed: list[TargetChange] = []
    for tid in sorted(both):
        to, tn = record(tid, old_targets), record(tid, new_targets)
        machine_changed = bool(to.machine_id and tn.machine_id and to.machine_id != tn.machine_id)
        if to.status != tn.status or to.hostname != tn.hostname or machine_changed:
            worse = TARGET_STATUS_ORDER.get(tn.status, 2) > TARGET_STATUS_ORDER.get(to.status, 2)
            targets_changed.append({"target": tid, "old_status": to.status, "new_status": tn.status,
                                    "old_hostname": to.hostname, "new_hostname": tn.hostname,
                                    "machine_changed": machine_changed, "regression": worse})

    for lst in (new_failures, fixed, status_changed, checks_added, checks_removed):
        lst.sort(key=_sort_key)
    evidence_changed.sort(key=_sort_key)
    lists: dict[str, list[Any]] = {
        "new_failures": new_failures, "status_changed": status_changed, "targets_vanished": targets_vanished,
        "checks_removed": checks_removed, "targets_changed": targets_changed, "fixed": fixed,
        "evidence_changed": evidence_changed, "targets_appeared": targets_appeared, "checks_added": checks_added,
        "coverage_changed": coverage_changes(old, new),
    }
    regressions = sum(1 for name in SECTIONS for item in lists[name] if item.get("regression"))
    return {
        "schema": SCHEMA, "old": _info(old, old_file), "new": _info(new, new_file), "warnings": _warnings(old, new),
        "regressed": regressions > 0,
        "counts": {name: len(lists[name]) for name in SECTIONS} | {"regressions": regressions},
        "new_failures": new_failures, "fixed": fixed, "status_changed": status_changed,
        "evidence_changed": evidence_changed, "checks_added": checks_added, "checks_removed": checks_removed,
        "targets_appeared": targets_appeared, "targets_vanished": targets_vanished,
        "targets_changed": targets_changed, "coverage_changed": lists["coverage_changed"],
    }


def render_diff_json(doc: DiffDoc) -> bytes:
    """``--json``: UTF-8, keys in a fixed order, lone surrogates escaped rather than a crash."""
    try:
        return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(doc, ensure_ascii=True, indent=2) + "\n").encode("ascii")
