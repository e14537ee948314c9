"""``POST /api/v1/reports``: what ``mamoru push`` delivers (docs/ingest-api.md is the contract).

Token authentication, not a session: so no CSRF (a browser never holds the token, and nothing here reads a
cookie). The size cap is checked against Content-Length before the body is read; the body is then parsed
with Django's multipart parser, whose file parts spill to a temporary file above FILE_UPLOAD_MAX_MEMORY_SIZE.
"""

from __future__ import annotations

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from dashboard.ingest import MAX_SIGNATURE_BYTES, Refused, ingest
from dashboard.models import Rejection, Source
from dashboard.tokens import find_token

#: multipart framing around the parts: boundaries, headers, the sha256 part.
FRAMING_ALLOWANCE = 64 * 1024


def error(status: int, reason: str) -> JsonResponse:
    response = JsonResponse({"error": reason}, status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="mamoru"'
    return response


def read_part(request: HttpRequest, name: str, limit: int) -> bytes | None:
    """A file part's bytes (or a plain field's, as UTF-8), None when absent; never more than ``limit``."""
    upload = request.FILES.get(name)
    if upload is not None:
        if upload.size is not None and upload.size > limit:
            raise Refused(413, f"the {name} part is larger than {limit} bytes")
        return bytes(upload.read())
    value = request.POST.get(name)
    return None if value is None else value.encode("utf-8")


@csrf_exempt
def reports(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        response = error(405, "use POST")
        response["Allow"] = "POST"
        return response
    auth = request.headers.get("Authorization", "")
    scheme, _, secret = auth.partition(" ")
    token = find_token(secret.strip()) if scheme.lower() == "bearer" else None
    if token is None:
        return error(401, "a valid API token is required (Authorization: Bearer …)")
    org = token.organisation
    cap = org.max_report_bytes
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return error(400, "Content-Length is not a number")
    try:
        if length > cap + MAX_SIGNATURE_BYTES + FRAMING_ALLOWANCE:
            raise Refused(413, f"the request is larger than this organisation's cap of {cap} bytes per report")
        if not request.content_type or request.content_type != "multipart/form-data":
            raise Refused(400, "the body must be multipart/form-data with the parts sha256, report, signature")
        data = read_part(request, "report", cap)
        if data is None:
            raise Refused(400, "the report part is missing")
        signature = read_part(request, "signature", MAX_SIGNATURE_BYTES)
        claimed = read_part(request, "sha256", 200)
        if claimed is None:
            raise Refused(400, "the sha256 part is missing")
    except (RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent):
        reason = "a non-file part is too large or there are too many parts"
        Rejection.objects.create(organisation=org, token=token, size=length, reason=reason)
        return error(413, reason)
    except MultiPartParserError as e:
        reason = f"the multipart body cannot be read: {e}"[:500]
        Rejection.objects.create(organisation=org, token=token, size=length, reason=reason)
        return error(400, reason)
    except Refused as e:  # refused before ingest could look at it: recorded here
        Rejection.objects.create(organisation=org, token=token, size=length, reason=e.reason[:500])
        return error(e.status, e.reason)
    try:
        result = ingest(org, data, signature, claimed.decode("utf-8", "replace"), source=Source.API, token=token)
    except Refused as e:
        return error(e.status, e.reason)
    return JsonResponse({"sha256": result.report.sha256, "status": "created" if result.created else "exists"},
                        status=201 if result.created else 200)


urlpatterns = [path("api/v1/reports", reports, name="api_reports")]
