"""JUnit XML for CI pipelines: one ``testsuite`` per target, one ``testcase`` per finding.

``fail`` is a ``<failure>``, ``error`` (could not judge) an ``<error>``, ``not_applicable`` and ``manual`` a
``<skipped>`` with the reason. A failure under a waiver in force is ``<skipped>`` too, its message starting
with the waiver (state, reason, approver, expiry): it is accepted risk and does not fail the run, exactly as
``mamoru scan``'s exit code treats it; an expired waiver is a ``<failure>`` again, the waiver in its text.
An attested finding (an organisation question a person answered) starts its message with ``[attested]`` and
carries the declaration (who, when, evidence, valid until) in its ``system-out`` and its body.
Only elements and attributes of the Jenkins xunit ``junit-10.xsd`` are used, so the strictest consumers read
it. Built with ElementTree (escaping is the library's); characters XML 1.0 cannot carry (control characters,
lone surrogates) are written as visible ``\\xNN`` escapes rather than dropped.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from typing import Any

from checks.base import explain
from reports.formats import RenderContext
from reports.formats.texts import attestation_fields, in_lang, waiver_fields, words
from reports.model import Finding, Report, TargetRecord

_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text: str) -> str:
    """``text`` with every character XML 1.0 forbids written as a visible escape."""
    return _XML_ILLEGAL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                            else f"\\u{ord(m.group()):04x}", text)


def _seconds(ms: float) -> str:
    return f"{max(ms, 0.0) / 1000:.3f}"


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True)


def _body(f: Finding, lang: str, w: dict[str, Any]) -> str:
    parts = [in_lang(f.message, lang)]
    remediation = in_lang(f.remediation, lang)
    if remediation:
        parts.append(f"{w['remediation']}: {remediation}")
    if f.expected is not None:
        parts.append(f"{w['expected']}: {_json(f.expected)}")
    if f.evidence is not None:
        parts.append(f"{w['evidence']}: {_json(f.evidence)}")
    if f.waiver is not None:
        parts.append(f"{w['waiver']}: {_waiver_line(f, w)}")
    if f.attestation is not None:
        parts.insert(0, attestation_text(f, w))
    return "\n".join(parts)


def attestation_text(f: Finding, w: dict[str, Any]) -> str:
    """``Attested (…): declared by … on …; evidence: …; valid until …``: never to be read as a check's result."""
    line: str = w["attestation_line"].format(**attestation_fields(f))
    return f"{w['attestation']}: {line}"


def _waiver_line(f: Finding, w: dict[str, Any]) -> str:
    fields = waiver_fields(f)
    fields["state"] = w["waiver_state"].get(fields["state"], fields["state"])
    line: str = w["waiver_line"].format(**fields)
    return line


def _testcase(suite: ET.Element, f: Finding, lang: str, w: dict[str, Any]) -> str:
    """Adds the finding's testcase; returns what it counts as: pass, failure, error or skipped."""
    case = ET.SubElement(suite, "testcase", name=xml_text(f"{f.check} {in_lang(f.title, lang)}"),
                         classname=xml_text(f.target), time=_seconds(f.duration_ms))
    message = in_lang(f.message, lang)
    if f.attestation is not None:  # a person's declaration: the message says so first, system-out says whose
        message = f"[{w['attested']}] {message}"
    kind = _result(case, f, message, lang, w)
    if f.attestation is not None:
        ET.SubElement(case, "system-out").text = xml_text(attestation_text(f, w))
    return kind


def _result(case: ET.Element, f: Finding, message: str, lang: str, w: dict[str, Any]) -> str:
    if f.status == "fail" and f.waived:
        el = ET.SubElement(case, "skipped", message=xml_text(f"{w['waived']}: {_waiver_line(f, w)}"))
        el.text = xml_text(_body(f, lang, w))
        return "skipped"
    if f.status == "fail":
        el = ET.SubElement(case, "failure", message=xml_text(message), type=f.severity)
        el.text = xml_text(_body(f, lang, w))
        return "failure"
    if f.status == "error":
        el = ET.SubElement(case, "error", message=xml_text(message), type="error")
        el.text = xml_text(_body(f, lang, w))
        return "error"
    if f.status in ("not_applicable", "manual"):
        ET.SubElement(case, "skipped", message=xml_text(f"{w['status'][f.status]}: {message}"), type=f.status)
        return "skipped"
    return "pass"


def _suite(parent: ET.Element, report: Report, t: TargetRecord | None, target_id: str, findings: list[Finding],
           ctx: RenderContext, w: dict[str, Any]) -> dict[str, int]:
    lang = ctx.lang
    suite = ET.SubElement(parent, "testsuite", name=xml_text(target_id), timestamp=report.run.started)
    if t is not None and t.hostname:
        suite.set("hostname", xml_text(t.hostname))
    props = ET.SubElement(suite, "properties")
    values = {"run": report.run.id, "tool_version": report.run.tool.get("version", ""),
              "policy": report.run.policy.get("name", ""), "policy_sha256": report.run.policy.get("sha256", ""),
              "os": t.os if t else "", "target_status": t.status if t else "",
              # as ``mamoru report`` checked it now: the report never vouches for itself
              "signature": ctx.signature.status if ctx.signature else "unchecked",
              "signature_key": (ctx.signature.fingerprint or "") if ctx.signature else ""}
    for name, value in values.items():
        ET.SubElement(props, "property", name=name, value=xml_text(value))
    counts = {"tests": 0, "failure": 0, "error": 0, "skipped": 0, "pass": 0}
    if t is not None and t.status == "error" and not findings:  # nothing judged: CI must still see it
        case = ET.SubElement(suite, "testcase", name=xml_text(target_id), classname=xml_text(target_id))
        ET.SubElement(case, "error", message=xml_text(explain(t.error or t.reason or "error").get(lang)),
                      type=t.reason or "error")
        counts["tests"] += 1
        counts["error"] += 1
    for f in findings:
        counts[_testcase(suite, f, lang, w)] += 1
        counts["tests"] += 1
    suite.set("tests", str(counts["tests"]))
    suite.set("failures", str(counts["failure"]))
    suite.set("errors", str(counts["error"]))
    suite.set("skipped", str(counts["skipped"]))
    suite.set("time", _seconds(sum(f.duration_ms for f in findings)))
    return counts


class JunitFormat:
    name = "junit"
    suffix = ".xml"
    media_type = "application/xml"

    def render(self, report: Report, ctx: RenderContext) -> bytes:
        w = words(ctx.lang)
        root = ET.Element("testsuites", name="mamoru")
        by_target: dict[str, list[Finding]] = {t.id: [] for t in report.targets}
        for f in report.findings:
            by_target.setdefault(f.target, []).append(f)
        targets = {t.id: t for t in report.targets}
        total = {"tests": 0, "failure": 0, "error": 0}
        for target_id, findings in by_target.items():
            counts = _suite(root, report, targets.get(target_id), target_id, findings, ctx, w)
            for k in total:
                total[k] += counts[k]
        root.set("tests", str(total["tests"]))
        root.set("failures", str(total["failure"]))
        root.set("errors", str(total["error"]))
        root.set("time", _seconds(sum(f.duration_ms for f in report.findings)))
        ET.indent(root)
        data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
        return data + b"\n"


FORMAT = JunitFormat()
