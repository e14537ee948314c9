"""The organisation's pages: overview, hosts, a host, checks, a check, manual items, waivers, exports.

Every view starts with :func:`dashboard.access.organisation_for` (404 for a non-member) and looks up every
object named in the URL *through that organisation* (a host id of another organisation is a 404 too).
The queries live in dashboard.queries; the charts are server-side SVG (dashboard.charts); the words in
dashboard/texts/pages.yaml. No page carries script.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path
from django.utils import timezone

from dashboard import queries
from dashboard.access import organisation_for
from dashboard.models import Finding, Host, Observation, Organisation

#: How many hosts / timeline rows one page lists.
PAGE_SIZE = 100


def _lang(request: HttpRequest) -> str:
    lang = getattr(request, "LANGUAGE_CODE", "ja")
    return lang if lang in ("ja", "en") else "ja"


def _page(request: HttpRequest, items: Any) -> Any:
    return Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))


@login_required
def overview(request: HttpRequest, slug: str) -> HttpResponse:
    org = organisation_for(request, slug)
    now = timezone.now()
    trends, trend_all = queries.trend(org, now=now)
    rows = queries.grid(org)
    for row in rows:
        row["trend"] = trends.get(row["item"], [])  # type: ignore[typeddict-unknown-key]
    return render(request, "dashboard/pages/overview.html", {
        "org": org, "rows": rows, "overall": queries.overall(org), "statuses": queries.GRID_STATUSES,
        "stale": queries.stale_hosts(org, now), "unscanned": queries.unscanned_hosts(org),
        "broken": queries.broken_series(org), "trend_days": queries.TREND_DAYS, "trend_all": trend_all,
    })


@login_required
def hosts(request: HttpRequest, slug: str) -> HttpResponse:
    org = organisation_for(request, slug)
    item, status, check = (request.GET.get(k, "")[:64] for k in ("item", "status", "check"))
    page = _page(request, queries.host_list(org, item=item, status=status, check=check))
    return render(request, "dashboard/pages/hosts.html", {
        "org": org, "page": page, "item": item, "status": status, "check": check})


def _observation(host: Host, raw: str | None) -> Observation | None:
    """An observation of ``host`` named by a query parameter; None when absent or not this host's."""
    if not raw or not raw.isdigit():
        return None
    return Observation.objects.filter(host=host, pk=int(raw)).select_related("report").first()


@login_required
def host(request: HttpRequest, slug: str, host_id: int) -> HttpResponse:
    org = organisation_for(request, slug)
    h = get_object_or_404(Host.objects.select_related("latest__report"), organisation=org, pk=host_id)
    timeline = queries.timeline(h)
    page = _page(request, timeline)
    old, new = _observation(h, request.GET.get("a")), _observation(h, request.GET.get("b"))
    if old is None and new is None and "a" not in request.GET:
        pair = list(timeline[:2])
        new, old = [*pair, None, None][:2]
    comparison = queries.diff(old, new) if old is not None and new is not None else None
    findings = queries.findings_of(h.latest)
    return render(request, "dashboard/pages/host.html", {
        "org": org, "host": h, "page": page, "findings": findings, "old": old, "new": new,
        "comparison": comparison, "kinds": queries.DIFF_KINDS,
        "choices": timeline.values_list("id", "started")[:400],
    })


@login_required
def checks(request: HttpRequest, slug: str) -> HttpResponse:
    org = organisation_for(request, slug)
    item = request.GET.get("item", "")[:64]
    return render(request, "dashboard/pages/checks.html", {
        "org": org, "rows": queries.check_table(org, item), "statuses": queries.GRID_STATUSES, "item": item})


@login_required
def check(request: HttpRequest, slug: str, check_id: str) -> HttpResponse:
    org = organisation_for(request, slug)
    info = queries.check_info(org, check_id)
    if info is None:
        raise Http404
    return render(request, "dashboard/pages/check.html", {
        "org": org, "check_id": check_id, "info": info, "failing": queries.check_failures(org, check_id)})


@login_required
def manual(request: HttpRequest, slug: str) -> HttpResponse:
    org = organisation_for(request, slug)
    return render(request, "dashboard/pages/manual.html", {"org": org, **queries.attestations(org)})


@login_required
def waivers(request: HttpRequest, slug: str) -> HttpResponse:
    org = organisation_for(request, slug)
    return render(request, "dashboard/pages/waivers.html", {
        "org": org, "groups": queries.waivers(org), "soon_days": queries.WAIVER_SOON_DAYS,
        "today": queries.tokyo_day(timezone.now())})


@login_required
def printable(request: HttpRequest, slug: str) -> HttpResponse:
    """The organisation report for paper: the overview's tables and each host's failing findings."""
    org = organisation_for(request, slug)
    failing = []
    for h, findings in queries.latest_reports(org):
        bad = [f for f in findings if (f.status == "fail" and not f.waived) or f.status == "error"]
        if bad:
            failing.append((h, bad))
    return render(request, "dashboard/pages/print.html", {
        "org": org, "rows": queries.grid(org), "overall": queries.overall(org), "statuses": queries.GRID_STATUSES,
        "stale": queries.stale_hosts(org), "broken": queries.broken_series(org), "failing": failing,
        "now": timezone.now()})


# ---------------------------------------------------------------- exports


def _model_report(org: Organisation, h: Host, findings: list[Finding]) -> Any:
    """One host's part of its latest report as a reports.model.Report, rebuilt from the stored rows, for the
    agent's own renderers (CSV, OCSF)."""
    from reports.model import Finding as ModelFinding
    from reports.model import Report, RunInfo, TargetRecord

    obs = h.latest
    rep = obs.report if obs is not None else None
    target_id = obs.target_id if obs is not None else h.key
    target = TargetRecord(id=target_id, kind=h.kind, hostname=h.hostname, os=h.os,
                          status=obs.status if obs is not None else "error",
                          machine_id=h.key[3:] if h.key.startswith("id:") else "")  # ingest.host_key
    run = RunInfo(id=rep.run_id if rep else "", started=rep.started.isoformat() if rep else "",
                  finished=rep.finished.isoformat() if rep and rep.finished else "",
                  tool={"name": "mamoru", "version": rep.tool_version if rep else ""},
                  policy={"name": rep.policy_name, "sha256": rep.policy_sha256} if rep else {},
                  operator={"user": rep.operator_user, "host": rep.operator_host} if rep else {})
    model = [ModelFinding(check=f.check_id, target=target_id, status=f.status, severity=f.severity,
                          guideline=list(f.guideline), title=dict(f.title), message=dict(f.message),
                          remediation=dict(f.remediation),
                          evidence=f.evidence.data if f.evidence is not None else None,
                          expected=f.expected, duration_ms=0.0, waiver=f.waiver, attestation=f.attestation)
             for f in findings]
    return Report(run=run, targets=[target], findings=model)


def _filename(org: Organisation, suffix: str) -> str:
    return f"mamoru-{org.slug}-{timezone.now().astimezone(queries.TOKYO):%Y%m%d}{suffix}"


@login_required
def export_csv(request: HttpRequest, slug: str) -> StreamingHttpResponse:
    """Every host's latest findings in the agent's CSV layout (reports/formats/csv_format: formula-safe
    cells, BOM for Excel), one header, streamed a chunk of hosts at a time."""
    from reports.formats import RenderContext
    from reports.formats.csv_format import FORMAT

    org = organisation_for(request, slug)
    ctx = RenderContext(lang=_lang(request))

    def rows() -> Iterator[bytes]:
        first = True
        for h, findings in queries.latest_reports(org):
            data = FORMAT.render(_model_report(org, h, findings), ctx)
            if first:
                first = False
                yield data
            else:  # the renderer writes BOM + header each time: keep them once (the header has no newline)
                yield data.split(b"\r\n", 1)[1]
        if first:
            yield FORMAT.render(_model_report(org, Host(key="", hostname=""), []), ctx)

    response = StreamingHttpResponse(rows(), content_type=FORMAT.media_type)
    response["Content-Disposition"] = f'attachment; filename="{_filename(org, ".csv")}"'
    return response


@login_required
def export_ocsf(request: HttpRequest, slug: str) -> StreamingHttpResponse:
    """OCSF Compliance Finding events (reports/formats/ocsf) of every host's latest findings, JSON Lines,
    with the signature status the dashboard verified at ingest."""
    from reports.formats.ocsf import _line, event

    org = organisation_for(request, slug)
    lang = _lang(request)

    def lines() -> Iterator[bytes]:
        for h, findings in queries.latest_reports(org):
            report = _model_report(org, h, findings)
            rep = h.latest.report if h.latest is not None else None
            signature = None
            if rep is not None:
                principals = [p.strip() for p in rep.signer_principals.split(",") if p.strip()]
                signature = {k: v for k, v in (("status", rep.signature_status),
                                               ("fingerprint", rep.signer_fingerprint), ("principals", principals))
                             if v}
            for f in report.findings:
                yield _line(event(report, f, report.targets[0], lang, signature))

    response = StreamingHttpResponse(lines(), content_type="application/x-ndjson")
    response["Content-Disposition"] = f'attachment; filename="{_filename(org, ".ocsf.jsonl")}"'
    return response


urlpatterns = [
    path("o/<slug:slug>/", overview, name="overview"),
    path("o/<slug:slug>/hosts/", hosts, name="hosts"),
    path("o/<slug:slug>/hosts/<int:host_id>/", host, name="host"),
    path("o/<slug:slug>/checks/", checks, name="checks"),
    path("o/<slug:slug>/checks/<str:check_id>/", check, name="check"),
    path("o/<slug:slug>/manual/", manual, name="manual"),
    path("o/<slug:slug>/waivers/", waivers, name="waivers"),
    path("o/<slug:slug>/report/", printable, name="print_report"),
    path("o/<slug:slug>/export/findings.csv", export_csv, name="export_csv"),
    path("o/<slug:slug>/export/findings.ocsf.jsonl", export_ocsf, name="export_ocsf"),
]
