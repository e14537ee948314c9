"""What the organisation pages ask the database, shaped for 1,000 hosts × 365 daily reports.

Rules every query here keeps, because the overview must answer in well under 200 ms at that size:

- "Now" is ``Host.latest``: one observation per host, kept by ingest. Nothing walks a host's history to find
  its current state.
- Counting happens in SQL (GROUP BY over FindingItem/Finding joined from the hosts' latest observations);
  Python receives one row per guideline item or per check, never one row per finding.
- The trend (a year of days) reads :class:`~dashboard.models.DailyItemSummary`: ~30 rows per day, derived
  from Observation + FindingSet by :func:`refresh_daily` for the days that new reports touched since the last
  look (a watermark on Report ids), so a request recomputes at most the few days that changed.
- Every query starts from the organisation the view got from ``dashboard.access.organisation_for``; objects
  named in a URL are looked up through it, so another organisation's id is simply not found.

Compliance of one host on one guideline item: it has findings for the item and none of them is an unwaived
``fail``, an ``error`` (mamoru could not tell: never counted as fine) or an open ``manual`` question.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterator
from typing import Any, Generic, NamedTuple, TypedDict, TypeVar
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Count, Exists, F, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from dashboard.models import (
    Chain,
    DailyItemSummary,
    Finding,
    FindingSet,
    Host,
    Observation,
    Organisation,
    Report,
    SetMember,
    SummaryWatermark,
)

TOKYO = ZoneInfo("Asia/Tokyo")
_K = TypeVar("_K")
_V = TypeVar("_V")
#: The grid's columns: a failure under a waiver in force is its own column (accepted risk, still a failure).
GRID_STATUSES = ("fail", "waived", "error", "manual", "pass", "not_applicable")
#: Days of trend the overview draws.
TREND_DAYS = 365

def _rows(qs: Any) -> list[dict[str, Any]]:
    """A values() queryset as plain dicts (its typed rows vary with every annotation)."""
    return [dict(r) for r in qs]


def _bad(prefix: str) -> Q:
    """A finding (through ``prefix``) that makes its host non-compliant: unwaived fail, error, open manual."""
    return (Q(**{f"{prefix}status": "fail", f"{prefix}waived": False})
            | Q(**{f"{prefix}status__in": ("error", "manual")}))


def _bad_item(finding: str, item: str) -> Q:
    """The same, for a guideline item row reached through ``item`` whose finding is reached through ``finding``."""
    return (Q(**{f"{item}status": "fail", f"{finding}waived": False})
            | Q(**{f"{item}status__in": ("error", "manual")}))


def _status_q(finding: str, status: str) -> Q:
    """One grid column as a condition on a finding reached through ``finding``."""
    if status == "fail":
        return Q(**{f"{finding}status": "fail", f"{finding}waived": False})
    if status == "waived":
        return Q(**{f"{finding}status": "fail", f"{finding}waived": True})
    return Q(**{f"{finding}status": status})


@functools.cache
def guideline_titles() -> dict[str, dict[str, str]]:
    """Item id → {ja, en}, in the guideline's order (checks/meta/_guideline.yaml)."""
    from checks.base import guideline_items

    return {k: v.as_dict() for k, v in guideline_items().items()}


def item_order(items: list[str]) -> list[str]:
    known = list(guideline_titles())
    rank = {k: i for i, k in enumerate(known)}
    return sorted(items, key=lambda k: (rank.get(k, len(rank)), k))


# ---------------------------------------------------------------- overview


class GridRow(TypedDict):
    item: str
    title: dict[str, str]
    counts: dict[str, int]  # findings (host × check) per GRID_STATUSES column
    hosts: int  # hosts whose latest findings touch the item
    compliant: int
    share: float | None  # compliant / hosts


class Overall(TypedDict):
    hosts: int  # every host of the organisation
    judged: int  # hosts whose latest observation has findings
    compliant: int
    share: float | None


def _latest_hosts(org: Organisation) -> QuerySet[Host]:
    return Host.objects.filter(organisation=org, latest__finding_set__isnull=False)


def _latest_ids(org: Organisation) -> list[int]:
    """The ids of every host's latest observation (one short query; a list, so the next query looks them up
    by primary key instead of joining the year of observations)."""
    return [i for i in Host.objects.filter(organisation=org).values_list("latest_id", flat=True) if i is not None]


#: A finding set is named by its id and its content hash.
SetKey = tuple[int, str]


def latest_sets(org: Organisation) -> Counter[SetKey]:
    """(finding set id, content hash) → how many hosts have it as their latest (one query through Host.latest)."""
    return Counter((i, h) for i, h in Host.objects.filter(organisation=org, latest__finding_set__isnull=False)
                   .values_list("latest__finding_set_id", "latest__finding_set__sha256") if i is not None)


class _SetSummary(NamedTuple):
    items: tuple[tuple[str, bool, tuple[int, ...]], ...]  # (item, bad, counts in GRID_STATUSES order)
    bad: bool
    judged: bool  # the set has findings at all


class _Totals(NamedTuple):
    by_item: dict[str, tuple[int, int, tuple[int, ...]]]  # item → (hosts, bad hosts, counts per column)
    judged: int
    bad: int


class _Lru(Generic[_K, _V]):
    """A small least-recently-used map: what this process has already read of immutable rows."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[_K, _V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: _K) -> _V | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: _K, value: _V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


# Finding sets never change once stored, and a set's content hash fixes its summary: what the overview read of
# a set (id + hash, so a reused id can never answer for other content) is kept by the process, and so is the
# sum over one exact mix of latest sets. At 1,000 hosts that halves the overview (benchmarks/dashboard.py:
# the sets' JSON decoding and the per-set sum were ~70 of ~140 ms). Bounded: ~5 KB per set.
_SETS: _Lru[SetKey, _SetSummary] = _Lru(20_000)
_TOTALS: _Lru[frozenset[tuple[SetKey, int]], _Totals] = _Lru(64)


def _digest(items: dict[str, Any], bad: bool, by_status: dict[str, Any]) -> _SetSummary:
    rows = []
    for item, summary in (items or {}).items():
        counts = summary.get("counts") or {}
        rows.append((str(item), bool(summary.get("bad")), tuple(int(counts.get(s, 0)) for s in GRID_STATUSES)))
    return _SetSummary(tuple(rows), bool(bad), bool(by_status))


def _summaries(keys: list[SetKey]) -> dict[SetKey, _SetSummary]:
    """The summary (dashboard.summary, kept at ingest) of each set; only those this process has not read yet
    are fetched."""
    out: dict[SetKey, _SetSummary] = {}
    missing: dict[int, SetKey] = {}
    for key in keys:
        hit = _SETS.get(key)
        if hit is None:
            missing[key[0]] = key
        else:
            out[key] = hit
    if missing:
        rows = FindingSet.objects.filter(pk__in=list(missing)).values_list("pk", "sha256", "items", "bad",
                                                                           "by_status")
        for pk, sha, items, bad, by_status in rows:
            key = (pk, sha)
            if missing.get(pk) != key:
                continue  # not the set that was asked for (it changed between the two queries): not cached
            out[key] = _digest(items, bad, by_status)
            _SETS.put(key, out[key])
    return out


def _totals(weights: Counter[SetKey]) -> _Totals:
    """Each distinct latest set's summary weighted by how many hosts have it now, summed per item."""
    mix = frozenset(weights.items())
    hit = _TOTALS.get(mix)
    if hit is not None:
        return hit
    width = len(GRID_STATUSES)
    acc: dict[str, list[int]] = {}
    judged = bad = 0
    for key, s in _summaries(list(weights)).items():
        w = weights[key]
        if s.judged:
            judged += w
            bad += w if s.bad else 0
        for item, item_bad, counts in s.items:
            a = acc.get(item)
            if a is None:
                a = acc[item] = [0] * (width + 2)
            a[0] += w
            if item_bad:
                a[1] += w
            for i in range(width):
                a[2 + i] += w * counts[i]
    totals = _Totals({k: (a[0], a[1], tuple(a[2:])) for k, a in acc.items()}, judged, bad)
    _TOTALS.put(mix, totals)
    return totals


def grid(org: Organisation, weights: Counter[SetKey] | None = None) -> list[GridRow]:
    """Guideline item × status over every host's latest observation.

    Hosts that are unchanged share finding sets, and a finding set's counts are the same whoever has it: each
    distinct latest set's summary (computed once, at ingest) is weighted by how many hosts have it now — one
    small row per set instead of every finding's guideline items. ``weights``: :func:`latest_sets`, when the
    caller has it already."""
    weights = latest_sets(org) if weights is None else weights
    by_item = _totals(weights).by_item
    titles = guideline_titles()
    out: list[GridRow] = []
    for item in item_order(list(by_item)):
        hosts, bad, counts = by_item[item]
        compliant = hosts - bad
        out.append({"item": item, "title": titles.get(item, {"ja": "", "en": ""}),
                    "counts": dict(zip(GRID_STATUSES, counts, strict=True)), "hosts": hosts,
                    "compliant": compliant, "share": compliant / hosts if hosts else None})
    return out


def overall(org: Organisation, weights: Counter[SetKey] | None = None) -> Overall:
    """Hosts, hosts judged (their latest report has findings for them) and compliant on every item. A host
    whose latest report has no findings for it (unreachable, refused) was not judged: never compliant."""
    weights = latest_sets(org) if weights is None else weights
    totals = _totals(weights)
    total = Host.objects.filter(organisation=org).count()
    judged, bad = totals.judged, totals.bad
    return {"hosts": total, "judged": judged, "compliant": judged - bad,
            "share": (judged - bad) / judged if judged else None}


class StaleHost(TypedDict):
    id: int
    hostname: str
    last_seen: dt.datetime


def stale_hosts(org: Organisation, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Hosts with no report for longer than the organisation allows, longest silent first."""
    cutoff = (now or timezone.now()) - dt.timedelta(hours=org.stale_after_hours)
    return _rows(Host.objects.filter(organisation=org, last_seen__lt=cutoff).order_by("last_seen")
                 .values("id", "hostname", "key", "last_seen")[:200])


def unscanned_hosts(org: Organisation) -> list[dict[str, Any]]:
    """Hosts whose latest report could not scan them (unreachable, refused …): their "now" is unknown."""
    rows = Host.objects.filter(organisation=org, latest__in=Observation.objects.filter(pk__in=_latest_ids(org))
                               .exclude(status="ok").values("pk"))
    return _rows(rows.order_by("hostname").values("id", "hostname", "key", "latest__status", "latest__error")[:200])


def broken_series(org: Organisation) -> list[dict[str, Any]]:
    """Series with a gap (a report never received) or a fork (two reports claim the same predecessor)."""
    rows = (Report.objects.filter(organisation=org, chain__in=(Chain.GAP, Chain.FORK))
            .values("series_id", "series__key")
            .annotate(gaps=Count("id", filter=Q(chain=Chain.GAP)), forks=Count("id", filter=Q(chain=Chain.FORK)),
                      last=Max("started"))
            .order_by("-last")[:200])
    return _rows(rows)


# ---------------------------------------------------------------- trend


def tokyo_day(t: dt.datetime) -> dt.date:
    return t.astimezone(TOKYO).date()


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=TOKYO)
    return start, start + dt.timedelta(days=1)


def _summarise(org: Organisation, observations: QuerySet[Observation]) -> list[DailyItemSummary]:
    """(Tokyo day, item) → hosts and compliant hosts, in one GROUP BY over the given observations.

    A host seen twice on one day counts once, and as compliant only if every observation that day was."""
    fi = "finding_set__findings__items__"
    f = "finding_set__findings__"
    rows = (observations.filter(finding_set__isnull=False)
            .annotate(day=TruncDate("started", tzinfo=TOKYO))
            .values("day", item_id=F(f"{fi}item"))
            .annotate(hosts_n=Count("host_id", distinct=True),
                      bad_n=Count("host_id", distinct=True, filter=_bad_item(f, fi)))
            .filter(item_id__isnull=False).order_by())
    return [DailyItemSummary(organisation=org, day=r["day"], item=r["item_id"], hosts=r["hosts_n"],
                             compliant=int(r["hosts_n"]) - int(r["bad_n"])) for r in rows]


def refresh_daily(org: Organisation) -> int:
    """Bring the organisation's DailyItemSummary up to date; returns how many days were recomputed.

    The days to recompute are those of reports with an id above the watermark (new reports, including late
    deliveries of old days). The first call computes every day in one grouped query; later calls usually
    recompute today only. Runs under a row lock on the watermark so two requests do not both rebuild.

    Known limit: a report whose transaction took a lower id but committed after a refresh had already seen a
    higher one is missed until its day is touched again (concurrent ingests on PostgreSQL, within
    milliseconds); ``SummaryWatermark.objects.filter(organisation=org).delete()`` makes the next look rebuild
    everything. The grid (now) never depends on this: only the trend's history does."""
    with transaction.atomic():
        mark, _ = SummaryWatermark.objects.get_or_create(organisation=org)
        mark = SummaryWatermark.objects.select_for_update().get(pk=mark.pk)
        fresh = Report.objects.filter(organisation=org, id__gt=mark.last_report_id)
        top = fresh.aggregate(top=Max("id"))["top"]
        if top is None:
            return 0
        observations = Observation.objects.filter(host__organisation=org)
        if mark.last_report_id == 0:
            days: set[dt.date] | None = None  # everything
            rows = _summarise(org, observations)
            DailyItemSummary.objects.filter(organisation=org).delete()
        else:
            days = {tokyo_day(t) for t in fresh.values_list("started", flat=True).distinct()}
            rows = []
            for day in sorted(days):
                lo, hi = _day_bounds(day)
                rows += _summarise(org, observations.filter(started__gte=lo, started__lt=hi))
            DailyItemSummary.objects.filter(organisation=org, day__in=days).delete()
        DailyItemSummary.objects.bulk_create(rows, batch_size=2000)
        mark.last_report_id = top
        mark.save(update_fields=["last_report_id"])
        return len(days) if days is not None else len({r.day for r in rows})


class TrendPoint(TypedDict):
    day: dt.date
    share: float | None


def trend(org: Organisation, *, days: int = TREND_DAYS,
          now: dt.datetime | None = None) -> tuple[dict[str, list[TrendPoint]], list[TrendPoint]]:
    """Per item, one point per Tokyo day of the last ``days`` (the share of that day's reporting hosts that
    were compliant; None when no host reported), and the same over all items (host × item pairs)."""
    now = now or timezone.now()
    refresh_daily(org)
    last = tokyo_day(now)
    first = last - dt.timedelta(days=days - 1)
    rows = (DailyItemSummary.objects.filter(organisation=org, day__gte=first, day__lte=last)
            .values_list("item", "day", "hosts", "compliant"))
    by_item: dict[str, dict[dt.date, float]] = {}
    total: dict[dt.date, list[int]] = {}
    for item, day, hosts, compliant in rows:
        if hosts:
            by_item.setdefault(item, {})[day] = compliant / hosts
            t = total.setdefault(day, [0, 0])
            t[0] += hosts
            t[1] += compliant
    span = [first + dt.timedelta(days=i) for i in range(days)]
    out: dict[str, list[TrendPoint]] = {}
    for item in item_order(list(by_item)):
        points = by_item[item]
        out[item] = [{"day": d, "share": points.get(d)} for d in span]
    overall_points: list[TrendPoint] = [{"day": d, "share": total[d][1] / total[d][0] if d in total else None}
                                        for d in span]
    return out, overall_points


# ---------------------------------------------------------------- hosts and checks


def host_list(org: Organisation, *, item: str = "", status: str = "", check: str = "") -> QuerySet[Host]:
    """The organisation's hosts, optionally those whose latest findings have ``status`` (a grid column) on a
    guideline ``item`` and/or a ``check``."""
    qs = Host.objects.filter(organisation=org).select_related("latest__report", "latest__finding_set")
    if item or status or check:
        cond = Q(finding_sets=OuterRef("latest__finding_set"))
        if item:
            cond &= Q(items__item=item)
        if check:
            cond &= Q(check_id=check)
        if status in GRID_STATUSES:
            cond &= _status_q("", status) if status in ("fail", "waived") else (
                Q(items__status=status) if item else Q(status=status))
        qs = qs.filter(Exists(Finding.objects.filter(cond)))
    return qs.order_by("hostname", "id")


def check_table(org: Organisation, item: str = "") -> list[dict[str, Any]]:
    """Per check: how many hosts' latest findings are in each grid column (one GROUP BY check); ``item``:
    only the checks that map to that guideline item."""
    f = "latest__finding_set__findings__"
    base = _latest_hosts(org)
    if item:
        base = base.filter(Exists(Finding.objects.filter(pk=OuterRef(f"{f}id"), items__item=item)))
    rows: Any = (base.values(check_id=F(f"{f}check_id"))
                 .annotate(**{f"n_{s}": Count("id", filter=_status_q(f, s)) for s in GRID_STATUSES}))
    rows = rows.filter(check_id__isnull=False).order_by("check_id")
    return [{"check": r["check_id"], "counts": {s: r[f"n_{s}"] for s in GRID_STATUSES}} for r in _rows(rows)]


def check_failures(org: Organisation, check: str) -> list[dict[str, Any]]:
    """Hosts whose latest findings fail ``check``, each with the start of its current failing streak: the
    first observation after the last one (with findings) that did not fail the check, else its first seen."""
    failing = Finding.objects.filter(finding_sets=OuterRef("finding_set"), check_id=check, status="fail")
    last_ok = (Observation.objects.filter(host=OuterRef("pk"), finding_set__isnull=False,
                                          started__lt=OuterRef("latest__started"))
               .filter(~Exists(failing)).order_by("-started").values("started")[:1])
    first_after = (Observation.objects.filter(host=OuterRef("pk"), finding_set__isnull=False,
                                              started__gt=OuterRef("last_ok"))
                   .order_by("started").values("started")[:1])
    f = "latest__finding_set__findings__"
    return _rows(Host.objects.filter(organisation=org, **{f"{f}check_id": check, f"{f}status": "fail"})
                .annotate(last_ok=Subquery(last_ok))
                .annotate(since=Coalesce(Subquery(first_after), F("first_seen")),
                          waived=F(f"{f}waived"), severity=F(f"{f}severity"), message=F(f"{f}message"))
                .order_by("since", "hostname")
                .values("id", "hostname", "key", "os", "since", "last_ok", "waived", "severity", "message",
                        "latest__started"))


def check_info(org: Organisation, check: str) -> dict[str, Any] | None:
    """Title and guideline items of ``check`` as the organisation's latest findings state them."""
    rows = _rows(Finding.objects.filter(check_id=check, organisation=org)
                 .order_by("-id").values("title", "guideline", "severity", "remediation")[:1])
    return rows[0] if rows else None


def timeline(host: Host) -> QuerySet[Observation]:
    """The host's observations, newest first, with what the timeline shows (report chain and signature)."""
    return (Observation.objects.filter(host=host).select_related("report", "finding_set")
            .only("id", "started", "status", "error", "target_id", "finding_set__by_status", "report__sha256",
                  "report__chain", "report__chain_detail", "report__signature_status", "report__run_id",
                  "report__signer_principals", "report__partial")
            .order_by("-started", "-id"))


def findings_of(observation: Observation | None) -> list[Finding]:
    if observation is None or observation.finding_set_id is None:
        return []
    return [m.finding for m in SetMember.objects.filter(finding_set_id=observation.finding_set_id)
            .select_related("finding__evidence").order_by("finding__check_id", "finding_id", "id")]


# ---------------------------------------------------------------- diff


class DiffRow(TypedDict):
    check: str
    title: dict[str, str]
    old: str  # status word ("" when absent); "fail" under a waiver in force reads "waived"
    new: str
    message: dict[str, str]
    evidence: list[str]  # "pointer: old → new" lines


DIFF_KINDS = ("regressed", "fixed", "changed", "new", "gone")


def _model(f: Finding) -> Any:
    from reports.model import Finding as ModelFinding

    return ModelFinding(check=f.check_id, target="", status=f.status, severity=f.severity, guideline=list(f.guideline),
                        title=dict(f.title), message=dict(f.message), remediation=dict(f.remediation),
                        evidence=f.evidence.data if f.evidence is not None else None, expected=f.expected,
                        duration_ms=0.0, waiver=f.waiver, attestation=f.attestation)


def _word(f: Any) -> str:
    return "waived" if f.waived else str(f.status)


def diff(old: Observation, new: Observation) -> dict[str, list[DiffRow]]:
    """Two observations of one host compared by check, with mamoru diff's own rules (reports/diff.py):
    regressed (is_regression), fixed (a failure or error now pass / not applicable), changed (any other
    status or waiver change, or evidence that changed under the same status), new and gone checks."""
    from reports.diff import is_regression, value_diff

    a = {f.check_id: _model(f) for f in findings_of(old)}
    b = {f.check_id: _model(f) for f in findings_of(new)}
    out: dict[str, list[DiffRow]] = {k: [] for k in DIFF_KINDS}
    for check in sorted(a.keys() | b.keys()):
        fo, fn = a.get(check), b.get(check)
        ref = fn or fo
        assert ref is not None
        row: DiffRow = {"check": check, "title": ref.title, "old": _word(fo) if fo else "",
                        "new": _word(fn) if fn else "", "message": ref.message, "evidence": []}
        if fo is None:
            out["new"].append(row)
        elif fn is None:
            out["gone"].append(row)
        else:
            ev = value_diff(fo.evidence, fn.evidence, "evidence")
            ex = value_diff(fo.expected, fn.expected, "expected")
            row["evidence"] = ([f"+ {x['path']}: {x['value']}" for x in ev[0] + ex[0]]
                               + [f"- {x['path']}: {x['value']}" for x in ev[1] + ex[1]]
                               + [f"~ {x['path']}: {x['old']} → {x['new']}" for x in ev[2] + ex[2]])
            if is_regression(fo, fn):
                out["regressed"].append(row)
            elif fo.status in ("fail", "error") and not fo.waived and fn.status in ("pass", "not_applicable"):
                out["fixed"].append(row)
            elif row["old"] != row["new"] or fo.waiver != fn.waiver or row["evidence"]:
                out["changed"].append(row)
    return out


# ---------------------------------------------------------------- manual items, waivers, exports


def _latest_findings(org: Organisation, cond: Q) -> list[dict[str, Any]]:
    f = "latest__finding_set__findings__"
    return _rows(_latest_hosts(org).filter(cond)
                .values("id", "hostname", "key", check=F(f"{f}check_id"), status=F(f"{f}status"),
                        waived=F(f"{f}waived"), title=F(f"{f}title"), message=F(f"{f}message"),
                        waiver=F(f"{f}waiver"), attestation=F(f"{f}attestation"), severity=F(f"{f}severity"),
                        guideline=F(f"{f}guideline"))
                .order_by("hostname", "id", "check"))


def attestations(org: Organisation) -> dict[str, list[dict[str, Any]]]:
    """The organisation's questions on every host's latest report: answered (attested) and still open."""
    f = "latest__finding_set__findings__"
    rows = _latest_findings(org, Q(**{f"{f}attestation__isnull": False}) | Q(**{f"{f}status": "manual"}))
    answered = [r for r in rows if r["attestation"] is not None]
    open_ = [r for r in rows if r["attestation"] is None]
    return {"answered": answered, "open": open_}


WAIVER_SOON_DAYS = 30


def waivers(org: Organisation, now: dt.datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """Waivers on every host's latest findings, judged today in Tokyo days (as mamoru's own waivers are):
    expired, expiring within 30 days, active; each by expiry date."""
    from agent.config.waivers import days_left

    now = now or timezone.now()
    f = "latest__finding_set__findings__"
    out: dict[str, list[dict[str, Any]]] = {"expired": [], "expiring": [], "active": []}
    for r in _latest_findings(org, Q(**{f"{f}waiver__isnull": False})):
        w = r["waiver"] if isinstance(r["waiver"], dict) else {}
        try:
            expires: dt.date | None = dt.date.fromisoformat(str(w.get("expires", "")))
        except ValueError:
            expires = None
        left = days_left(expires, now) if expires is not None else -1
        r["expires"], r["days_left"] = expires, left
        group = "expired" if left < 0 else "expiring" if left <= WAIVER_SOON_DAYS else "active"
        out[group].append(r)
    for rows in out.values():
        rows.sort(key=lambda r: (r["expires"] or dt.date.min, r["hostname"], r["check"]))
    return out


def latest_reports(org: Organisation, *, chunk: int = 200) -> Iterator[tuple[Host, list[Finding]]]:
    """Every host with its latest findings (evidence loaded), a chunk of hosts at a time: what the exports
    and the printable report stream, without holding the whole organisation in memory."""
    hosts = (Host.objects.filter(organisation=org).select_related("latest__report")
             .order_by("hostname", "id"))
    batch: list[Host] = []
    for host in hosts.iterator(chunk_size=chunk):
        batch.append(host)
        if len(batch) >= chunk:
            yield from _with_findings(batch)
            batch = []
    if batch:
        yield from _with_findings(batch)


def _with_findings(hosts: list[Host]) -> Iterator[tuple[Host, list[Finding]]]:
    sets = {h.latest.finding_set_id for h in hosts if h.latest is not None and h.latest.finding_set_id}
    by_set: dict[int, list[Finding]] = {}
    for m in (SetMember.objects.filter(finding_set_id__in=sets).select_related("finding__evidence")
              .order_by("finding_set_id", "finding__check_id", "finding_id", "id")):
        by_set.setdefault(m.finding_set_id, []).append(m.finding)
    for h in hosts:
        fs = h.latest.finding_set_id if h.latest is not None else None
        yield h, by_set.get(fs, []) if fs else []
