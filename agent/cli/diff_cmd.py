"""``mamoru diff OLD.json NEW.json``: what got worse, what was fixed, what changed between two scans.

Exit codes: 0 nothing regressed · 1 something regressed (``reports.diff`` says what counts) · 2 a report
could not be read (damaged, not a report, another format version). The reports are read with the same
strict loader as ``mamoru report``; their signatures are not checked here (``mamoru verify`` does that).
"""

from __future__ import annotations

import functools
import sys
from importlib import resources
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from agent.cli.common import lang_option

if TYPE_CHECKING:
    from rich.text import Text

    from reports.diff import Change, CoverageChange, DiffDoc, EvidenceChange, Presence, TargetChange, TargetPresence


@click.command("diff")
@click.argument("old_path", metavar="OLD.json", type=click.Path(dir_okay=False))
@click.argument("new_path", metavar="NEW.json", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True,
              help="Write the comparison as JSON (schema mamoru-diff/1, reports/schema/diff.schema.json).")
@lang_option
def diff(old_path: str, new_path: str, as_json: bool, lang: str) -> int:
    """Compare two reports of the same targets; exit 1 when something regressed."""
    from reports.diff import diff_reports, render_diff_json
    from reports.load import load_report

    old = load_report(old_path)
    new = load_report(new_path)
    doc = diff_reports(old.report, new.report, old_file=Path(old_path).name, new_file=Path(new_path).name)
    if as_json:
        words = diff_labels(lang)
        for w in doc["warnings"]:  # in the JSON too; said on stderr so that a person running a script sees them
            click.echo(_warning(w["code"], w["old"], w["new"], words), err=True)
        sys.stdout.buffer.write(render_diff_json(doc))
        sys.stdout.flush()
    else:
        render_diff_terminal(doc, lang=lang, file=sys.stdout)
    return 1 if doc["regressed"] else 0


@functools.cache
def diff_labels(lang: str) -> dict[str, Any]:
    """The words of ``mamoru diff`` in ``lang`` (reports/diff.yaml)."""
    from agent.config.yamlfile import safe_load

    data: dict[str, Any] = safe_load(resources.files("reports").joinpath("diff.yaml").read_bytes())
    return dict(data[lang])


def _warning(code: str, old: str, new: str, words: dict[str, Any]) -> str:
    from reports.safe_text import printable

    def short(v: str) -> str:
        return printable(v[:16] + "…" if code == "policy_changed" and len(v) > 16 else v) or "-"

    return str(words["warning"][code]).format(old=short(old), new=short(new))


def render_diff_terminal(doc: DiffDoc, *, lang: str, file: IO[str] | None = None, width: int | None = None) -> None:
    """The comparison for a person: regressions first, every host-supplied string escaped, nothing cut."""
    from rich.text import Text

    from reports.diff import SECTIONS
    from reports.safe_text import printable
    from reports.terminal import console_for, findings_grid, host_text, labels

    console = console_for(file, width)
    words = diff_labels(lang)
    term = labels(lang)
    console.print(Text(words["heading"].format(old=printable(doc["old"]["file"]), new=printable(doc["new"]["file"])),
                       style="bold", overflow="fold"))
    for side in (doc["old"], doc["new"]):
        console.print(host_text(words["run"].format(id=side["run_id"], finished=side["finished"],
                                                    version=side["tool_version"]), "dim"))
    for w in doc["warnings"]:
        console.print(Text(_warning(w["code"], w["old"], w["new"], words), style="yellow", overflow="fold"))
    shown = False
    for name in SECTIONS:
        items: list[Any] = doc[name]  # type: ignore[literal-required]
        if not items:
            continue
        shown = True
        console.print()
        console.print(Text(f"{words['section'][name]} ({len(items)})", style="bold underline"))
        grid = findings_grid()
        for item in items:
            if name in ("new_failures", "status_changed", "fixed"):
                row = _change_row(item, term, words, lang)
            elif name == "evidence_changed":
                row = _evidence_row(item, term, words, lang)
            elif name in ("checks_added", "checks_removed"):
                row = _presence_row(item, term, words, lang)
            elif name in ("targets_appeared", "targets_vanished"):
                row = _target_row(item, term, words)
            elif name == "coverage_changed":
                row = _coverage_row(item, term, words, lang)
            else:
                row = _target_change_row(item, term, words)
            grid.add_row(*row)
        console.print(grid)
    console.print()
    if not shown:
        console.print(Text(words["nothing"]))
    counts = Text(f"{words['counts']}: ", style="bold")
    counts.append("  ".join(f"{words['section'][n]} {doc['counts'][n]}" for n in SECTIONS if doc["counts"][n]))
    if shown:
        console.print(counts)
    if doc["regressed"]:
        console.print(Text(words["result_regressed"].format(n=doc["counts"]["regressions"]), style="bold red"))
    else:
        console.print(Text(words["result_ok"], style="green"))


def _marker(regression: bool, words: dict[str, Any]) -> Text:
    from rich.text import Text

    return Text(words["regression"], style="bold red") if regression else Text("")


def _status(side: dict[str, Any], term: dict[str, Any], words: dict[str, Any]) -> str:
    from reports.safe_text import printable

    text = str(term["status"].get(side["status"], printable(str(side["status"]))))
    if side.get("waived"):
        text += f" ({words['waived']})"
    return text


def _head(item: Change | EvidenceChange | Presence, lang: str) -> Text:
    from rich.text import Text

    from reports.terminal import host_text

    head = Text(overflow="fold")
    head.append(host_text(item["title"].get(lang, ""), "bold"))
    head.append("  ")
    head.append(host_text(item["target"], "dim"))
    return head


def _severity(item: Change | EvidenceChange | Presence, term: dict[str, Any]) -> Text:
    from rich.text import Text

    from reports.safe_text import printable

    return Text(str(term["severity"].get(item["severity"], printable(item["severity"]))))


def _check(item: Change | EvidenceChange | Presence) -> Text:
    from rich.text import Text

    from reports.safe_text import printable

    return Text(printable(item["check"]))


def _change_row(item: Change, term: dict[str, Any], words: dict[str, Any], lang: str) -> tuple[Text, ...]:
    from reports.terminal import host_text

    body = _head(item, lang)
    body.append(f"\n{_status(dict(item['old']), term, words)} → {_status(dict(item['new']), term, words)}",
                style="bold red" if item["regression"] else "green" if item["new"]["status"] == "pass" else "")
    if item["new"]["status"] != "pass":
        body.append("\n")
        body.append(host_text(item["message"].get(lang, "")))
    return _marker(item["regression"], words), _severity(item, term), _check(item), body


def _evidence_row(item: EvidenceChange, term: dict[str, Any], words: dict[str, Any], lang: str) -> tuple[Text, ...]:
    from rich.text import Text

    from reports.terminal import host_text

    body = _head(item, lang)
    body.append(f"  ({term['status'].get(item['status'], '')})", style="dim")
    for sign, entries in (("+", item["added"]), ("-", item["removed"])):
        for e in entries:
            body.append(f"\n{sign} ")
            body.append(host_text(e["path"], "bold"))
            body.append(": ")
            body.append(host_text(e["value"]))
    for c in item["changed"]:
        body.append("\n~ ")
        body.append(host_text(c["path"], "bold"))
        body.append(": ")
        body.append(host_text(c["old"], "red"))
        body.append(" → ")
        body.append(host_text(c["new"], "green"))
    return Text(""), _severity(item, term), _check(item), body


def _presence_row(item: Presence, term: dict[str, Any], words: dict[str, Any], lang: str) -> tuple[Text, ...]:
    body = _head(item, lang)
    body.append(f"\n{_status(dict(item), term, words)}")
    return _marker(item["regression"], words), _severity(item, term), _check(item), body


def _target_row(item: TargetPresence, term: dict[str, Any], words: dict[str, Any]) -> tuple[Text, ...]:
    from rich.text import Text

    from reports.safe_text import printable
    from reports.terminal import host_text

    body = Text(overflow="fold")
    body.append(host_text(item["target"], "bold"))
    body.append(" ")
    body.append(host_text(item["hostname"]))
    body.append(" (")
    body.append(host_text(item["os"]))
    body.append(f") — {printable(str(term['target_status'].get(item['status'], item['status'])))}\n")
    body.append("  ".join(f"{term['status'][s]} {n}" for s, n in item["counts"].items()))
    return _marker(item["regression"], words), Text(""), Text(""), body


def _coverage_row(item: CoverageChange, term: dict[str, Any], words: dict[str, Any],
                  lang: str) -> tuple[Text, ...]:
    """A guideline item whose coverage changed: its id and title, old state → new state (terminal words)."""
    from rich.text import Text

    from reports.safe_text import printable
    from reports.terminal import host_text

    state = term["coverage_state"]
    body = Text(overflow="fold")
    body.append(host_text(f"{item['item']} {item['title'].get(lang, '')}".strip(), "bold"))
    body.append(f"\n{printable(str(state.get(item['old_state'], item['old_state'])))} → "
                f"{printable(str(state.get(item['new_state'], item['new_state'])))}")
    return _marker(item["regression"], words), Text(""), Text(""), body


def _target_change_row(item: TargetChange, term: dict[str, Any], words: dict[str, Any]) -> tuple[Text, ...]:
    from rich.text import Text

    from reports.safe_text import printable
    from reports.terminal import host_text

    status = term["target_status"]
    body = Text(overflow="fold")
    body.append(host_text(item["target"], "bold"))
    body.append(f"\n{printable(str(status.get(item['old_status'], item['old_status'])))} → "
                f"{printable(str(status.get(item['new_status'], item['new_status'])))}")
    if item["old_hostname"] != item["new_hostname"]:
        body.append("\n")
        body.append(host_text(item["old_hostname"]))
        body.append(" → ")
        body.append(host_text(item["new_hostname"]))
    if item["machine_changed"]:
        body.append(f"\n{words['machine_changed']}", style="yellow")
    return _marker(item["regression"], words), Text(""), Text(""), body
