"""``mamoru incident draft``: the safeguards part of a breach report to the PPC (Act Art. 26), drafted from a report.

After a leak, the business must say what it knows under the nine items of the Enforcement Rules Art. 8(1)
(overview, data items, number of people, cause, secondary damage, response to the people, publication,
recurrence prevention, other), and the MLIT guideline Art. 21 (MLIT-21) asks it to show which prevention
measures were in place. A signed, dated mamoru report is that evidence, but only if the statement drawn from
it can be checked: so the draft names the run id, the SHA-256 of the exact report bytes, the audit time and
the signature status and key fingerprint *as checked now* (``reports.signature_status``), and a report that is
unsigned or whose signature does not verify is said so at the top, in bold.

What the draft says about safeguards is only what the report recorded, per guideline item with each check's
statuses and the hosts they were found on; a part with no finding says it was not audited (never "in
place"). What a program cannot know (overview, number of people, cause …) is left as questions. Every word is
in ``reports/incident.yaml`` (ja/en); the research behind it is ``formats.md`` §C2, and the PPC's form itself
was not read, which the draft says rather than inventing field numbers.

Escaping: the template (``reports/templates/incident.md.j2``) escapes every ``{{ … }}`` with the Markdown
report's ``md()`` unless the value is ``Trusted`` (our own texts from the data file). A string built from a
trusted one by any ``str`` operation is a plain ``str`` again, so escaping is the default, never an opt-in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import re
import shlex
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from agent.config.yamlfile import safe_load
from checks.base import guideline_items
from reports.formats.html import moment
from reports.formats.markdown import md
from reports.formats.texts import in_lang, words
from reports.model import Finding, Report
from reports.safe_text import printable
from reports.signature_status import SignatureInfo

#: The order results are listed in: what needs action, what could not be judged, then the rest.
STATUS_ORDER = ("fail", "error", "manual", "pass", "not_applicable")
LANGS = ("ja", "en")


class Trusted(str):
    """Markdown we wrote (the data file's texts): shown as it is. Any ``str`` operation on it gives a plain
    ``str``, which the template escapes."""

    __slots__ = ()


def _trust(value: Any) -> Any:
    if isinstance(value, str):
        return Trusted(value)
    if isinstance(value, list):
        return [_trust(v) for v in value]
    if isinstance(value, dict):
        return {k: _trust(v) for k, v in value.items()}
    return value


@functools.cache
def _data() -> dict[str, Any]:
    data: dict[str, Any] = safe_load(resources.files("reports").joinpath("incident.yaml").read_bytes())
    return data


def texts(lang: str) -> dict[str, Any]:
    """The draft's words in ``lang`` (ja or en), every one ``Trusted``."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}")
    out: dict[str, Any] = _trust(_data()[lang])
    return out


@dataclasses.dataclass(frozen=True)
class Topic:
    """A part of "measures in place": exactly ``checks``, or every finding naming one of ``guideline``."""

    id: str
    checks: tuple[str, ...] = ()
    guideline: tuple[str, ...] = ()

    def wants(self, f: Finding) -> bool:
        if self.checks:
            return f.check in self.checks
        return any(g in self.guideline for g in f.guideline)

    def group_of(self, f: Finding) -> str:
        """The guideline item a finding is listed under in this part."""
        if self.checks:
            return f.guideline[0] if f.guideline else ""
        return next(g for g in self.guideline if g in f.guideline)


def topics() -> list[Topic]:
    return [Topic(id=t["id"], checks=tuple(t.get("checks", ())), guideline=tuple(t.get("guideline", ())))
            for t in _data()["topics"]]


def _fill(text: str, **values: Any) -> Trusted:
    """A trusted text with ``{name}`` fields filled by escaped values."""
    return Trusted(text.format(**{k: md(str(v)) for k, v in values.items()}))


def _fenced(text: str) -> Trusted:
    """One line of text in a code block its own backticks cannot close (a file name may hold any of them)."""
    body = printable(text)
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return Trusted(f"{fence}sh\n{body}\n{fence}")


def _finalize(value: Any) -> Any:
    """Every ``{{ … }}`` passes here: our own texts as they are, everything else as inert Markdown."""
    if isinstance(value, Trusted):
        return str(value)
    if isinstance(value, bool) or value is None:
        raise TypeError(f"the incident template printed {value!r}: a template bug")
    if isinstance(value, int):
        return str(value)
    return md(str(value))


@functools.cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("reports", "templates"),
        autoescape=False,  # noqa: S701 - Markdown, not HTML: _finalize escapes every value instead
        finalize=_finalize,
        undefined=StrictUndefined,  # a missing word is a bug, not an empty line
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fill"] = _fill
    return env


def _host_names(report: Report) -> dict[str, str]:
    """Target id -> how the draft names it: its host name, with the target id when two share one (two PCs
    both called ``pc`` must not merge into one line that says "pass: pc" and "fail: pc")."""
    from collections import Counter

    seen = Counter(t.hostname for t in report.targets if t.hostname)
    return {t.id: (t.hostname if seen[t.hostname] == 1 else f"{t.hostname} ({t.id})") if t.hostname else t.id
            for t in report.targets}


def _results(findings: Sequence[Finding], hosts: dict[str, str], t: dict[str, Any], sep: str,
             status_words: dict[str, str]) -> list[dict[str, Any]]:
    """One check's results: per status (a waived failure apart), the hosts it was found on."""
    out = []
    for status in STATUS_ORDER:
        for waived in (False, True):
            mine = [f for f in findings if f.status == status and f.waived == waived]
            if mine:
                label = Trusted(status_words[status] + (f" ({t['waived']})" if waived else ""))
                out.append({"status": label, "hosts": sep.join(sorted({hosts.get(f.target, f.target)
                                                                       for f in mine}))})
    return out


def _topic_view(topic: Topic, findings: Sequence[Finding], hosts: dict[str, str], lang: str,
                t: dict[str, Any], status_words: dict[str, str]) -> dict[str, Any]:
    items = guideline_items()
    mine = [f for f in findings if topic.wants(f)]
    groups: dict[str, list[Finding]] = {}
    for f in mine:
        groups.setdefault(topic.group_of(f), []).append(f)
    order = list(topic.guideline) + sorted(g for g in groups if g not in topic.guideline)
    views = []
    for item in (g for g in order if g in groups):
        rows = []
        by_check: dict[str, list[Finding]] = {}
        for f in groups[item]:
            by_check.setdefault(f.check, []).append(f)
        for check in sorted(by_check):
            fs = by_check[check]
            details = [{"check": f.check, "host": hosts.get(f.target, f.target),
                        "message": in_lang(f.message, lang)}
                       for f in sorted(fs, key=lambda f: (STATUS_ORDER.index(f.status)
                                                          if f.status in STATUS_ORDER else 9, f.target))
                       if f.status not in ("pass", "not_applicable")]
            rows.append({"check": check, "title": in_lang(fs[0].title, lang),
                         "results": _results(fs, hosts, t, t["hosts_sep"], status_words), "details": details})
        views.append({"item": item, "item_title": items[item].get(lang) if item in items else "", "rows": rows})
    topic_texts = t["topic"][topic.id]
    return {"id": topic.id, "title": topic_texts["title"], "note": topic_texts["note"], "groups": views}


def _organisation(report: Report, lang: str, status_words: dict[str, str]) -> list[dict[str, Any]] | None:
    org = {t.id for t in report.targets if t.kind == "organisation"}
    mine = sorted((f for f in report.findings if f.target in org), key=lambda f: f.check)
    if not mine:
        return None
    rows = []
    for f in mine:
        a = f.attestation
        rows.append({"check": f.check, "title": in_lang(f.title, lang), "status": Trusted(status_words[f.status])
                     if f.status in status_words else f.status,
                     "attestation": None if a is None else " · ".join(
                         str(a.get(k, "")) for k in ("by", "at", "evidence", "valid_until"))})
    return rows


def _failures(report: Report, hosts: dict[str, str], lang: str, sep: str) -> list[dict[str, Any]]:
    by_check: dict[str, list[Finding]] = {}
    for f in report.findings:
        if f.status == "fail":
            by_check.setdefault(f.check, []).append(f)
    return [{"check": check, "title": in_lang(fs[0].title, lang),
             "hosts": sep.join(sorted({hosts.get(f.target, f.target) for f in fs})),
             "remediation": in_lang(fs[0].remediation, lang)} for check, fs in sorted(by_check.items())]


def _when(stamp: str) -> str:
    m = moment(stamp)
    return f"{m.jst} ({m.utc})" if m.jst != m.utc else stamp


def context(report: Report, data: bytes, sig: SignatureInfo, *, lang: str, source: str,
            now: dt.datetime | None = None) -> dict[str, Any]:
    """Everything the template shows; host-supplied values stay plain ``str`` (escaped on output)."""
    t = texts(lang)
    status_words = {k: str(v) for k, v in words(lang)["status"].items()}
    hosts = _host_names(report)
    sep = t["hosts_sep"]
    run = report.run
    checked = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sha = hashlib.sha256(data).hexdigest()
    period = f"{_when(run.started)} – {_when(run.finished)}"
    findings = [f for f in report.findings
                if f.target not in {x.id for x in report.targets if x.kind == "organisation"}]
    basis = {
        "file": source, "run": run.id, "sha256": sha, "period": period,
        "tool": f"{run.tool.get('name', '')} {run.tool.get('version', '')}",
        "policy": f"{run.policy.get('name', '')} (sha256 {run.policy.get('sha256', '')})",
        "signature": t["signature_status"][sig.status], "fingerprint": sig.fingerprint,
        "signers": ", ".join(sig.principals), "problem": sig.problem, "checked_at": checked,
        "partial": run.partial,
        "verify": [_fenced(f"sha256sum {shlex.quote(source)}"),
                   _fenced(f"mamoru verify {shlex.quote(source)} --allowed-signers allowed_signers")],
    }
    targets = [{"hostname": tr.hostname, "id": tr.id, "os": tr.os,
                "state": str(words(lang)["target_status"].get(tr.status, tr.status))}
               for tr in report.targets if tr.kind != "organisation"]
    return {
        "t": t,
        "banner": t["banner"][sig.status],
        "basis": basis,
        "targets": targets,
        "measures_intro": _fill(t["measures_intro"], run=run.id, sha256=sha, when=period),
        "topics": [_topic_view(tp, findings, hosts, lang, t, status_words) for tp in topics()],
        "organisation": _organisation(report, lang, status_words),
        "failures": _failures(report, hosts, lang, sep),
    }


def render_draft(report: Report, data: bytes, sig: SignatureInfo, *, lang: str, source: str,
                 now: dt.datetime | None = None) -> str:
    """The draft as Markdown in ``lang``, from a report, its exact bytes and its signature as checked now."""
    ctx = context(report, data, sig, lang=lang, source=source, now=now)
    return _environment().get_template("incident.md.j2").render(**ctx)


def all_topic_checks() -> Iterable[str]:
    """The checks a part names explicitly (for a test that every one exists)."""
    for tp in topics():
        yield from tp.checks
