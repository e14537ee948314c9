"""Headers Django's SecurityMiddleware does not set: a Content-Security-Policy that allows no script at all.

The pages are server-rendered and need no JavaScript; with ``script-src 'none'`` a host-supplied string that
slipped through escaping still could not run. Charts are inline SVG elements (no ``<script>``), styles come
from the dashboard's own stylesheet only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

CSP = "; ".join([
    "default-src 'none'",
    "script-src 'none'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
])


class SecurityHeadersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", CSP)
        response.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        response.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        if request.path.startswith("/api/"):
            response.setdefault("Cache-Control", "no-store")
        return response


#: Users in this group must choose a new password before anything else: the first administrator and every
#: user made by ``mamoru dashboard user create`` get a one-time password printed on a terminal, which must not
#: stay their password. A group (not a column) so the flag needs no migration of Django's user table.
MUST_CHANGE_PASSWORD = "mamoru-must-change-password"

#: What such a user may still reach: the form itself, logging out, switching language, the stylesheet.
_ALLOWED_WHILE_FLAGGED = ("/password/", "/logout/", "/i18n/", "/static/")


def flag_password_change(user: Any) -> None:
    """Make ``user`` choose a new password at the next page (after a one-time password was handed out)."""
    from django.contrib.auth.models import Group

    group, _ = Group.objects.get_or_create(name=MUST_CHANGE_PASSWORD)
    user.groups.add(group)


def clear_password_change(user: Any) -> None:
    user.groups.remove(*user.groups.filter(name=MUST_CHANGE_PASSWORD))


def must_change_password(user: Any) -> bool:
    return bool(user.is_authenticated and user.groups.filter(name=MUST_CHANGE_PASSWORD).exists())


class PasswordChangeRequiredMiddleware:
    """Send a user who still has a one-time password to the password form, whatever page they asked for."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if (not path.startswith("/api/") and not path.startswith(_ALLOWED_WHILE_FLAGGED)
                and must_change_password(request.user)):
            return redirect("dashboard:password_change")
        return self.get_response(request)
