"""Template helpers: ``{% t "key" %}`` for the dashboard's words in the request's language."""

from __future__ import annotations

from typing import Any

from django import template

from dashboard.texts import text

register = template.Library()


@register.simple_tag(takes_context=True)
def t(context: Any, key: str, **parts: Any) -> str:
    """The text for ``key``; ``parts`` fill ``{name}`` fields. simple_tag escapes the result (autoescape)."""
    request = context.get("request")
    lang = getattr(request, "LANGUAGE_CODE", "ja") if request is not None else "ja"
    s = text(key, lang)
    return s.format_map(parts) if parts else s


@register.filter
def lang_of(value: Any, lang: str) -> str:
    """``{"ja": …, "en": …}`` from a report → the text in ``lang`` (the other one if that is missing)."""
    if isinstance(value, dict):
        return str(value.get(lang) or value.get("en") or value.get("ja") or "")
    return "" if value is None else str(value)
