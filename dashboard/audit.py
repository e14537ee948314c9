"""The audit log of admin actions: one call per action, from the view that did it."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from dashboard.models import AuditEntry, Organisation


def client_address(request: HttpRequest) -> str | None:
    """The peer address as the WSGI server saw it (behind a proxy: the proxy's; trust no forwarded header)."""
    addr = request.META.get("REMOTE_ADDR")
    return str(addr) if addr else None


def record(request: HttpRequest, action: str, organisation: Organisation | None = None, **detail: Any) -> None:
    """Write one audit entry. ``detail`` must hold no secret (a token's prefix, never the token)."""
    user = request.user if request.user.is_authenticated else None
    AuditEntry.objects.create(actor=user, organisation=organisation, action=action, detail=detail,
                              address=client_address(request))
