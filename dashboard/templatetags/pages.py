"""Template helpers of the organisation pages: host text made visible, evidence pretty-printed, charts.

Everything here returns plain text that the template autoescapes, except the charts, which dashboard.charts
serialises with ElementTree (escaped there).
"""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.utils.safestring import SafeString

from dashboard import charts
from dashboard.texts import text
from reports.safe_text import printable, printable_lines

register = template.Library()


@register.filter
def visible(value: Any) -> str:
    """Host text with control characters (terminal escapes, bidi overrides) shown as ``\\xNN``."""
    return printable_lines("" if value is None else str(value))


@register.filter
def visible_line(value: Any) -> str:
    return printable("" if value is None else str(value))


@register.filter
def pretty(value: Any) -> str:
    """Evidence as indented JSON for a <pre>: json escapes control characters itself."""
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=repr)


@register.filter
def percent(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.0f}%"


@register.filter
def get(mapping: Any, key: str) -> Any:
    return mapping.get(key) if isinstance(mapping, dict) else None


@register.simple_tag(takes_context=True)
def status_word(context: Any, status: str) -> str:
    request = context.get("request")
    lang = getattr(request, "LANGUAGE_CODE", "ja") if request is not None else "ja"
    key = f"pg_status_{status}" if status else "pg_status_absent"
    return text(key, lang)


@register.simple_tag
def sparkline(points: list[charts.Point], label: str) -> SafeString:
    return charts.sparkline(points, label)


@register.simple_tag
def line_chart(points: list[charts.Point], label: str) -> SafeString:
    return charts.line_chart(points, label)


@register.simple_tag
def share_bar(share: float | None, label: str) -> SafeString:
    return charts.share_bar(share, label)
