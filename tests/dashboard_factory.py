"""Report shapes for the dashboard page tests: real ``reports.model`` reports, built in code.

``make_report`` builds a report the way ``mamoru scan`` shapes one (targets, findings with ja/en texts,
guideline items, evidence, waivers, attestations, a chain link) and ``report_bytes`` renders it with the same
JSON writer the agent uses, so the bytes can go through the dashboard's real ingest (signed with
tests/signing_helpers). The pages are then tested on what ingest stored, not on rows written by hand.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from reports.json_report import render_json
from reports.model import Finding, Report, RunInfo, TargetRecord


def text(s: str) -> dict[str, str]:
    return {"ja": f"{s}（日本語）", "en": s}


def finding(check: str, target: str, status: str, *, guideline: tuple[str, ...] = ("MLIT-9-5-1",),
            severity: str = "high", message: str | None = None, evidence: Any = None, expected: Any = None,
            waiver: dict[str, Any] | None = None, attestation: dict[str, Any] | None = None) -> Finding:
    return Finding(check=check, target=target, status=status, severity=severity, guideline=list(guideline),
                   title=text(f"title of {check}"), message=text(message or f"{check} is {status}"),
                   remediation=text(f"fix {check}"), evidence=evidence if evidence is not None else {"n": 1},
                   expected=expected, duration_ms=1.0, waiver=waiver, attestation=attestation)


def target(tid: str, hostname: str, *, machine_id: str = "", os: str = "Debian GNU/Linux 12", kind: str = "local",
           status: str = "ok") -> TargetRecord:
    return TargetRecord(id=tid, kind=kind, hostname=hostname, os=os, status=status, machine_id=machine_id,
                        reason=None if status == "ok" else "unreachable",
                        error=None if status == "ok" else "connection refused")


def make_report(started: dt.datetime, targets: list[TargetRecord], findings: list[Finding], *,
                previous: Report | None = None, scope: str = "", operator_host: str = "op-pc",
                run_id: str | None = None) -> Report:
    """A report started at ``started``; ``previous``: the report it follows in its chain."""
    stamp = started.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (started + dt.timedelta(seconds=30)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    prev = None
    if previous is not None:
        prev = {"sha256": hashlib.sha256(report_bytes(previous)).hexdigest(), "run_id": previous.run.id,
                "file": "previous.json"}
    run = RunInfo(id=run_id or f"run-{stamp}-{operator_host}", started=stamp, finished=end,
                  tool={"name": "mamoru", "version": "0.1.0"}, policy={"name": "default", "sha256": "0" * 64},
                  operator={"user": "auditor", "host": operator_host}, scope=scope, previous=prev)
    return Report(run=run, targets=targets, findings=findings)


def report_bytes(report: Report) -> bytes:
    return render_json(report)


def store(org: Any, report: Report, *, chain: str = "", signature_status: str = "verified") -> Any:
    """Rows as ingest writes them, for shapes real ingest cannot produce (and until it exists): the series,
    the report, one host + observation per target, finding sets, findings, guideline items, evidence."""
    import json

    from dashboard import models as m
    from dashboard.ingest import finding_sha256

    data = report_bytes(report)
    sha = hashlib.sha256(data).hexdigest()
    run = report.run
    series, _ = m.Series.objects.get_or_create(organisation=org, key=f"{run.operator.get('host', '')}\n{run.scope}")
    prev = (run.previous or {}).get("sha256", "")
    if not chain:
        if not prev:
            chain = m.Chain.FIRST
        elif not m.Report.objects.filter(organisation=org, sha256=prev).exists():
            chain = m.Chain.GAP
        elif m.Report.objects.filter(organisation=org, previous_sha256=prev).exists():
            chain = m.Chain.FORK
        else:
            chain = m.Chain.LINKED
    blob = m.Blob.objects.create(organisation=org, codec="raw", data=data, raw_size=len(data))
    started = dt.datetime.fromisoformat(run.started)
    row = m.Report.objects.create(
        organisation=org, sha256=sha, series=series, blob=blob, signature=b"sig" if signature_status == "verified"
        else None, signature_status=signature_status, size=len(data), run_id=run.id, started=started,
        finished=dt.datetime.fromisoformat(run.finished), tool_version="0.1.0", policy_name="default",
        operator_user="auditor", operator_host=str(run.operator.get("host", "")), previous_sha256=prev,
        chain=chain, source=m.Source.API)
    series.head = row
    series.save()
    for t in report.targets:
        mine = [f for f in report.findings if f.target == t.id]
        host, created = m.Host.objects.get_or_create(
            organisation=org, key=t.machine_id or t.hostname,
            defaults={"hostname": t.hostname, "os": t.os, "kind": t.kind, "first_seen": started,
                      "last_seen": started})
        fs = None
        if t.status != "error" or mine:
            canon = json.dumps([f.to_dict() | {"target": "", "duration_ms": 0} for f in mine], sort_keys=True)
            fs_sha = hashlib.sha256(canon.encode()).hexdigest()
            fs, fresh = m.FindingSet.objects.get_or_create(
                organisation=org, sha256=fs_sha,
                defaults={"by_status": {s: sum(1 for f in mine if f.status == s) for s in
                                        ("pass", "fail", "error", "not_applicable", "manual")}})
            if fresh:
                for f in mine:
                    ev = None
                    if f.evidence is not None:
                        ev_sha = hashlib.sha256(json.dumps(f.evidence, sort_keys=True).encode()).hexdigest()
                        ev, _ = m.Evidence.objects.get_or_create(organisation=org, sha256=ev_sha,
                                                                 defaults={"data": f.evidence})
                    row = {"check_id": f.check, "status": f.status, "severity": f.severity,
                           "guideline": f.guideline, "title": f.title, "message": f.message,
                           "remediation": f.remediation, "expected": f.expected, "waived": f.waived,
                           "waiver": f.waiver, "attestation": f.attestation}
                    fr, new = m.Finding.objects.get_or_create(
                        organisation=org, sha256=finding_sha256(row | {"evidence": ev.sha256 if ev else None}),
                        defaults=row | {"evidence": ev})
                    m.SetMember.objects.create(finding_set=fs, finding=fr)
                    for item in f.guideline if new else ():
                        m.FindingItem.objects.create(finding=fr, item=item, status=f.status)
        obs = m.Observation.objects.create(report=row, host=host, target_id=t.id, status=t.status,
                                           error=t.error or "", finding_set=fs, started=started)
        if created or started >= host.last_seen:
            host.hostname, host.os, host.kind = t.hostname, t.os, t.kind
            host.last_seen = started
            host.latest = obs
        host.first_seen = min(host.first_seen, started)
        host.save()
    return row
