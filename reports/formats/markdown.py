"""The report as Markdown (GitHub-flavoured): for a ticket, a wiki page or a pull request.

Summary first (run, policy, signature as checked now, the coverage of every guideline item, counts per status
and per guideline item, targets — the organisation with its questions answered and open),
then what to fix, failures by severity with remediation and evidence, then every finding in one table. An
attested finding (an organisation question a person answered) is marked "attested" with who, when, evidence
and valid until: never to be read as a machine result.

Host strings (hostnames, SSIDs, file contents, user names, evidence) are hostile: in running text and table
cells they are HTML-escaped, then every Markdown metacharacter is backslash-escaped, control characters are
shown as ``\\xNN`` and a newline becomes ``<br>``, so none can open a tag, a link, an image, emphasis or a new
table row. Evidence and expected values go in fenced code blocks whose fence is longer than any run of
backticks inside, so nothing can close the block early.
"""

from __future__ import annotations

import html
import json
import re
from collections import Counter
from typing import Any

from checks.base import explain, guideline_items
from checks.organisation import ORGANISATION_KIND
from reports.formats import RenderContext
from reports.formats.texts import attestation_fields, in_lang, organisation_counts, waiver_fields, words
from reports.model import STATUSES, Finding, Report
from reports.safe_text import printable

#: Punctuation that means something inside a line of GitHub Markdown (emphasis, code, links, images, table
#: cells, strikethrough, math ``$``; the ``<`` of ``<http://…>`` autolinks is an entity by then). CommonMark
#: lets any ASCII punctuation be backslash-escaped. Not ``&`` and ``;``: the HTML escaping before it writes
#: entities with them. Line-start syntax (``#``, ``-``, ``1.``, ``>``) cannot arise: host text never starts a
#: line here (a newline is ``<br>``). A bare ``http://…`` in host text may still be shown as a link by GitHub,
#: to exactly the address shown.
_MD_META = re.compile(r"([\\`*_{}\[\]()!|~<>$])")
SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def md(text: str) -> str:
    """Host text as inert inline Markdown: no tag, link, emphasis, code span or table cell break."""
    lines = [_MD_META.sub(r"\\\1", html.escape(printable(line), quote=False)) for line in text.split("\n")]
    return "<br>".join(lines)


def code_block(value: Any) -> str:
    """A value as pretty JSON in a fenced block that its own backticks cannot close."""
    body = json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}json\n{body}\n{fence}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _waiver(f: Finding, w: dict[str, Any]) -> str:
    fields = {k: md(v) for k, v in waiver_fields(f).items()}
    fields["state"] = md(w["waiver_state"].get(waiver_fields(f)["state"], waiver_fields(f)["state"]))
    line: str = w["waiver_line"].format(**fields)
    return line


def _attestation(f: Finding, w: dict[str, Any]) -> str:
    """Who declared an attested finding, when, on what evidence, until when (all host-like text: escaped)."""
    line: str = w["attestation_line"].format(**{k: md(v) for k, v in attestation_fields(f).items()})
    return line


#: summary.coverage states (reports/coverage.py), best first.
COVERAGE_STATES = ("covered", "partly", "uncovered", "absent")


def _coverage(report: Report, lang: str, w: dict[str, Any]) -> list[str]:
    """Every guideline item: covered / partly / uncovered / absent, on how many targets a program judged it,
    who attested it, which questions are still open. Near the top: it says how much of Art. 9 this covers."""
    items = guideline_items()
    cover = report.summary()["coverage"]
    states = Counter(c["state"] for c in cover.values())
    c = w["coverage_columns"]
    lines = [f"## {w['coverage']}", "",
             " · ".join(f"{w['coverage_state'][s]} {states.get(s, 0)}" for s in COVERAGE_STATES), ""]
    rows = []
    for item, v in cover.items():
        by = sorted({str(a.get("by", "")) for a in v["attested"] if a.get("by")})
        rows.append([md(item), md(items[item].get(lang)) if item in items else "",
                     md(w["coverage_state"].get(v["state"], v["state"])), str(v["automated"]["targets"]),
                     md(", ".join(by)) or "-", md(", ".join(v["unanswered"])) or "-"])
    lines += _table(["ID", w["columns"]["guideline"], c["state"], c["automated"], c["attested"], c["unanswered"]],
                    rows)
    return [*lines, ""]


def _cover(report: Report, ctx: RenderContext, w: dict[str, Any]) -> list[str]:
    run = report.run
    sig = ctx.signature
    sig_text = w["signature_status"][sig.status if sig is not None else "unchecked"]
    if sig is not None and sig.fingerprint:
        sig_text += f" ({md(sig.fingerprint)}"
        sig_text += f", {', '.join(md(p) for p in sig.principals)})" if sig.principals else ")"
    lines = [f"# {w['report_title']}", ""]
    if ctx.source:
        lines += [md(ctx.source), ""]
    lines += [
        f"- **{w['run']}**: {md(run.id)}",
        f"- **{w['period']}**: {md(run.started)} – {md(run.finished)}",
        f"- **{w['tool']}**: {md(run.tool.get('name', ''))} {md(run.tool.get('version', ''))}",
        f"- **{w['policy']}**: {md(run.policy.get('name', ''))} (sha256 {md(run.policy.get('sha256', ''))})",
        f"- **{w['operator']}**: {md(run.operator.get('user', ''))}@{md(run.operator.get('host', ''))}",
    ]
    if run.scope:
        lines.append(f"- **{w['scope']}**: {md(run.scope)}")
    lines += [f"- **{w['signature']}**: {sig_text}", ""]
    return lines


def _summary(report: Report, lang: str, w: dict[str, Any]) -> list[str]:
    items = guideline_items()
    summary = report.summary()
    status_words = [w["status"][s] for s in STATUSES]
    lines = [f"## {w['summary']}", ""]
    lines += _table([*status_words, w["total"]],
                    [[*(str(summary["by_status"][s]) for s in STATUSES), str(len(report.findings))]])
    lines += ["", f"### {w['by_guideline']}", ""]
    rows = [[md(item), md(items[item].get(lang)) if item in items else ""] + [str(c[s]) for s in STATUSES]
            for item, c in summary["by_guideline"].items()]
    lines += _table(["ID", w["columns"]["guideline"], *status_words], rows)
    lines += ["", f"## {w['targets']}", ""]
    rows = []
    for t in report.targets:
        state = w["target_status"].get(t.status, t.status)
        if t.error:
            state += ": " + explain(t.error).get(lang)
        if t.kind == ORGANISATION_KIND:  # no hostname or OS: its questions, answered and open
            questions = w["organisation_questions"].format(**organisation_counts(report.findings, t.id))
            rows.append([md(t.id), md(w["organisation"]), md(questions), md(state)])
            continue
        rows.append([md(t.id), md(t.hostname), md(t.os), md(state)])
    lines += _table([w["target"], w["hostname"], w["os"], w["state"]], rows)
    return [*lines, ""]


def _failures(report: Report, lang: str, w: dict[str, Any]) -> list[str]:
    hosts = {t.id: t.hostname for t in report.targets}
    fails = sorted((f for f in report.findings if f.status == "fail"),
                   key=lambda f: (f.waived, SEVERITY_ORDER.get(f.severity, 9), f.check, f.target))
    lines = [f"## {w['failures']}", ""]
    if not fails:
        return [*lines, w["no_failures"], ""]
    for f in fails:
        host = f" ({md(hosts[f.target])})" if hosts.get(f.target) else ""
        lines += [f"### {w['severity'][f.severity]} · {md(f.check)} {md(in_lang(f.title, lang))}", "",
                  f"- **{w['target']}**: {md(f.target)}{host}",
                  f"- **{w['message']}**: {md(in_lang(f.message, lang))}",
                  f"- **{w['remediation']}**: {md(in_lang(f.remediation, lang))}"]
        if f.attestation is not None:
            lines.append(f"- **{w['attestation']}**: {_attestation(f, w)}")
        if f.waiver is not None:
            lines.append(f"- **{w['waiver']}**: {_waiver(f, w)}" + (f" — {w['waived']}" if f.waived else ""))
        lines += ["", f"**{w['expected']}**", "", code_block(f.expected), "",
                  f"**{w['evidence']}**", "", code_block(f.evidence), ""]
    return lines


def _all(report: Report, lang: str, w: dict[str, Any]) -> list[str]:
    c = w["columns"]
    rows = []
    for f in report.findings:
        status = w["status"][f.status] + (f" ({w['waived']})" if f.waived else "")
        status += f" ({w['attested']})" if f.attestation is not None else ""
        message = md(in_lang(f.message, lang))
        if f.attestation is not None:
            message += f"<br>{md(w['attestation'])}: {_attestation(f, w)}"
        if f.waiver is not None:
            message += f"<br>{w['waiver']}: {_waiver(f, w)}"
        rows.append([md(f.target), md(f.check), md(status), md(w["severity"][f.severity]),
                     md(in_lang(f.title, lang)), message])
    lines = [f"## {w['findings']}", ""]
    lines += _table([c["target"], c["check"], c["status"], c["severity"], c["title"], c["message"]], rows)
    return [*lines, ""]


class MarkdownFormat:
    name = "markdown"
    suffix = ".md"
    media_type = "text/markdown; charset=utf-8"

    def render(self, report: Report, ctx: RenderContext) -> bytes:
        w = words(ctx.lang)
        lines = _cover(report, ctx, w) + _coverage(report, ctx.lang, w) + _summary(report, ctx.lang, w)
        lines += _failures(report, ctx.lang, w)
        lines += _all(report, ctx.lang, w)
        text = "\n".join(lines)
        return text.encode("utf-8", "backslashreplace")


FORMAT = MarkdownFormat()
