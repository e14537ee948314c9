"""The one way a page reaches an organisation's data: through the requesting user's membership.

Every organisation-scoped view starts with :func:`organisation_for`; an organisation the user is not a member
of answers 404 — the same as one that does not exist, so a URL does not even confirm that another client
exists. Staff (the site's superusers) see every organisation, as admins.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser, User
from django.http import Http404, HttpRequest

from dashboard.models import Membership, Organisation, Role


def role_in(user: User | AnonymousUser, organisation: Organisation) -> str | None:
    if not user.is_authenticated:
        return None
    if getattr(user, "is_superuser", False):
        return Role.ADMIN
    m = Membership.objects.filter(user=user, organisation=organisation).values_list("role", flat=True).first()
    return str(m) if m else None


def organisations_of(user: User | AnonymousUser) -> Any:
    """The organisations ``user`` may see (a QuerySet)."""
    if not user.is_authenticated:
        return Organisation.objects.none()
    if getattr(user, "is_superuser", False):
        return Organisation.objects.all().order_by("name")
    return Organisation.objects.filter(memberships__user=user).order_by("name")


def organisation_for(request: HttpRequest, slug: str, *, admin: bool = False) -> Organisation:
    """The organisation named in the URL, if the user may see it (``admin``: may change it); else 404."""
    org = Organisation.objects.filter(slug=slug).first()
    if org is None:
        raise Http404
    role = role_in(request.user, org)
    if role is None or (admin and role != Role.ADMIN):
        raise Http404
    request.organisation = org  # type: ignore[attr-defined]
    request.role = role  # type: ignore[attr-defined]
    return org
