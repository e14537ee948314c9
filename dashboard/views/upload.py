"""Uploads by consultants, downloads of stored reports, and the lists of what an organisation received.

An upload goes through the same :func:`dashboard.ingest.ingest` as the API, so a report refused by one is
refused by the other for the same reason. Downloads hand back the bytes exactly as received, with the
``.sig`` beside them, so anyone can re-verify with ``ssh-keygen -Y verify`` at any time.
"""

from __future__ import annotations

import re

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET, require_http_methods

from dashboard import storage
from dashboard.access import organisation_for
from dashboard.audit import record
from dashboard.ingest import MAX_SIGNATURE_BYTES, Refused, ingest
from dashboard.models import Organisation, Rejection, Report, Source

_HEX64 = re.compile(r"[0-9a-f]{64}")
LIST_LIMIT = 200


class UploadForm(forms.Form):
    report = forms.FileField()
    signature = forms.FileField(required=False)


def _read(upload: object, limit: int, what: str) -> bytes:
    size = getattr(upload, "size", None)
    if size is not None and size > limit:
        raise Refused(413, f"the {what} is larger than {limit} bytes")
    return bytes(upload.read())  # type: ignore[attr-defined]


@login_required
@require_http_methods(["GET", "POST"])
def upload(request: HttpRequest, slug: str) -> HttpResponse:
    org = organisation_for(request, slug, admin=True)
    outcome: dict[str, str] | None = None
    form = UploadForm()
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES)
        if form.is_valid():
            outcome = _ingest_upload(request, org, form)
    return render(request, "dashboard/upload.html", {"organisation": org, "form": form, "outcome": outcome},
                  status=int(outcome["status"]) if outcome else 200)


def _ingest_upload(request: HttpRequest, org: Organisation, form: UploadForm) -> dict[str, str]:
    report_file = form.cleaned_data["report"]
    sig_file = form.cleaned_data.get("signature")
    name = str(report_file.name)[:200]
    try:
        data = _read(report_file, org.max_report_bytes, "report")
        signature = _read(sig_file, MAX_SIGNATURE_BYTES, "signature") if sig_file else None
        result = ingest(org, data, signature, None, source=Source.UPLOAD, user=request.user)
    except Refused as e:
        record(request, "report_upload_refused", org, file=name, reason=e.reason)
        return {"kind": "refused", "reason": e.reason, "status": str(e.status), "sha256": ""}
    kind = "created" if result.created else "exists"
    record(request, "report_upload", org, file=name, sha256=result.report.sha256, result=kind)
    return {"kind": kind, "reason": "", "status": "201" if result.created else "200",
            "sha256": result.report.sha256}


def _stored(request: HttpRequest, slug: str, sha256: str) -> Report:
    org = organisation_for(request, slug)
    if not _HEX64.fullmatch(sha256):
        raise Http404
    report = Report.objects.filter(organisation=org, sha256=sha256).select_related("blob").first()
    if report is None:
        raise Http404
    return report


def _attachment(body: bytes, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Content-Length"] = str(len(body))
    return response


@login_required
@require_GET
def report_json(request: HttpRequest, slug: str, sha256: str) -> HttpResponse:
    report = _stored(request, slug, sha256)
    return _attachment(storage.report_bytes(report), "application/json",
                       f"mamoru-report-{report.sha256[:16]}.json")


@login_required
@require_GET
def report_sig(request: HttpRequest, slug: str, sha256: str) -> HttpResponse:
    report = _stored(request, slug, sha256)
    if report.signature is None:
        raise Http404
    return _attachment(bytes(report.signature), "application/octet-stream",
                       f"mamoru-report-{report.sha256[:16]}.json.sig")


@login_required
@require_GET
def received(request: HttpRequest, slug: str) -> HttpResponse:
    org = organisation_for(request, slug, admin=True)
    reports = (Report.objects.filter(organisation=org).select_related("series", "token", "uploaded_by")
               .order_by("-received")[:LIST_LIMIT])
    rejections = (Rejection.objects.filter(organisation=org).select_related("token").order_by("-at")[:LIST_LIMIT])
    return render(request, "dashboard/reports.html",
                  {"organisation": org, "reports": reports, "rejections": rejections})


urlpatterns = [
    path("o/<slug:slug>/upload/", upload, name="upload"),
    path("o/<slug:slug>/reports/", received, name="reports"),
    path("o/<slug:slug>/reports/<str:sha256>/report.json", report_json, name="report_json"),
    path("o/<slug:slug>/reports/<str:sha256>/report.json.sig", report_sig, name="report_sig"),
]
