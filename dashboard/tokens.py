"""API tokens: made once, shown once, kept only as a hash."""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth.models import User
from django.utils import timezone

from dashboard.models import ApiToken, Organisation

PREFIX = "mmr_"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(organisation: Organisation, name: str, *, created_by: User | None = None) -> tuple[str, ApiToken]:
    """A new token for ``organisation``: (the secret, to show once; its stored record)."""
    secret = PREFIX + secrets.token_urlsafe(32)
    record = ApiToken.objects.create(organisation=organisation, name=name, prefix=secret[:12],
                                     digest=digest(secret), created_by=created_by)
    return secret, record


def find_token(secret: str) -> ApiToken | None:
    """The live token with this secret, else None (unknown and revoked look the same to a caller)."""
    if not secret.startswith(PREFIX) or len(secret) > 200:
        return None
    record = ApiToken.objects.select_related("organisation").filter(digest=digest(secret),
                                                                    revoked__isnull=True).first()
    if record is not None:
        ApiToken.objects.filter(pk=record.pk).update(last_used=timezone.now())
    return record
