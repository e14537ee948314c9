"""The human summary on the terminal, grouped by guideline item, in ja or en."""

from __future__ import annotations

import functools
from importlib import resources
from typing import IO, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agent.config.yamlfile import safe_load
from checks.base import explain, guideline_items
from reports.model import STATUSES, Report
from reports.safe_text import printable

STATUS_STYLE = {
    "pass": "green",
    "fail": "bold red",
    "error": "yellow",
    "not_applicable": "dim",
    "manual": "cyan",
}


@functools.cache
def labels(lang: str) -> dict[str, Any]:
    """The summary's words in ``lang`` (reports/terminal.yaml): statuses, target states, reasons, headings."""
    data: dict[str, Any] = safe_load(resources.files("reports").joinpath("terminal.yaml").read_bytes())
    return dict(data[lang])


def _show(text: str) -> str:
    return escape(printable(text))


def render_terminal(report: Report, *, lang: str, file: IO[str] | None = None, width: int | None = None) -> None:
    console = Console(file=file, width=width, highlight=False, soft_wrap=False)
    words = labels(lang)
    items = guideline_items()
    multi = len(report.targets) > 1
    for t in report.targets:
        state = words["target_status"].get(t.status, t.status)
        line = f"[bold]{_show(t.id)}[/] {_show(t.hostname)} ({_show(t.os)}) — {_show(state)}"
        if t.status != "ok" and t.reason and t.reason not in (t.status, "error"):
            line += f" ({_show(words['reason'].get(t.reason, t.reason))})"
        if t.error:
            line += f": [yellow]{_show(explain(t.error).get(lang))}[/]"
        console.print(line)
    order: list[str] = []
    for f in report.findings:
        for g in f.guideline[:1]:
            if g not in order:
                order.append(g)
    for item in sorted(order):
        title = items[item].get(lang) if item in items else item
        table = Table(title=f"{item} {title}", title_justify="left", show_lines=False, expand=True)
        table.add_column(words["check"], no_wrap=True)
        if multi:
            table.add_column(words["target"])
        table.add_column(words["result"], no_wrap=True)
        table.add_column(words["detail"], ratio=1)
        for f in report.findings:
            if f.guideline[:1] != [item]:
                continue
            style = STATUS_STYLE.get(f.status, "")
            row = [f"{f.check}", f"[{style}]{words['status'].get(f.status, f.status)}[/]",
                   f"{_show(f.title[lang])}\n[dim]{_show(f.message[lang])}[/]"]
            if f.waiver:  # accepted risk (--waivers): still FAIL, with its waiver's state, reason, approver, end
                w = {k: _show(str(f.waiver.get(k, ""))) for k in ("reason", "approver", "expires")}
                row[1] += f"\n[dim]{_show(words['waiver'].get(str(f.waiver.get('state')), ''))}[/]"
                row[2] += "\n" + words["waiver_line"].format(**w)
            if multi:
                row.insert(1, _show(f.target))
            table.add_row(*row)
        console.print(table)
    counts = report.summary()["by_status"]
    console.print(
        f"[bold]{words['summary']}[/]: "
        + "  ".join(f"[{STATUS_STYLE[s]}]{words['status'][s]} {counts[s]}[/]" for s in STATUSES)
    )
