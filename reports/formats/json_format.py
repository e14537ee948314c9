"""The report itself: the JSON that is written, hashed and signed (``reports.json_report``)."""

from __future__ import annotations

from reports.formats import RenderContext
from reports.json_report import render_json
from reports.model import Report


class JsonFormat:
    name = "json"
    suffix = ".json"
    media_type = "application/json"

    def render(self, report: Report, ctx: RenderContext) -> bytes:
        return render_json(report)


FORMAT = JsonFormat()
