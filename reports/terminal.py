"""The human summary on the terminal, in ja or en: what needs action first, and all of it readable.

Order is the order of action: failures (most severe first, each with its remediation and any waiver), then
what could not be judged, then the rest. A fleet gets one line per host with its counts, so the worst host
is found without scrolling. Text is wrapped, never cut: Japanese has no spaces to break at, so a cell that
only wrapped at spaces would lose the end of a sentence; every cell here folds instead. Host-supplied text
(hostnames, target ids, messages quoting file contents, evidence) goes in as ``rich.text.Text`` after
``printable``: no markup is parsed from it and no control character reaches the terminal.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from collections.abc import Iterable
from importlib import resources
from typing import IO, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from agent.config.yamlfile import safe_load
from checks.base import explain, guideline_items
from checks.organisation import ORGANISATION_KIND
from reports.model import STATUSES, Finding, Report
from reports.safe_text import printable

STATUS_STYLE = {
    "pass": "green",
    "fail": "bold red",
    "error": "yellow",
    "not_applicable": "dim",
    "manual": "cyan",
}
#: summary.coverage states (reports/coverage.py), best first.
COVERAGE_STATES = ("covered", "partly", "uncovered", "absent")
COVERAGE_STYLE = {"covered": "green", "partly": "yellow", "uncovered": "bold red", "absent": "dim"}
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}
#: "The rest" after failures and errors: what still asks something of a person first.
REST_ORDER = {"manual": 0, "pass": 1, "not_applicable": 2}
#: --verbose shows evidence up to this many characters of compact JSON, then says how much more there is.
EVIDENCE_LIMIT = 4000


@functools.cache
def labels(lang: str) -> dict[str, Any]:
    """The summary's words in ``lang`` (reports/terminal.yaml): statuses, target states, reasons, headings."""
    data: dict[str, Any] = safe_load(resources.files("reports").joinpath("terminal.yaml").read_bytes())
    return dict(data[lang])


def host_text(text: object, style: str = "") -> Text:
    """Hostile text as a Text: control characters escaped, no markup parsed, folded (never cut) when long."""
    return Text(printable(str(text)), style=style, overflow="fold")


def compact_json(value: Any, limit: int, more: str) -> str:
    """Evidence as one line of JSON. Odd values (lone surrogates, non-JSON objects) become text, not a crash."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=repr)
    if len(text) > limit:
        return text[:limit] + more.format(n=len(text) - limit)
    return text


def console_for(file: IO[str] | None, width: int | None) -> Console:
    return Console(file=file, width=width, highlight=False, soft_wrap=False, emoji=False, markup=False)


def findings_grid() -> Table:
    """Rows of status | severity | check | body. Only the body wraps, and it folds inside words."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    grid.add_column(ratio=1, overflow="fold")
    return grid


def _sections(findings: Iterable[Finding]) -> list[tuple[str, list[Finding]]]:
    fail: list[Finding] = []
    error: list[Finding] = []
    rest: list[Finding] = []
    for f in findings:
        (fail if f.status == "fail" else error if f.status == "error" else rest).append(f)

    def by_severity(f: Finding) -> tuple[int, str, str, str]:
        return (SEVERITY_ORDER.get(f.severity, 9), f.guideline[0] if f.guideline else "", f.check, f.target)

    def by_status(f: Finding) -> tuple[int, str, str, str]:
        return (REST_ORDER.get(f.status, 9), f.guideline[0] if f.guideline else "", f.check, f.target)

    return [("fail", sorted(fail, key=by_severity)), ("error", sorted(error, key=by_severity)),
            ("rest", sorted(rest, key=by_status))]


def _waiver_line(waiver: dict[str, Any], words: dict[str, Any]) -> Text:
    state = str(waiver.get("state", ""))
    fields = words["waiver_fields"]
    line = Text(f"{words['waiver']} ({words['waiver_state'].get(state, printable(state))})",
                style="bold red" if state == "expired" else "magenta", overflow="fold")
    for key in ("reason", "approver", "expires", "source"):
        if waiver.get(key) not in (None, ""):
            line.append(f" · {fields[key]}: ")
            line.append(host_text(waiver[key]))
    return line


def _attestation_line(att: dict[str, Any], words: dict[str, Any]) -> Text:
    """Who declared an attested finding, when, on what evidence, until when: a person's word, not a check."""
    fields = words["attestation_fields"]
    line = Text(words["attestation"], style="bold blue", overflow="fold")
    for key in ("by", "at", "evidence", "valid_until", "source"):
        if att.get(key) not in (None, ""):
            line.append(f" · {fields[key]}: ")
            line.append(host_text(att[key]))
    return line


def status_text(f: Finding, words: dict[str, Any]) -> Text:
    """The status cell: an attested result says so, so a declaration never reads as a machine's verdict."""
    text = Text(words["status"].get(f.status, printable(f.status)), style=STATUS_STYLE.get(f.status, ""))
    if f.attestation is not None:
        text.append(f" ({words['attested']})", style="bold blue")
    return text


def _items(guideline: list[str], lang: str) -> str:
    """The guideline items a check serves, with their titles: where in the guideline a finding belongs."""
    titles = guideline_items()
    return ", ".join(f"{printable(g)} {titles[g].get(lang)}" if g in titles else printable(g) for g in guideline)


def _body(f: Finding, *, lang: str, words: dict[str, Any], multi: bool, verbose: bool) -> Text:
    body = Text(overflow="fold")
    body.append(host_text(f.title.get(lang, ""), "bold"))
    body.append(f"  ({_items(f.guideline, lang)})", style="dim")
    if multi:
        body.append("  ")
        body.append(host_text(f.target, "dim"))
    body.append("\n")
    body.append(host_text(f.message.get(lang, "")))
    if f.status == "fail" and f.remediation.get(lang):
        body.append(f"\n{words['remediation']}: ", style="bold")
        body.append(host_text(f.remediation[lang]))
    if f.attestation is not None:
        body.append("\n")
        body.append(_attestation_line(f.attestation, words))
    if f.waiver:
        body.append("\n")
        body.append(_waiver_line(f.waiver, words))
    if verbose:
        for label, value in ((words["evidence"], f.evidence), (words["expected"], f.expected)):
            body.append(f"\n{label}: ", style="dim")
            body.append(host_text(compact_json(value, EVIDENCE_LIMIT, words["more_chars"]), "dim"))
    return body


def _counts_text(counts: dict[str, int], words: dict[str, Any], waived: int = 0) -> Text:
    out = Text()
    for s in STATUSES:
        if out:
            out.append("  ")
        out.append(f"{words['status'][s]} {counts.get(s, 0)}", style=STATUS_STYLE[s] if counts.get(s) else "dim")
    if waived:
        out.append(f"  ({words['waived']} {waived})", style="magenta")
    return out


def render_terminal(report: Report, *, lang: str, file: IO[str] | None = None, width: int | None = None,
                    verbose: bool = False) -> None:
    console = console_for(file, width)
    words = labels(lang)
    multi = len(report.targets) > 1 or len({f.target for f in report.findings}) > 1
    per_target: dict[str, Counter[str]] = {}
    for f in report.findings:
        per_target.setdefault(f.target, Counter())[f.status] += 1
    for t in report.targets:
        state = words["target_status"].get(t.status, t.status)
        line = Text(overflow="fold")
        if t.kind == ORGANISATION_KIND:  # no hostname, no OS: what it has is questions
            line.append(organisation_words(report.findings, t.id, words), style="bold")
        else:
            line.append(host_text(t.id, "bold"))
            line.append(" ")
            line.append(host_text(t.hostname))
            line.append(" (")
            line.append(host_text(t.os))
            line.append(f") — {printable(state)}")
        if t.status != "ok" and t.reason and t.reason not in (t.status, "error"):
            line.append(f" ({printable(words['reason'].get(t.reason, t.reason))})")
        if t.error:
            line.append(": ")
            line.append(host_text(explain(t.error).get(lang), "yellow"))
        if multi:
            line.append(": ")
            line.append(_counts_text(dict(per_target.get(t.id, Counter())), words))
        console.print(line)
    for key, found in _sections(report.findings):
        if not found:
            continue
        console.print()
        console.print(Text(f"{words['section'][key]} ({len(found)})", style="bold underline"))
        grid = findings_grid()
        for f in found:
            grid.add_row(status_text(f, words),
                         Text(words["severity"].get(f.severity, printable(f.severity))),
                         Text(printable(f.check)),
                         _body(f, lang=lang, words=words, multi=multi, verbose=verbose))
        console.print(grid)
    summary_doc = report.summary()
    counts = summary_doc["by_status"]
    cover = summary_doc["coverage"]
    if verbose:
        console.print()
        console.print(Text(words["coverage"], style="bold underline"))
        console.print(coverage_grid(cover, lang=lang, words=words))
    console.print()
    summary = Text(f"{words['summary']}: ", style="bold")
    summary.append(_counts_text(counts, words, waived=sum(1 for f in report.findings if f.waived)))
    console.print(summary)
    console.print(coverage_line(cover, words))


def organisation_words(findings: Iterable[Finding], target: str, words: dict[str, Any]) -> str:
    """``organisation — questions: 3 answered, 16 open``: answered = attested now; open = still ``manual``
    (never answered, or the answer lapsed)."""
    mine = [f for f in findings if f.target == target]
    answered = sum(1 for f in mine if f.attestation is not None)
    still_open = sum(1 for f in mine if f.attestation is None and f.status == "manual")
    return str(words["organisation"]).format(answered=answered, open=still_open)


def coverage_line(cover: dict[str, dict[str, Any]], words: dict[str, Any]) -> Text:
    """Guideline items by coverage state, in one line: how much of Art. 9 this report vouches for."""
    states = Counter(c["state"] for c in cover.values())
    line = Text(f"{words['coverage']}: ", style="bold")
    line.append("  ".join(f"{words['coverage_state'][s]} {states.get(s, 0)}" for s in COVERAGE_STATES))
    return line


def coverage_grid(cover: dict[str, dict[str, Any]], *, lang: str, words: dict[str, Any]) -> Table:
    """--verbose: every guideline item, its state, on how many targets a program judged it, who attested it,
    which questions are open."""
    titles = guideline_items()
    cols = words["coverage_columns"]
    grid = Table(box=None, padding=(0, 1), show_edge=False)
    grid.add_column(cols["item"], ratio=2, overflow="fold")
    grid.add_column(cols["state"], no_wrap=True)
    grid.add_column(cols["automated"], no_wrap=True)
    grid.add_column(cols["attested"], ratio=1, overflow="fold")
    grid.add_column(cols["unanswered"], ratio=1, overflow="fold")
    for item, c in cover.items():
        title = titles[item].get(lang) if item in titles else ""
        automated = c["automated"]["targets"]
        by = sorted({a["by"] for a in c["attested"] if a.get("by")})
        grid.add_row(host_text(f"{item} {title}".strip()),
                     Text(words["coverage_state"].get(c["state"], printable(str(c["state"]))),
                          style=COVERAGE_STYLE.get(c["state"], "")),
                     Text(words["coverage_targets"].format(n=automated) if automated else "-"),
                     host_text(", ".join(by) or "-"),
                     host_text(", ".join(c["unanswered"]) or "-"))
    return grid
