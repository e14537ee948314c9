"""The human summary on the terminal, grouped by guideline item, in ja or en."""

from __future__ import annotations

from typing import IO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from checks.base import guideline_items
from reports.model import STATUSES, Report
from reports.safe_text import printable

STATUS_STYLE = {
    "pass": "green",
    "fail": "bold red",
    "error": "yellow",
    "not_applicable": "dim",
    "manual": "cyan",
}
LABELS = {
    "ja": {"pass": "合格", "fail": "不合格", "error": "判定不能", "not_applicable": "対象外", "manual": "手動確認",
           "target": "対象", "check": "チェック", "status": "結果", "detail": "内容", "summary": "集計",
           "unsigned": "このレポートは署名されていません"},
    "en": {"pass": "pass", "fail": "FAIL", "error": "error", "not_applicable": "n/a", "manual": "manual",
           "target": "target", "check": "check", "status": "status", "detail": "detail", "summary": "summary",
           "unsigned": "this report is not signed"},
}


def _show(text: str) -> str:
    return escape(printable(text))


def render_terminal(report: Report, *, lang: str, file: IO[str] | None = None, width: int | None = None) -> None:
    console = Console(file=file, width=width, highlight=False, soft_wrap=False)
    labels = LABELS[lang]
    items = guideline_items()
    multi = len(report.targets) > 1
    for t in report.targets:
        line = f"[bold]{_show(t.id)}[/] {_show(t.hostname)} ({_show(t.os)}) — {t.status}"
        if t.error:
            line += f": [yellow]{_show(t.error)}[/]"
        console.print(line)
    order: list[str] = []
    for f in report.findings:
        for g in f.guideline[:1]:
            if g not in order:
                order.append(g)
    for item in sorted(order):
        title = items[item].get(lang) if item in items else item
        table = Table(title=f"{item} {title}", title_justify="left", show_lines=False, expand=True)
        table.add_column(labels["check"], no_wrap=True)
        if multi:
            table.add_column(labels["target"])
        table.add_column(labels["status"], no_wrap=True)
        table.add_column(labels["detail"], ratio=1)
        for f in report.findings:
            if f.guideline[:1] != [item]:
                continue
            style = STATUS_STYLE.get(f.status, "")
            row = [f"{f.check}", f"[{style}]{labels.get(f.status, f.status)}[/]",
                   f"{_show(f.title[lang])}\n[dim]{_show(f.message[lang])}[/]"]
            if multi:
                row.insert(1, _show(f.target))
            table.add_row(*row)
        console.print(table)
    counts = report.summary()["by_status"]
    console.print(
        f"[bold]{labels['summary']}[/]: "
        + "  ".join(f"[{STATUS_STYLE[s]}]{labels[s]} {counts[s]}[/]" for s in STATUSES)
    )
