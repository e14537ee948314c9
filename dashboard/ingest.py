"""Receiving one report: checked, stored as received, chained and normalised — or refused with the reason.

One function serves the API and the upload form, so both refuse the same things for the same reasons. The
order of the checks is the order of their cost, and nothing the report says is believed before its signature
is: size cap (before hashing), the claimed SHA-256, the idempotency look-up, the signature against the
organisation's allowed_signers, then the schema. A refusal is recorded in ``Rejection`` (reason, size, token;
never the report's contents) so an organisation's admins notice a broken agent.

A report that arrives twice is stored once: the second delivery (even a concurrent one: the unique constraint
on (organisation, sha256) decides) answers ``created=False``. The chain is checked, never enforced: a report
whose previous report is missing is stored as a ``gap``, healed when the missing one arrives; a report whose
previous report already has another successor is a ``fork``.

Each target's findings are normalised into rows stored once per organisation by content hash
(dashboard.models): an unchanged set is found by its hash and costs nothing; a changed set is a new
``FindingSet`` whose ``SetMember`` rows list the organisation's findings, of which only those never seen
before are written (with their guideline items and evidence). A real host's report changes one evidence
counter nearly every day; writing every finding of the set again for it cost 61,440 B per report (36 Finding
rows), sharing them 4,582 B plus ~1.7 KB when the changed finding is the host's own (benchmarks/dashboard.py,
SQLite, 100 hosts x 60 days). Concurrent deliveries that add the same new finding race on its unique
(organisation, sha256): the loser is retried (``ATTEMPTS``), in hash order so that two never deadlock.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import re
from collections import Counter
from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from agent.errors import ConfigError
from dashboard import storage
from dashboard.models import (
    After8,
    ApiToken,
    Chain,
    Evidence,
    Finding,
    FindingItem,
    FindingSet,
    Host,
    Observation,
    Organisation,
    Prefix8,
    Rejection,
    Report,
    Series,
    SetMember,
    SignatureStatus,
    Source,
)
from dashboard.summary import summarise
from reports.load import parse_report
from reports.model import Report as ReportDoc
from reports.signing import allowed_signers, sshsig
from reports.signing.errors import VerificationError

MAX_SIGNATURE_BYTES = 64 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: Concurrent deliveries of different reports may race on shared rows (series, host, evidence): the loser's
#: transaction is retried this often, and then sees the winner's rows.
ATTEMPTS = 4


class Refused(Exception):
    """The report is not stored: ``status`` is the HTTP answer, ``reason`` (English, from the checks) why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class IngestResult:
    created: bool
    report: Report


def _cut(text: str | None, length: int) -> str:
    """Host-supplied text, cut to its column (PostgreSQL refuses longer values; SQLite would keep them)."""
    return str(_storable(text or ""))[:length]


def _storable(value: Any) -> Any:
    """``value`` with every NUL shown as U+2400 (␀): PostgreSQL text and jsonb cannot hold NUL, and a hostile
    SSID or host name may carry one. Only the normalised rows are changed; the report's bytes stay as sent."""
    if isinstance(value, str):
        return value.replace("\x00", "\u2400") if "\x00" in value else value
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _when(text: str) -> datetime.datetime:
    value = datetime.datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def series_key(doc: ReportDoc) -> str:
    """(operator host, scope): the chain one agent writes into one directory."""
    key = json.dumps([doc.run.operator.get("host", ""), doc.run.scope], ensure_ascii=False)
    if len(key) > 500:
        key = "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
    return key


def host_key(machine_id: str, kind: str, hostname: str) -> str:
    """A machine by its machine id where the report has one, else by kind and host name."""
    if machine_id:
        return _cut("id:" + machine_id, 300)
    key = "name:" + json.dumps([kind, hostname], ensure_ascii=False)
    if len(key) > 300:
        key = "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()
    return key


# --- checks ------------------------------------------------------------------------------------------------

def _check_signature(organisation: Organisation, data: bytes, signature: bytes | None) -> tuple[str, str, str]:
    """(signature status, signer fingerprint, principals) or Refused."""
    if not signature:
        if organisation.accept_unsigned:
            return SignatureStatus.UNSIGNED, "", ""
        raise Refused(422, "the report is unsigned (no signature part); this organisation accepts only reports "
                           "signed with a key in its allowed_signers (mamoru scan --sign-key)")
    if len(signature) > MAX_SIGNATURE_BYTES:
        raise Refused(413, f"the signature is larger than {MAX_SIGNATURE_BYTES} bytes")
    try:
        signers = allowed_signers.parse(organisation.allowed_signers, f"{organisation.slug} allowed_signers")
    except ConfigError as e:
        raise Refused(422, f"the organisation's allowed_signers cannot be read: {e}") from None
    if not signers:
        raise Refused(422, "the organisation has no allowed signers yet: an admin must add the agents' public "
                           "keys before signed reports can be accepted")
    try:
        verified = sshsig.verify(data, signature, signers)
    except VerificationError as e:
        raise Refused(422, f"signature refused: {e}") from None
    return SignatureStatus.VERIFIED, verified.fingerprint, ", ".join(verified.principals)


def _parse(data: bytes) -> tuple[ReportDoc, datetime.datetime, datetime.datetime | None]:
    try:
        doc = parse_report(data, "report")
        started = _when(doc.run.started)
        finished = _when(doc.run.finished) if doc.run.finished else None
    except ConfigError as e:
        raise Refused(422, str(e)) from None
    except ValueError as e:
        raise Refused(422, f"report: a time stamp cannot be read: {e}") from None
    return doc, started, finished


# --- the chain ------------------------------------------------------------------------------------------

def successors(series: Series, sha256: str) -> QuerySet[Report]:
    """The reports of ``series`` that name ``sha256`` as their previous report, through the short-prefix index
    (the same expression as ``report_series_successor``, so both databases use it)."""
    return (Report.objects.annotate(previous8=Prefix8("previous_sha256"), previous_rest=After8("previous_sha256"))
            .filter(series=series, previous8=sha256[:8], previous_rest=sha256[8:]))


def _chain_of(series: Series, previous: str, report_pk: int | None) -> tuple[str, str]:
    if not previous:
        return Chain.FIRST, ""
    if not Report.objects.filter(organisation_id=series.organisation_id, sha256=previous, series=series).exists():
        return Chain.GAP, f"previous report {previous} has not been received"
    others = successors(series, previous).exclude(chain=Chain.GAP)
    if report_pk is not None:
        others = others.exclude(pk=report_pk)
    other = others.order_by("started", "pk").first()
    if other is not None:
        return Chain.FORK, f"previous report {previous} already has another successor {other.sha256}"
    return Chain.LINKED, ""


def _heal(series: Series, arrived: Report) -> None:
    """Reports that were waiting for ``arrived`` (gaps naming it) are linked now (the first) or forks."""
    waiting = list(successors(series, arrived.sha256).filter(chain=Chain.GAP).order_by("started", "pk"))
    for successor in waiting:
        chain, detail = _chain_of(series, successor.previous_sha256, successor.pk)
        Report.objects.filter(pk=successor.pk).update(chain=chain, chain_detail=detail)
        successor.chain = chain  # the next one of ``waiting`` sees this one as a successor now


# --- normalisation ----------------------------------------------------------------------------------------

def _finding_doc(f: Any) -> dict[str, Any]:
    """What a finding says, without what changes on every run (its duration) or names the report's target id."""
    return {"check": f.check, "status": f.status, "severity": f.severity, "guideline": f.guideline,
            "title": f.title, "message": f.message, "remediation": f.remediation, "evidence": f.evidence,
            "expected": f.expected, "waiver": f.waiver, "attestation": f.attestation}


def _evidence_ids(organisation: Organisation, docs: list[dict[str, Any]]) -> dict[str, int]:
    wanted: dict[str, Any] = {}
    for d in docs:
        if d["evidence"] is not None:
            wanted[hashlib.sha256(_canonical(d["evidence"])).hexdigest()] = d["evidence"]
    if not wanted:
        return {}
    known = dict(Evidence.objects.filter(organisation=organisation, sha256__in=list(wanted))
                 .values_list("sha256", "pk"))
    # In hash order: two concurrent ingests insert shared new rows in the same order, so one waits for the
    # other (and is retried, see ATTEMPTS) instead of the two deadlocking.
    missing = [Evidence(organisation=organisation, sha256=h, data=wanted[h]) for h in sorted(wanted) if h not in known]
    if missing:
        Evidence.objects.bulk_create(missing)
        known.update(Evidence.objects.filter(organisation=organisation, sha256__in=[e.sha256 for e in missing])
                     .values_list("sha256", "pk"))
    return known


#: The columns of a Finding that its hash covers: everything it says (evidence by its Evidence hash).
FINDING_FIELDS = ("check_id", "status", "severity", "guideline", "title", "message", "remediation", "expected",
                  "evidence", "waived", "waiver", "attestation")


def finding_sha256(row: dict[str, Any]) -> str:
    """The identity of a stored finding: SHA-256 of its canonical JSON (``FINDING_FIELDS``, ``evidence`` the
    Evidence row's sha256 or None). Computed from the row's values, so migration 0005 gives the rows stored
    before findings were shared the hashes ingest gives them now."""
    return hashlib.sha256(_canonical({k: row[k] for k in FINDING_FIELDS})).hexdigest()


def _finding_set(organisation: Organisation, findings: list[Any]) -> FindingSet:
    """The organisation's set of exactly these findings: found by hash, or made from the findings it already
    has (looked up by hash in one query) plus the ones it has not (with their guideline items)."""
    docs = sorted((_storable(_finding_doc(f)) for f in findings), key=_canonical)
    digest = hashlib.sha256(_canonical(docs)).hexdigest()
    existing = FindingSet.objects.filter(organisation=organisation, sha256=digest).first()
    if existing is not None:
        return existing
    evidence = _evidence_ids(organisation, docs)
    rows: list[dict[str, Any]] = []
    for d in docs:
        ev = hashlib.sha256(_canonical(d["evidence"])).hexdigest() if d["evidence"] is not None else None
        waived = d["status"] == "fail" and isinstance(d["waiver"], dict) \
            and d["waiver"].get("state") in ("valid", "expiring")
        rows.append({"check_id": _cut(d["check"], 32), "status": _cut(d["status"], 16),
                     "severity": _cut(d["severity"], 16), "guideline": d["guideline"], "title": d["title"],
                     "message": d["message"], "remediation": d["remediation"], "expected": d["expected"],
                     "evidence": ev, "waived": waived, "waiver": d["waiver"], "attestation": d["attestation"]})
    items, bad = summarise((r["status"], r["waived"], [_cut(i, 64) for i in r["guideline"]]) for r in rows)
    fs = FindingSet.objects.create(organisation=organisation, sha256=digest,
                                   by_status=dict(Counter(d["status"] for d in docs)), items=items, bad=bad)
    hashes = [finding_sha256(r) for r in rows]
    ids = dict(Finding.objects.filter(organisation=organisation, sha256__in=set(hashes))
               .values_list("sha256", "pk"))
    new = {h: r for h, r in zip(hashes, rows, strict=True) if h not in ids}
    if new:
        created = Finding.objects.bulk_create([  # in hash order, as the evidence above
            Finding(organisation=organisation, sha256=h, **{k: v for k, v in new[h].items() if k != "evidence"},
                    evidence_id=evidence[new[h]["evidence"]] if new[h]["evidence"] else None) for h in sorted(new)])
        if any(f.pk is None for f in created):  # a backend without RETURNING: read the ids back
            created = list(Finding.objects.filter(organisation=organisation, sha256__in=list(new)))
        ids.update((f.sha256, f.pk) for f in created)
        FindingItem.objects.bulk_create([FindingItem(finding=f, item=_cut(item, 64), status=f.status)
                                         for f in created for item in f.guideline])
    SetMember.objects.bulk_create([SetMember(finding_set=fs, finding_id=ids[h]) for h in hashes])
    return fs


def _observe(organisation: Organisation, report: Report, doc: ReportDoc) -> None:
    by_target: dict[str, list[Any]] = {}
    for f in doc.findings:
        by_target.setdefault(f.target, []).append(f)
    for t in doc.targets:
        key = host_key(t.machine_id, t.kind, t.hostname)
        host, made = Host.objects.get_or_create(
            organisation=organisation, key=key,
            defaults={"hostname": _cut(t.hostname, 255), "os": _cut(t.os, 255), "kind": _cut(t.kind, 32),
                      "first_seen": report.started, "last_seen": report.started})
        obs = Observation.objects.create(report=report, host=host, target_id=_cut(t.id, 255),
                                         status=_cut(t.status, 32), error=_storable(t.error or ""),
                                         finding_set=_finding_set(organisation, by_target.get(t.id, [])),
                                         started=report.started)
        if made:
            Host.objects.filter(pk=host.pk).update(latest=obs)
            continue
        changes: dict[str, Any] = {}
        if report.started < host.first_seen:
            changes["first_seen"] = report.started
        if report.started >= host.last_seen:
            changes.update(last_seen=report.started, hostname=_cut(t.hostname, 255), os=_cut(t.os, 255),
                           kind=_cut(t.kind, 32))
        latest = Observation.objects.filter(pk=host.latest_id).values_list("started", flat=True).first() \
            if host.latest_id else None
        if latest is None or report.started >= latest:
            changes["latest"] = obs
        if changes:
            Host.objects.filter(pk=host.pk).update(**changes)


# --- the whole --------------------------------------------------------------------------------------------

def _store(organisation: Organisation, data: bytes, signature: bytes | None, digest: str, doc: ReportDoc,
           started: datetime.datetime, finished: datetime.datetime | None, sig: tuple[str, str, str], *,
           source: str, token: ApiToken | None, user: User | None) -> Report:
    series, _ = Series.objects.get_or_create(organisation=organisation, key=series_key(doc))
    previous = (doc.run.previous or {}).get("sha256", "") or ""
    chain, detail = _chain_of(series, previous, None)
    blob = storage.store(organisation, series, data)
    report = Report.objects.create(
        organisation=organisation, sha256=digest, series=series, blob=blob, signature=signature or None,
        signature_status=sig[0], signer_fingerprint=_cut(sig[1], 100), signer_principals=_cut(sig[2], 500),
        size=len(data), run_id=_cut(doc.run.id, 64), started=started, finished=finished,
        tool_version=_cut(doc.run.tool.get("version"), 64), policy_name=_cut(doc.run.policy.get("name"), 200),
        policy_sha256=_cut(doc.run.policy.get("sha256"), 64), operator_user=_cut(doc.run.operator.get("user"), 200),
        operator_host=_cut(doc.run.operator.get("host"), 255), partial=bool(doc.run.partial),
        previous_sha256=previous, chain=chain, chain_detail=_cut(detail, 500), source=source, token=token,
        uploaded_by=user)
    _heal(series, report)
    head = series.head
    if head is None or started >= head.started:
        Series.objects.filter(pk=series.pk).update(head=report)
    _observe(organisation, report, doc)
    return report


def ingest(organisation: Organisation, report_bytes: bytes, signature_bytes: bytes | None,
           claimed_sha256: str | None, *, source: str = Source.API, token: ApiToken | None = None,
           user: User | AnonymousUser | None = None) -> IngestResult:
    """Check and store one report; ``Refused`` (recorded in ``Rejection``) when it is not accepted."""
    actor = user if isinstance(user, User) else None
    digest = ""
    try:
        if len(report_bytes) > organisation.max_report_bytes:
            raise Refused(413, f"the report is larger than this organisation's cap of "
                               f"{organisation.max_report_bytes} bytes")
        digest = hashlib.sha256(report_bytes).hexdigest()
        if claimed_sha256 is not None:
            claimed = claimed_sha256.strip()
            if not _HEX64.fullmatch(claimed):
                raise Refused(400, "the sha256 part is not 64 lowercase hexadecimal digits")
            if claimed != digest:
                raise Refused(400, "the sha256 part is not the SHA-256 of the report bytes")
        existing = Report.objects.filter(organisation=organisation, sha256=digest).first()
        if existing is not None:
            return IngestResult(created=False, report=existing)
        sig = _check_signature(organisation, report_bytes, signature_bytes)
        doc, started, finished = _parse(report_bytes)
        for attempt in range(ATTEMPTS):
            try:
                with transaction.atomic():
                    report = _store(organisation, report_bytes, signature_bytes, digest, doc, started, finished,
                                    sig, source=source, token=token, user=actor)
                return IngestResult(created=True, report=report)
            except IntegrityError:
                existing = Report.objects.filter(organisation=organisation, sha256=digest).first()
                if existing is not None:  # the same report, delivered concurrently: the other one stored it
                    return IngestResult(created=False, report=existing)
                if attempt == ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")
    except Refused as e:
        if not digest and claimed_sha256 and _HEX64.fullmatch(claimed_sha256.strip()):
            digest = claimed_sha256.strip()
        Rejection.objects.create(organisation=organisation, token=token, sha256=digest, size=len(report_bytes),
                                 reason=_cut(e.reason, 500))
        raise
