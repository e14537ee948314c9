"""Migration 0005 (findings shared between finding sets) on a database with data: SQLite and, in the rerun,
PostgreSQL. Findings stored one per set at 0004 keep their sets; copies within an organisation collapse to one
row per (organisation, hash), the hash ingest gives them; backwards, each set gets its own copies again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from dashboard import queries
from dashboard.ingest import finding_sha256, ingest
from dashboard.models import Finding, FindingItem, FindingSet, Host, Organisation, SetMember
from tests.dashboard_reports import SeriesMaker, Signer

pytestmark = pytest.mark.django_db(transaction=True)  # PostgreSQL refuses to ALTER tables with pending checks

BEFORE = [("dashboard", "0004_lean_indexes")]
AFTER = [("dashboard", "0005_finding_dedup")]


def migrate(targets: list[tuple[str, str]]) -> Any:
    """Migrate the test database to TARGETS; returns the historical apps there."""
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor.loader.project_state(targets).apps


def migrate_to_latest() -> None:
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes("dashboard"))


@pytest.fixture(autouse=True)
def latest_afterwards() -> Iterator[None]:
    """Every test here leaves the database at the newest migration, whatever it migrated to: the tests after
    these ones write rows with the current models."""
    try:
        yield
    finally:
        migrate_to_latest()


@pytest.fixture
def at_0004() -> Any:
    return migrate(BEFORE)


def _finding(apps: Any, fs: Any, check: str, status: str, evidence: Any = None, **more: Any) -> Any:
    Finding = apps.get_model("dashboard", "Finding")
    FindingItem = apps.get_model("dashboard", "FindingItem")
    f = Finding.objects.create(finding_set=fs, check_id=check, status=status, severity="high",
                               guideline=["MLIT-9-5-1", "MLIT-9-2-1"], title={"ja": "題", "en": "title"},
                               message={"ja": "本文", "en": "text"}, remediation={"ja": "直す", "en": "fix"},
                               expected=None, evidence=evidence, waived=False, **more)
    for item in f.guideline:
        FindingItem.objects.create(finding=f, item=item, status=status)
    return f


def test_findings_of_0004_collapse_per_organisation_and_keep_their_sets(at_0004: Any) -> None:
    apps = at_0004
    Org = apps.get_model("dashboard", "Organisation")
    FindingSetOld = apps.get_model("dashboard", "FindingSet")
    EvidenceOld = apps.get_model("dashboard", "Evidence")
    a, b = Org.objects.create(slug="ma", name="A"), Org.objects.create(slug="mb", name="B")
    ev = EvidenceOld.objects.create(organisation=a, sha256="e" * 64, data={"processes_seen": 3})
    monday = FindingSetOld.objects.create(organisation=a, sha256="1" * 64, by_status={"pass": 2})
    tuesday = FindingSetOld.objects.create(organisation=a, sha256="2" * 64, by_status={"pass": 1, "fail": 1})
    other = FindingSetOld.objects.create(organisation=b, sha256="1" * 64, by_status={"pass": 1})
    same = [_finding(apps, fs, "LG-01", "pass", ev) for fs in (monday, tuesday)]
    _finding(apps, monday, "AC-01", "pass")
    _finding(apps, tuesday, "AC-01", "fail")
    _finding(apps, other, "AC-01", "pass")  # the same as monday's AC-01, but another organisation's
    twice = [_finding(apps, monday, "PM-01", "manual") for _ in range(2)]  # listed twice in one set

    migrate(AFTER)

    assert Finding.objects.filter(organisation_id=a.pk).count() == 4  # LG-01, AC-01 pass, AC-01 fail, PM-01
    assert Finding.objects.filter(organisation_id=b.pk).count() == 1
    lg = Finding.objects.get(organisation_id=a.pk, check_id="LG-01")
    assert lg.pk == same[0].pk and not Finding.objects.filter(pk=same[1].pk).exists()
    assert lg.evidence_id == ev.pk and lg.items.count() == 2  # the copy's items went with the copy
    assert FindingItem.objects.count() == 5 * 2
    pm = Finding.objects.get(pk=twice[0].pk)

    def listed(fs: Any) -> list[tuple[str, str]]:
        return [(f.check_id, f.status) for f in
                Finding.objects.filter(finding_sets=fs.pk).order_by("check_id", "id")]

    assert listed(monday) == [("AC-01", "pass"), ("LG-01", "pass"), ("PM-01", "manual"), ("PM-01", "manual")]
    assert listed(tuesday) == [("AC-01", "fail"), ("LG-01", "pass")]
    assert listed(other) == [("AC-01", "pass")]
    assert SetMember.objects.filter(finding_id=pm.pk).count() == 2
    assert set(Finding.objects.get(pk=lg.pk).finding_sets.values_list("pk", flat=True)) == {monday.pk, tuesday.pk}
    for f in Finding.objects.select_related("evidence"):  # the hash ingest gives the same finding
        row = {k: getattr(f, k) for k in ("check_id", "status", "severity", "guideline", "title", "message",
                                          "remediation", "expected", "waived", "waiver", "attestation")}
        assert f.sha256 == finding_sha256(row | {"evidence": f.evidence.sha256 if f.evidence else None})


def _sets(org: Organisation) -> dict[str, list[str]]:
    return {fs.sha256: [f.sha256 for f in Finding.objects.filter(finding_sets=fs).order_by("check_id", "sha256")]
            for fs in FindingSet.objects.filter(organisation=org)}


def test_ingested_reports_survive_a_round_trip_through_0004() -> None:
    """Real reports ingested with shared findings, migrated back to 0004 (one copy per set) and forward again:
    the same sets with the same findings, each finding once; pages read them as before."""
    signer = Signer()
    org = Organisation.objects.create(slug="rt", name="RT", allowed_signers=signer.allowed)
    series = SeriesMaker(signer)

    def counter(value: int) -> Any:
        def change(doc: dict[str, Any]) -> None:
            f = next(f for f in doc["findings"] if f["target"] == "local" and isinstance(f["evidence"], dict))
            f["evidence"] = {**f["evidence"], "processes_seen": value}
        return change

    for day in range(3):
        made = series.make(day, change=counter(day))
        ingest(org, made.data, made.sig, made.sha256)
    before = _sets(org)
    findings, members = Finding.objects.count(), SetMember.objects.count()
    assert members > findings  # shared

    apps = migrate(BEFORE)
    try:
        OldFinding = apps.get_model("dashboard", "Finding")
        assert OldFinding.objects.count() == members  # one copy per set
        assert OldFinding.objects.filter(finding_set__isnull=True).count() == 0
    finally:
        migrate(AFTER)
    assert _sets(org) == before
    assert (Finding.objects.count(), SetMember.objects.count()) == (findings, members)
    host = Host.objects.get(organisation=org, kind="local")
    assert [f.sha256 for f in sorted(queries.findings_of(host.latest), key=lambda f: (f.check_id, f.sha256))] \
        == before[host.latest.finding_set.sha256]  # type: ignore[union-attr]
