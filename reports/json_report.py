"""The report as JSON bytes: the exact bytes that are written, hashed and signed."""

from __future__ import annotations

import json

from reports.model import Report


def render_json(report: Report) -> bytes:
    # ensure_ascii=False keeps Japanese readable; json escapes every control
    # character, so terminal escapes in host data cannot survive as raw bytes.
    doc = report.to_dict()
    try:
        return (json.dumps(doc, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (undecodable host bytes) cannot be UTF-8: escape everything instead.
        return (json.dumps(doc, ensure_ascii=True, indent=2) + "\n").encode("ascii")
