"""Charts as inline SVG, drawn on the server: the pages run no script (the CSP allows none) and fetch nothing.

Every chart is built as an element tree (xml.etree) and serialised by it, so every label — guideline items
and dates, and anything a report could smuggle in — is escaped by the serialiser, never pasted into markup.
Control characters are made visible first (reports.safe_text.printable): XML 1.0 cannot carry them.
Colours are presentation attributes, not ``style=``: the CSP allows only the dashboard's own stylesheet.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import TypedDict

from django.utils.safestring import SafeString, mark_safe

from reports.safe_text import printable

SVG_NS = "http://www.w3.org/2000/svg"
LINE = "#0969da"
GRID = "#d0d7de"
TEXT = "#57606a"


class Point(TypedDict):
    day: dt.date
    share: float | None  # 0..1; None: nothing that day (a gap in the line)


def _svg(width: int, height: int, label: str) -> ET.Element:
    svg = ET.Element("svg", {"xmlns": SVG_NS, "width": str(width), "height": str(height),
                             "viewBox": f"0 0 {width} {height}", "role": "img", "aria-label": printable(label),
                             "class": "chart"})
    ET.SubElement(svg, "title").text = printable(label)
    return svg


def _runs(points: Sequence[Point], x0: float, y0: float, w: float, h: float) -> list[list[tuple[float, float]]]:
    """Screen coordinates of the points, split where a day has no value (no line is drawn across a gap)."""
    runs: list[list[tuple[float, float]]] = [[]]
    n = max(len(points) - 1, 1)
    for i, p in enumerate(points):
        if p["share"] is None:
            if runs[-1]:
                runs.append([])
            continue
        share = min(max(p["share"], 0.0), 1.0)
        runs[-1].append((x0 + w * i / n, y0 + h * (1.0 - share)))
    return [r for r in runs if r]


def _draw(svg: ET.Element, runs: list[list[tuple[float, float]]], width: str) -> None:
    for run in runs:
        if len(run) == 1:
            x, y = run[0]
            ET.SubElement(svg, "circle", {"cx": f"{x:.1f}", "cy": f"{y:.1f}", "r": "1.5", "fill": LINE})
        else:
            ET.SubElement(svg, "polyline", {"points": " ".join(f"{x:.1f},{y:.1f}" for x, y in run),
                                            "fill": "none", "stroke": LINE, "stroke-width": width})


def _render(svg: ET.Element) -> SafeString:
    return mark_safe(ET.tostring(svg, encoding="unicode"))  # noqa: S308 - serialised (escaped) by ElementTree


def sparkline(points: Sequence[Point], label: str, *, width: int = 160, height: int = 28) -> SafeString:
    """A small line of daily shares (0 at the bottom, 100 % at the top) with a faint 100 % rule."""
    svg = _svg(width, height, label)
    ET.SubElement(svg, "line", {"x1": "0", "y1": "2", "x2": str(width), "y2": "2", "stroke": GRID,
                                "stroke-width": "1"})
    _draw(svg, _runs(points, 1, 2, width - 2, height - 4), "1.5")
    return _render(svg)


def line_chart(points: Sequence[Point], label: str, *, width: int = 720, height: int = 180) -> SafeString:
    """A larger chart of daily shares with 0/50/100 % rules and the first and last day written below."""
    svg = _svg(width, height, label)
    left, top, bottom = 40, 8, 20
    w, h = width - left - 8, height - top - bottom
    for share in (0.0, 0.5, 1.0):
        y = top + h * (1.0 - share)
        ET.SubElement(svg, "line", {"x1": str(left), "y1": f"{y:.1f}", "x2": str(width - 8), "y2": f"{y:.1f}",
                                    "stroke": GRID, "stroke-width": "1"})
        ET.SubElement(svg, "text", {"x": str(left - 4), "y": f"{y + 4:.1f}", "text-anchor": "end",
                                    "font-size": "11", "fill": TEXT}).text = f"{int(share * 100)}%"
    if points:
        for p, anchor, x in ((points[0], "start", left), (points[-1], "end", width - 8)):
            ET.SubElement(svg, "text", {"x": str(x), "y": str(height - 4), "text-anchor": anchor, "font-size": "11",
                                        "fill": TEXT}).text = printable(p["day"].isoformat())
    _draw(svg, _runs(points, left, top, w, h), "2")
    return _render(svg)


def share_bar(share: float | None, label: str, *, width: int = 100, height: int = 12) -> SafeString:
    """A horizontal bar: the compliant share of hosts (empty outline when nothing was judged)."""
    svg = _svg(width, height, label)
    ET.SubElement(svg, "rect", {"x": "0.5", "y": "0.5", "width": str(width - 1), "height": str(height - 1),
                                "fill": "none", "stroke": GRID})
    if share is not None:
        ET.SubElement(svg, "rect", {"x": "0.5", "y": "0.5", "width": f"{max(0.0, min(share, 1.0)) * (width - 1):.1f}",
                                    "height": str(height - 1), "fill": "#1a7f37"})
    return _render(svg)
