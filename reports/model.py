"""The report model, the one shape every renderer, signer and the dashboard read.

Field names are a contract (scripts and the compliance dashboard depend on
them); ``SCHEMA_VERSION`` changes when they do, and
``reports/schema/report.schema.json`` describes them.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

SCHEMA_VERSION = "mamoru-report/1"
STATUSES = ("pass", "fail", "error", "not_applicable", "manual")
#: Waiver states under which a failure does not count in the exit code (``expiring``: valid, ends within 14 days).
WAIVER_IN_FORCE = ("valid", "expiring")


@dataclasses.dataclass(kw_only=True)
class TargetRecord:
    id: str
    kind: str
    hostname: str
    os: str
    status: str  # ok | partial | error
    error: str | None = None
    machine_id: str = ""
    #: Why it is not ok, as a code: unreachable, auth_failed, host_key_unknown, host_key_changed, timeout,
    #: sudo_refused, connection_lost, partial, interrupted, error; platform_unknown and nothing_applicable
    #: (reached, but nothing could be judged on it). None when ok.
    reason: str | None = None
    tags: dict[str, str] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(kw_only=True)
class Finding:
    check: str
    target: str
    status: str
    severity: str
    guideline: list[str]
    title: dict[str, str]
    message: dict[str, str]
    remediation: dict[str, str]
    evidence: Any
    expected: Any
    duration_ms: float
    #: An accepted risk that covers this finding (``--waivers``), as applied at scan time:
    #: ``{"reason", "approver", "expires" (YYYY-MM-DD), "state" (valid | expiring | expired), "source"
    #: (file:line)}``. The status stays what the facts say; only ``exit_code`` reads ``state``.
    waiver: dict[str, Any] | None = None
    #: A person's declaration behind this finding (an organisation question answered with ``--answers``):
    #: ``{"by", "at" (YYYY-MM-DD), "evidence", "valid_until" (YYYY-MM-DD), "source" (file:line)}``; None for
    #: every machine result. A finding that carries one was never judged by mamoru.
    attestation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def waived(self) -> bool:
        """A failure whose waiver is in force: it stays ``fail`` in every format, but does not fail the run."""
        return self.status == "fail" and self.waiver is not None and self.waiver.get("state") in WAIVER_IN_FORCE


@dataclasses.dataclass(kw_only=True)
class RunInfo:
    id: str
    started: str
    finished: str
    tool: dict[str, str]
    policy: dict[str, str]
    operator: dict[str, str]
    scope: str = ""
    partial: bool = False
    previous: dict[str, str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(kw_only=True)
class Report:
    run: RunInfo
    targets: list[TargetRecord]
    findings: list[Finding]

    def summary(self) -> dict[str, Any]:
        by_status = Counter({s: 0 for s in STATUSES})
        by_item: dict[str, Counter[str]] = {}
        for f in self.findings:
            by_status[f.status] += 1
            for item in f.guideline:
                by_item.setdefault(item, Counter({s: 0 for s in STATUSES}))[f.status] += 1
        from reports.coverage import coverage

        return {
            "by_status": dict(by_status),
            "by_guideline": {k: dict(v) for k, v in sorted(by_item.items())},
            "coverage": coverage(self.findings, self.targets),
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Report:
        """The model of a report document that ``reports.load`` has already validated against the schema."""
        run = RunInfo(**_known(RunInfo, doc["run"]))
        targets = [TargetRecord(**_known(TargetRecord, t)) for t in doc["targets"]]
        findings = [Finding(**_known(Finding, f)) for f in doc["findings"]]
        return cls(run=run, targets=targets, findings=findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "run": self.run.to_dict(),
            "targets": [t.to_dict() for t in self.targets],
            "findings": [f.to_dict() for f in self.findings],
            "summary": self.summary(),
        }

    @property
    def has_failures(self) -> bool:
        """A failure that needs action: one under a waiver in force is accepted risk, not a failed run."""
        return any(f.status == "fail" and not f.waived for f in self.findings)

    @property
    def has_unjudged(self) -> bool:
        """Something asked for could not be judged: a target could not be scanned, or a finding is ``error``."""
        return any(t.status == "error" for t in self.targets) or any(f.status == "error" for f in self.findings)

    def exit_code(self) -> int:
        """1 a finding failed · 3 nothing failed, but something could not be judged · 0 every requested check
        was judged on every target and none failed. A finding that failed wins: it needs action whatever else
        happened. An ``error`` is never a 0: "could not tell" must not read as a clean bill."""
        if self.has_failures:
            return 1
        if self.has_unjudged:
            return 3
        return 0


def _known(cls: type, doc: dict[str, Any]) -> dict[str, Any]:
    """The fields ``cls`` has: a report from a newer mamoru may carry more, which this one cannot show."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in doc.items() if k in names}
