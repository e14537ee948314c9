"""OCSF Compliance Finding (class 2003) events, one per finding, as JSON Lines: what a SIEM or security lake
ingests.

JSON Lines (one event per line, ``application/x-ndjson``) rather than one JSON array: SIEM collectors (Splunk
HEC, Elastic/Filebeat, Fluent Bit, Security Lake pipelines) read a stream of events line by line and can tail
or split the file; an array must be read whole before the first event is usable.

The mapping (``ocsf.yaml``): ``compliance.status_id`` carries the result (pass 1 Pass, fail 3 Fail, error
2 Warning "no result for missing information", not_applicable/manual 99 Other with ``compliance.status``
saying which, mamoru's own word in ``compliance.status_code``). The top-level ``status_id`` is triage state
for the consumer: 1 New, or 3 Suppressed for a failure under a waiver in force (reviewed, risk accepted); the
waiver itself is in ``unmapped.waiver`` whatever its state. ``finding_info.uid`` is a UUID made from check
and target id only, so the same finding on the same target keeps its uid across runs; ``metadata.uid`` is
per event. Evidence (already redacted at scan time) goes in ``evidences[].data``; the expected value, the
policy, the target's scan state and the signature status (as checked by ``mamoru report`` now) in
``unmapped``.

An attested finding (an organisation question a person answered: never a machine result) is marked in three
places. OCSF 1.8.0 has no "attestation" field; the nearest are ``compliance.assessments[]`` (an assessment of
an entity or person against criteria: ``name``/``category`` "attestation", ``meets_criteria`` from the
answer, ``uid`` the answers file's line) and an evidence artefact ``evidences[]`` named "attestation" whose
``user.name`` is who declared it and ``data`` when, on what evidence, until when. ``unmapped.attestation``
holds the declaration whole, as the report has it. Validated in tests against the pinned class schema in
``reports/schema/ocsf/``.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import uuid
from importlib import resources
from typing import Any

from agent.config.yamlfile import safe_load
from reports.formats import RenderContext
from reports.formats.texts import in_lang
from reports.model import Finding, Report, TargetRecord

CLASS_UID = 2003
CATEGORY_UID = 2  # Findings
ACTIVITY_CREATE = 1
#: finding_info.uid = uuid5(this, "check\ntarget"): fixed forever, or every consumer sees new findings.
FINDING_NAMESPACE = uuid.UUID("6d616d6f-7275-5f6f-6373-665f66696e64")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@functools.cache
def mapping() -> dict[str, Any]:
    data: dict[str, Any] = safe_load(resources.files("reports.formats").joinpath("ocsf.yaml").read_bytes())
    return data


def finding_uid(check: str, target: str) -> str:
    """Stable across runs: the same check on the same target is the same OCSF finding."""
    return str(uuid.uuid5(FINDING_NAMESPACE, f"{check}\n{target}"))


def _ms(stamp: str) -> int | None:
    try:
        t = dt.datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return None
    if t.tzinfo is None:  # mamoru writes UTC ("Z"); a naive stamp is read as UTC rather than local time
        t = t.replace(tzinfo=dt.UTC)
    return (t - _EPOCH) // dt.timedelta(milliseconds=1)  # exact: no float rounding of .441 s


def os_type(os_name: str) -> dict[str, Any]:
    """OCSF os.type_id/type for a report's ``targets[].os`` words ("Ubuntu 22.04", "Windows 10 Pro")."""
    low = os_name.lower()
    for entry in mapping()["os_types"]:
        if any(re.search(rf"(?<![a-z]){re.escape(word)}(?![a-z])", low) for word in entry["match"]):
            return {"type_id": entry["id"], "type": entry["caption"]}
    return {"type_id": 0, "type": "Unknown"}


def _device(t: TargetRecord) -> dict[str, Any]:
    device: dict[str, Any] = {"type_id": 0, "type": "Unknown", "name": t.hostname or t.id}
    if t.hostname:
        device["hostname"] = t.hostname
    if t.machine_id:
        device["uid"] = t.machine_id
    if t.os:
        device["os"] = {"name": t.os, **os_type(t.os)}
    return device


def _resource(t: TargetRecord | None, target_id: str) -> dict[str, Any]:
    res: dict[str, Any] = {"uid": target_id}
    if t is not None:
        res["name"] = t.hostname or t.id
        res["type"] = t.kind
        if t.hostname and t.kind in mapping()["host_kinds"]:
            res["hostname"] = t.hostname
        if t.tags:
            res["labels"] = [f"{k}={v}" for k, v in sorted(t.tags.items())]
    return res


def event(report: Report, f: Finding, target: TargetRecord | None, lang: str,
          signature: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Compliance Finding event of one finding."""
    m = mapping()
    run = report.run
    time = _ms(run.finished) or _ms(run.started) or 0
    comp = m["compliance_status"][f.status]
    check_sev = m["severity"][f.severity]
    sev = m["informational"] if f.status in m["informational_statuses"] else check_sev
    triage = m["finding_status"]["suppressed" if f.waived else "new"]
    title, message = in_lang(f.title, lang), in_lang(f.message, lang)
    standards = [m["standard"]]
    ev: dict[str, Any] = {
        "activity_id": ACTIVITY_CREATE,
        "activity_name": "Create",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "class_uid": CLASS_UID,
        "class_name": "Compliance Finding",
        "type_uid": CLASS_UID * 100 + ACTIVITY_CREATE,
        "type_name": "Compliance Finding: Create",
        "time": time,
        "severity_id": sev["id"],
        "severity": sev["caption"],
        "status_id": triage["id"],
        "status": triage["caption"],
        "message": message,
        "metadata": {
            "version": m["version"],
            "product": {"name": run.tool.get("name", "mamoru"), "vendor_name": m["vendor"],
                        "version": run.tool.get("version", ""), "lang": lang},
            "uid": str(uuid.uuid5(FINDING_NAMESPACE, f"{run.id}\n{f.check}\n{f.target}")),
            "correlation_uid": run.id,
            "event_code": f.check,
        },
        "finding_info": {"uid": finding_uid(f.check, f.target), "title": title, "desc": message,
                         "created_time": time},
        "compliance": {
            "standards": standards,
            "requirements": list(f.guideline),
            "control": f.check,
            "status_id": comp["id"],
            "status": comp["caption"],
            "status_code": f.status,
            "status_details": [message] if message else [],
            "checks": [{"uid": f.check, "name": title, "severity_id": check_sev["id"],
                        "severity": check_sev["caption"], "status_id": comp["id"], "status": comp["caption"],
                        "standards": standards}],
        },
        "resources": [_resource(target, f.target)],
        "unmapped": {"expected": f.expected, "policy": dict(run.policy)},
    }
    if not ev["compliance"]["status_details"]:
        del ev["compliance"]["status_details"]
    start, end = _ms(run.started), _ms(run.finished)
    if start is not None and end is not None:
        ev["start_time"], ev["end_time"] = start, end
    remediation = in_lang(f.remediation, lang)
    if remediation:
        ev["remediation"] = {"desc": remediation}
    if target is not None:
        ev["unmapped"]["target_status"] = target.status
        if target.kind in m["host_kinds"]:
            ev["device"] = _device(target)
            ev["metadata"]["profiles"] = ["host"]
    if f.evidence is not None:
        ev["evidences"] = [{"name": "evidence", "data": f.evidence}]
    if f.waiver is not None:
        ev["unmapped"]["waiver"] = dict(f.waiver)
    if f.attestation is not None:
        _attest(ev, f)
    if signature is not None:
        ev["unmapped"]["signature"] = signature
    return ev


def _attest(ev: dict[str, Any], f: Finding) -> None:
    """A person's declaration, in the places OCSF 1.8.0 has for it (see the module docstring)."""
    att = {k: str(v) for k, v in (f.attestation or {}).items()}
    declared = {k: att[k] for k in ("at", "evidence", "valid_until", "source") if att.get(k)}
    artefact: dict[str, Any] = {"name": "attestation", "data": declared}
    if att.get("by"):
        artefact["user"] = {"name": att["by"]}
    ev.setdefault("evidences", []).insert(0, artefact)
    assessment: dict[str, Any] = {"name": "attestation", "category": mapping()["attestation_category"],
                                  "meets_criteria": f.status == "pass"}
    if att.get("source"):
        assessment["uid"] = att["source"]
    ev["compliance"]["assessments"] = [assessment]
    ev["unmapped"]["attestation"] = att


def events(report: Report, ctx: RenderContext) -> list[dict[str, Any]]:
    targets = {t.id: t for t in report.targets}
    sig = ctx.signature
    # as ``mamoru report`` checked the report's .sig now, not what the report says of itself
    signature = None if sig is None else {k: v for k, v in (("status", sig.status), ("fingerprint", sig.fingerprint),
                                                              ("principals", list(sig.principals))) if v}
    return [event(report, f, targets.get(f.target), ctx.lang, signature) for f in report.findings]


def _line(ev: dict[str, Any]) -> bytes:
    try:
        return json.dumps(ev, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"
    except UnicodeEncodeError:  # a lone surrogate from undecodable host bytes: escape this event instead
        return json.dumps(ev, ensure_ascii=True, separators=(",", ":")).encode("ascii") + b"\n"


class OcsfFormat:
    name = "ocsf"
    suffix = ".ocsf.jsonl"
    media_type = "application/x-ndjson"

    def render(self, report: Report, ctx: RenderContext) -> bytes:
        return b"".join(_line(ev) for ev in events(report, ctx))


FORMAT = OcsfFormat()
