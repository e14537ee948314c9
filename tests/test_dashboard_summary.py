"""The overview's numbers come from per-finding-set summaries kept at ingest (dashboard.summary): they must be
exactly what counting every latest finding's guideline items in SQL gives, for real reports with failures,
waivers, errors and an unreachable host — on SQLite and, in the rerun, PostgreSQL."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from django.core.management import call_command

from dashboard import queries
from dashboard.ingest import ingest
from dashboard.models import FindingItem, FindingSet, Host, Organisation
from tests.dashboard_reports import SeriesMaker, Signer

pytestmark = pytest.mark.django_db


def _status(doc: dict[str, Any], check: str, status: str, **more: Any) -> None:
    for f in doc["findings"]:
        if f["check"] == check and f["target"] == "local":
            f["status"] = status
            f.update(more)


def _waived(doc: dict[str, Any]) -> None:
    _status(doc, "IA-01", "fail", waiver={"reason": "移行中", "approver": "課長", "state": "valid",
                                          "source": "waivers.yaml:3", "expires": "2099-01-01"})
    _status(doc, "AC-01", "error")


def _unreachable(doc: dict[str, Any]) -> None:
    doc["findings"] = [f for f in doc["findings"] if f["target"] != "local"]
    for t in doc["targets"]:
        if t["kind"] == "local":
            t["status"], t["error"] = "error", "connection refused"


def reference_grid(org: Organisation) -> dict[str, dict[str, int]]:
    """Item → column counts and non-compliant hosts, counted row by row from FindingItem (no summaries)."""
    out: dict[str, dict[str, int]] = {}
    for host in Host.objects.filter(organisation=org).select_related("latest"):
        fs = host.latest.finding_set_id if host.latest else None
        if fs is None:
            continue
        bad_items: set[str] = set()
        for row in FindingItem.objects.filter(finding__finding_sets=fs).values("item", "status", "finding__waived"):
            acc = out.setdefault(row["item"], Counter())
            col = ("waived" if row["finding__waived"] else "fail") if row["status"] == "fail" else row["status"]
            acc[col] += 1
            if (row["status"] == "fail" and not row["finding__waived"]) or row["status"] in ("error", "manual"):
                bad_items.add(row["item"])
        for item in {r["item"] for r in FindingItem.objects.filter(finding__finding_sets=fs).values("item")}:
            out[item]["hosts"] += 1
            out[item]["bad"] += item in bad_items
    return out


def test_grid_from_summaries_equals_counting_every_finding() -> None:
    signer = Signer()
    org = Organisation.objects.create(slug="s", name="S", allowed_signers=signer.allowed)
    changes = [None, _waived, None, _unreachable, lambda d: _status(d, "IA-01", "pass")]
    for n, change in enumerate(changes):
        made = SeriesMaker(signer, operator_host=f"pc-{n}", seed=n).make(0, previous=None, change=change)
        ingest(org, made.data, made.sig, made.sha256)
    grid = {r["item"]: r for r in queries.grid(org)}
    ref = reference_grid(org)
    assert set(grid) == set(ref) and ref
    for item, acc in ref.items():
        assert grid[item]["hosts"] == acc["hosts"], item
        assert grid[item]["compliant"] == acc["hosts"] - acc["bad"], item
        assert {s: n for s, n in grid[item]["counts"].items() if n} == {
            s: n for s, n in acc.items() if s not in ("hosts", "bad") and n}, item
    assert any(r["counts"]["waived"] for r in grid.values())
    overall = queries.overall(org)
    assert overall["hosts"] == Host.objects.filter(organisation=org).count()
    # the unreachable pc-3's local host has no findings in its latest report: never judged, never compliant
    assert overall["judged"] < overall["hosts"]


@pytest.mark.django_db(transaction=True)
def test_migration_fills_summaries_of_sets_stored_before_them() -> None:
    signer = Signer()
    org = Organisation.objects.create(slug="m", name="M", allowed_signers=signer.allowed)
    made = SeriesMaker(signer).make(0, previous=None, change=_waived)
    ingest(org, made.data, made.sig, made.sha256)
    before = {fs.pk: (fs.items, fs.bad) for fs in FindingSet.objects.filter(organisation=org)}
    assert any(items for items, _ in before.values())
    FindingSet.objects.filter(organisation=org).update(items={}, bad=False)
    call_command("migrate", "dashboard", "0002", verbosity=0)
    call_command("migrate", "dashboard", verbosity=0)
    after = {fs.pk: (fs.items, fs.bad) for fs in FindingSet.objects.filter(organisation=org)}
    assert after == before


def _assert_grid_is_reference(org: Organisation) -> dict[str, Any]:
    grid = {r["item"]: r for r in queries.grid(org)}
    ref = reference_grid(org)
    assert set(grid) == set(ref) and ref
    for item, acc in ref.items():
        assert (grid[item]["hosts"], grid[item]["compliant"]) == (acc["hosts"], acc["hosts"] - acc["bad"]), item
    return grid


def test_grid_follows_new_reports_through_the_process_caches() -> None:
    """The overview keeps what it read of immutable finding sets and of one mix of latest sets: a host whose
    new report changes its latest set must change the numbers at once, and going back must give the old ones."""
    signer = Signer()
    org = Organisation.objects.create(slug="c", name="C", allowed_signers=signer.allowed)
    makers = [SeriesMaker(signer, operator_host=f"pc-{n}", seed=n) for n in range(3)]
    for m in makers:
        made = m.make(0, previous=None)
        ingest(org, made.data, made.sig, made.sha256)
    before = _assert_grid_is_reference(org)
    assert queries.overall(org)["compliant"] == queries.overall(org)["compliant"]
    broken = makers[0].make(1, change=_waived)  # IA-01 waived, AC-01 error: pc-0 no longer compliant on AC
    ingest(org, broken.data, broken.sig, broken.sha256)
    after = _assert_grid_is_reference(org)
    assert after != before
    fixed = makers[0].make(2)  # back to day 0's findings: the first mix again, answered from the cache
    ingest(org, fixed.data, fixed.sig, fixed.sha256)
    again = _assert_grid_is_reference(org)
    assert again == before
