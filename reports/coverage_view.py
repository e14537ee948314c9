"""The coverage table on the terminal: per guideline item, was it covered, and how (``summary.coverage``).

``mamoru audit`` ends with it so the consultant sees, before leaving the site, which items of Art. 9 the
report answers and which are still open (a question nobody answered, a check that could not tell). It shows
the report's own ``summary.coverage`` (``reports/coverage.py``) and adds nothing: the words come from
``coverage_view.yaml`` in the operator's language, the numbers from the report.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Mapping
from importlib import resources
from typing import IO, Any

from rich.table import Table
from rich.text import Text

from agent.config.yamlfile import safe_load
from checks.base import guideline_items
from reports.model import STATUSES
from reports.safe_text import printable
from reports.terminal import console_for

#: The states of ``reports.coverage``, in the order of the total line.
STATES = ("covered", "partly", "uncovered", "absent")
STATE_STYLE = {"covered": "green", "partly": "yellow", "uncovered": "bold red", "absent": "dim"}


@functools.cache
def words(lang: str) -> dict[str, Any]:
    data: dict[str, Any] = safe_load(resources.files("reports").joinpath("coverage_view.yaml").read_bytes())
    return dict(data[lang])


def _how(entry: Mapping[str, Any], w: Mapping[str, Any]) -> Text:
    """How an item was covered: on how many targets a program judged it, what was attested, what is open."""
    parts: list[str] = []
    automated = entry.get("automated") or {}
    n = int(automated.get("targets", 0))
    if n:
        counts = automated.get("by_status") or {}
        shown = ", ".join(f"{w['status'][s]} {counts[s]}" for s in STATUSES if counts.get(s))
        parts.append(w["automated"].format(n=n) + (w["automated_status"].format(counts=shown) if shown else ""))
    attested = entry.get("attested") or []
    if attested:
        said = [(printable(str(a.get("check", ""))), str(a.get("status", ""))) for a in attested]
        parts.append(w["attested"].format(checks=", ".join(
            f"{check} ({w['status'].get(status, printable(status))})" for check, status in said)))
    unanswered = entry.get("unanswered") or []
    if unanswered:
        parts.append(w["unanswered"].format(checks=", ".join(printable(str(c)) for c in unanswered)))
    return Text(w["sep"].join(parts) or w["nothing"], overflow="fold")


def render_coverage(coverage: Mapping[str, Mapping[str, Any]], *, lang: str, file: IO[str] | None = None,
                    width: int | None = None) -> None:
    """Print one row per guideline item (id, title, state, how) and a total line."""
    console = console_for(file, width)
    w = words(lang)
    titles = guideline_items()
    table = Table(title=w["heading"], title_justify="left", show_lines=False, expand=False)
    table.add_column(w["item"], no_wrap=True)
    table.add_column(w["state_label"], no_wrap=True)
    table.add_column(w["how"], ratio=1, overflow="fold")
    totals: Counter[str] = Counter()
    for item, entry in coverage.items():
        state = str(entry.get("state", ""))
        totals[state] += 1
        how = Text(titles[item].get(lang) if item in titles else "", style="dim", overflow="fold")
        how.append("\n" if how else "")
        how.append(_how(entry, w))
        table.add_row(Text(printable(item), style="bold"),
                      Text(w["state"].get(state, printable(state)), style=STATE_STYLE.get(state, "")), how)
    console.print()
    console.print(table)
    console.print(Text(w["total"].format(n=sum(totals.values()), **{s: totals[s] for s in STATES}), style="bold"))
