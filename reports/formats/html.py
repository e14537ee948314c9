"""The report as one self-contained, printable HTML page, for the office that receives the findings.

Why it is built this way:

- Jinja2 with autoescape on for every expression, and a ``finalize`` hook that makes every string visible
  (control characters, bidi overrides and lone surrogates become ``\\x1b``-style escapes): hostnames, SSIDs,
  user names and evidence come from the audited machines and are hostile. Nothing from the report is ever
  marked safe; the only markup-safe values are this module's own CSS and the CSP derived from it.
- One file that fetches nothing: the CSS is inline, there is no script, image or font by URL, and a
  Content-Security-Policy meta tag (``default-src 'none'``, the inline style allowed by its SHA-256 only)
  makes the browser refuse anything else even if an escape were missed.
- The logic (ordering, counting, time zones) lives here; the template only lays out what it is given, and
  every word a person reads comes from ``html.yaml`` in the report's language.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import functools
import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from agent.config.yamlfile import safe_load
from checks.base import explain, guideline_items
from checks.organisation import ORGANISATION_KIND
from reports.formats import RenderContext
from reports.model import STATUSES, Finding, Report, TargetRecord
from reports.safe_text import printable_lines

#: The order a reader meets findings in: what needs action, what could not be judged, then the rest.
STATUS_ORDER = ("fail", "error", "manual", "pass", "not_applicable")
SEVERITY_ORDER = ("critical", "high", "medium", "low")
#: summary.coverage states (reports/coverage.py), best first.
COVERAGE_STATES = ("covered", "partly", "uncovered", "absent")
#: Evidence or expected value longer than this (characters of pretty JSON) is cut in the page: a printout of a
#: megabyte of file contents helps nobody, and the JSON report keeps it whole.
MAX_JSON_CHARS = 20_000
JSON_WIDTH = 80  # characters of evidence on one line before it is opened up (about the width of the A4 box)
JST = dt.timezone(dt.timedelta(hours=9), "JST")  # Japan has no daylight saving time: a fixed offset is exact


@functools.cache
def labels(lang: str) -> dict[str, Any]:
    """The page's words in ``lang``, from ``reports/formats/html.yaml``."""
    data: dict[str, Any] = safe_load(resources.files("reports.formats").joinpath("html.yaml").read_bytes())
    return dict(data[lang])


@functools.cache
def _css() -> str:
    return resources.files("reports").joinpath("templates/report.css").read_text("utf-8")


def csp(css: str) -> str:
    """The page's policy: nothing may load or run; only the page's own inline stylesheet, by its hash."""
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return f"default-src 'none'; style-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"


def _finalize(value: Any) -> Any:
    """Every ``{{ … }}`` passes here before autoescape: strings lose what a reader could not see."""
    if isinstance(value, Markup):
        return value
    if isinstance(value, str):
        return printable_lines(value)
    return value


@functools.cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=True,  # every template, whatever its name: the page is all HTML
        finalize=_finalize,
        undefined=StrictUndefined,  # a missing label is a bug, not an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _json_lines(value: Any, indent: int) -> str:
    """JSON laid out for reading: a value that fits on one line stays on one line, a longer one is opened up
    one level at a time (``json.dumps(indent=2)`` puts every list item on a line of its own and turns a
    short list of shells or ports into a page)."""
    flat = json.dumps(value, ensure_ascii=False, default=repr)
    if not isinstance(value, (dict, list)) or not value or indent + len(flat) <= JSON_WIDTH:
        return flat
    inner = " " * (indent + 2)
    if isinstance(value, dict):
        parts = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_json_lines(v, indent + 2)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(parts) + "\n" + " " * indent + "}"
    parts = [inner + _json_lines(v, indent + 2) for v in value]
    return "[\n" + ",\n".join(parts) + "\n" + " " * indent + "]"


def pretty_json(value: Any, limit: int = MAX_JSON_CHARS) -> tuple[str | None, int]:
    """JSON for people (Japanese shown as itself), and how many characters were cut to ``limit``.

    None when the value is nested too deeply to lay out: the page says so instead of failing."""
    try:
        text = _json_lines(value, 0)
    except RecursionError:
        return None, 0
    if len(text) <= limit:
        return text, 0
    return text[:limit], len(text) - limit


@dataclasses.dataclass(frozen=True)
class Moment:
    jst: str
    utc: str


def moment(stamp: str) -> Moment:
    """A report timestamp (``…Z``) in Japan time and UTC; shown as written when it cannot be read."""
    try:
        t = dt.datetime.fromisoformat(stamp)
    except ValueError:
        return Moment(jst=stamp, utc=stamp)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return Moment(jst=t.astimezone(JST).strftime("%Y-%m-%d %H:%M:%S JST"),
                  utc=t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))


def _rank(order: tuple[str, ...], value: str) -> int:
    return order.index(value) if value in order else len(order)


def finding_order(f: Finding) -> tuple[int, int, int, str, str]:
    """Failures first (those under a waiver in force after the others), most severe first, then by check."""
    return (_rank(STATUS_ORDER, f.status), int(f.waived), _rank(SEVERITY_ORDER, f.severity), f.check, f.target)


def _counts(findings: Iterable[Finding]) -> dict[str, int]:
    c = Counter({s: 0 for s in STATUSES})
    waived = 0
    for f in findings:
        c[f.status] += 1
        waived += f.waived
    out = dict(c)
    out["total"] = sum(c.values())
    out["waived"] = waived
    return out


def _pick(text: dict[str, str], lang: str) -> str:
    return text.get(lang) or text.get("en") or text.get("ja") or ""


def _finding_view(f: Finding, n: int, lang: str, items: dict[str, str], hosts: dict[str, str]) -> dict[str, Any]:
    evidence, evidence_cut = pretty_json(f.evidence)
    expected, expected_cut = pretty_json(f.expected)
    return {
        "anchor": f"f{n}",
        "check": f.check,
        "target": f.target,
        "host": hosts.get(f.target, ""),
        "status": f.status,
        "severity": f.severity,
        "guideline": [(g, items.get(g, "")) for g in f.guideline],
        "title": _pick(f.title, lang),
        "message": _pick(f.message, lang),
        "remediation": _pick(f.remediation, lang),
        "evidence": evidence,
        "evidence_cut": evidence_cut,
        "expected": expected,
        "expected_cut": expected_cut,
        "waiver": f.waiver,
        "waived": f.waived,
        "attestation": f.attestation,
    }


def _host_view(t: TargetRecord, findings: list[Finding], lang: str) -> dict[str, Any]:
    mine = [f for f in findings if f.target == t.id]
    return {
        "id": t.id,
        # the organisation has no hostname or OS: its line says how many of its questions were answered
        "organisation": {"answered": sum(1 for f in mine if f.attestation is not None),
                         "open": sum(1 for f in mine if f.attestation is None and f.status == "manual")}
        if t.kind == ORGANISATION_KIND else None,
        "hostname": t.hostname,
        "os": t.os,
        "status": t.status,
        "reason": t.reason if t.status != "ok" and t.reason not in (None, t.status, "error") else None,
        "error": explain(t.error).get(lang) if t.error else None,
        "tags": sorted(t.tags.items()),
        "counts": _counts(mine),
    }


def coverage_rows(report: Report, lang: str) -> list[dict[str, Any]]:
    """``summary.coverage`` as rows: every guideline item, its state, on how many targets a program judged it,
    who attested it, which questions are still open."""
    titles = guideline_items()
    rows = []
    for item, c in report.summary()["coverage"].items():
        rows.append({"id": item, "title": titles[item].get(lang) if item in titles else "", "state": c["state"],
                     "targets": c["automated"]["targets"],
                     "attested": sorted({str(a.get("by", "")) for a in c["attested"] if a.get("by")}),
                     "unanswered": list(c["unanswered"])})
    return rows


def _shared_tags(targets: list[TargetRecord]) -> list[tuple[str, str]]:
    """Tags every target carries with the same value: the nearest thing a report has to its organisation."""
    if not targets:
        return []
    shared = set(targets[0].tags.items())
    for t in targets[1:]:
        shared &= set(t.tags.items())
    return sorted(shared)


def _by_check(views: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Failures of one check on several hosts as one entry: one remediation to read, the hosts listed under it.

    ``views`` come most severe first; an entry keeps the place of its first (most severe) failure."""
    groups: dict[str, dict[str, Any]] = {}
    for v in views:
        g = groups.setdefault(v["check"], {"check": v["check"], "severity": v["severity"], "title": v["title"],
                                           "remediation": v["remediation"], "hits": []})
        g["hits"].append(v)
    return list(groups.values())


def context(report: Report, ctx: RenderContext) -> dict[str, Any]:
    """Everything the template shows, already ordered and counted."""
    lang = ctx.lang if ctx.lang in ("ja", "en") else "en"
    words = labels(lang)
    items = {k: v.get(lang) for k, v in guideline_items().items()}
    hosts = {t.id: t.hostname for t in report.targets}
    ordered = sorted(report.findings, key=finding_order)
    views = [_finding_view(f, n, lang, items, hosts) for n, f in enumerate(ordered, 1)]
    by_item: dict[str, list[Finding]] = {}
    for f in report.findings:
        for g in f.guideline:
            by_item.setdefault(g, []).append(f)
    sig = ctx.signature
    verdict = {1: "fail", 3: "unjudged"}.get(report.exit_code(), "clean")
    css = _css()
    return {
        "lang": lang,
        "L": words,
        "css": Markup(css),  # noqa: S704 — this module's own stylesheet, never report data
        "csp": csp(css),
        "run": report.run,
        "started": moment(report.run.started),
        "finished": moment(report.run.finished),
        "source": ctx.source,
        "signature": sig,
        "verdict": verdict,
        "totals": _counts(report.findings),
        "shared_tags": _shared_tags(report.targets),
        "targets": [_host_view(t, report.findings, lang) for t in report.targets],
        "fleet": len(report.targets) > 1,
        "coverage": coverage_rows(report, lang),
        "coverage_counts": Counter(c["state"] for c in report.summary()["coverage"].values()),
        "coverage_states": COVERAGE_STATES,
        "items": [{"id": g, "title": items.get(g, ""), "counts": _counts(fs)} for g, fs in sorted(by_item.items())],
        "to_fix": _by_check(v for v in views if v["status"] == "fail" and not v["waived"]),
        "waived": [v for v in views if v["waived"]],
        "findings": views,
        "statuses": STATUS_ORDER,
    }


def render_html(report: Report, ctx: RenderContext) -> str:
    return _environment().get_template("report.html.j2").render(context(report, ctx))


class HtmlFormat:
    name = "html"
    suffix = ".html"
    media_type = "text/html; charset=utf-8"

    def render(self, report: Report, ctx: RenderContext) -> bytes:
        # finalize already escaped lone surrogates; backslashreplace is the net under it, never a crash
        return render_html(report, ctx).encode("utf-8", errors="backslashreplace")


FORMAT = HtmlFormat()
