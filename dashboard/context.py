from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from dashboard.access import organisations_of


def common(request: HttpRequest) -> dict[str, Any]:
    """What the base template needs on every page: the language and the organisations to switch between."""
    return {
        "lang": getattr(request, "LANGUAGE_CODE", "ja"),
        "my_organisations": organisations_of(request.user) if hasattr(request, "user") else [],
    }
