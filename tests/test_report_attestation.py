"""Every format shows the organisation, attestations and coverage (issues 12/13); small report fixes.

Real scans of the rootfs fixtures with a real answers file (written as a person fills the questionnaire):
some questions answered yes, one no, one partly, the rest open. Each format is read back with its own parser
(JSON Schema for OCSF, the Jenkins XSD for JUnit, ``csv``, markdown-it-py, the HTML text) and must show an
attested finding as attested — who, when, on what evidence, until when — apart from machine results, and the
coverage of every guideline item. Hostile text in an attestation's evidence is escaped in each format.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from checks.base import guideline_items
from reports.diff import diff_reports
from reports.formats import RenderContext, get
from reports.load import load_report
from reports.model import Report
from tests.conftest import FIXTURES, SHARED

ROOT = Path(__file__).resolve().parents[1]
OCSF_SCHEMA = ROOT / "reports" / "schema" / "ocsf" / "compliance_finding-1.8.0.schema.json"
JUNIT_XSD = Path(__file__).resolve().parent / "data" / "junit-10.xsd"
WEAK = FIXTURES / "rootfs" / "weak"
HARDENED = FIXTURES / "rootfs" / "hardened"
ITEMS_MD = SHARED / "guideline" / "ITEMS.md"

#: What a person might type as an evidence reference that an answers file accepts (no control characters).
EVIDENCE_HOSTILE = ("<script>document.title='pwned'</script> \"><svg onload=alert(1)> "
                    "=cmd|' /C calc'!A0 **bold** [link](http://evil.example) `code` | cell ~~x~~ $x$")
#: What only a crafted report file could hold: control characters, ANSI escapes, a lone surrogate.
EVIDENCE_RAW = "\x1b[31mred\x1b[0m\x07 <img src=x onerror=alert(1)> \udcff\x00\n```\n# heading\n```"

ANSWERS = {
    "OR-01": ("yes", "任命通知書 2025-04-01 (https://intra.example/OR-01)", "山田 花子"),
    "OR-02": ("no", "職務分掌表は未作成", "山田 花子"),
    "OR-03": ("partly", "規程集 第3版", "佐藤 一郎"),
    "OR-04": ("yes", EVIDENCE_HOSTILE, "<b>Eve</b> & 'Mallory'"),
}


def answers_file(path: Path, answers: dict[str, tuple[str, str, str]], *, until: str = "2099-03-31") -> Path:
    lines = ["answers:"]
    for item, (answer, evidence, by) in answers.items():
        lines += [f"  - item: {item}", f"    answer: {answer}", f"    evidence: {json.dumps(evidence)}",
                  f"    answered_by: {json.dumps(by)}", "    answered_at: 2025-04-01",
                  f"    valid_until: {until}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def scan(out: Path, *args: str) -> Report:
    from agent.cli.main import main

    assert main(["scan", "--output", str(out), "--quiet", *args]) in (1, 3)
    return load_report(out).report


@pytest.fixture(scope="module")
def attested(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """One host and the organisation, four questions answered (yes, no, partly, yes with hostile evidence)."""
    d = tmp_path_factory.mktemp("attested")
    path = answers_file(d / "answers.yaml", ANSWERS)
    return scan(d / "report.json", "--target", f"rootfs:{HARDENED}", "--answers", str(path))


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """Two hosts and the organisation: the per-host tables."""
    d = tmp_path_factory.mktemp("fleet")
    path = answers_file(d / "answers.yaml", ANSWERS)
    return scan(d / "report.json", "--target", f"rootfs:{HARDENED}", "--target", f"rootfs:{WEAK}",
                "--answers", str(path))


def render(report: Report, fmt: str, lang: str = "en", **kw: Any) -> bytes:
    return get(fmt).render(report, RenderContext(lang=lang, **kw))


def org(report: Report, check: str) -> Any:
    hits = [f for f in report.findings if f.check == check and f.target == "organisation"]
    assert len(hits) == 1
    return hits[0]


def raw_copy(report: Report) -> Report:
    """The report with control characters and a lone surrogate in an attestation (a crafted file)."""
    r = copy.deepcopy(report)
    f = org(r, "OR-01")
    assert f.attestation is not None
    f.attestation = {**f.attestation, "evidence": EVIDENCE_RAW, "by": EVIDENCE_RAW}
    return r


def test_the_scan_attests_what_was_answered(attested: Report) -> None:
    status = {q: org(attested, q).status for q in ("OR-01", "OR-02", "OR-03", "OR-04", "OR-05")}
    assert status == {"OR-01": "pass", "OR-02": "fail", "OR-03": "fail", "OR-04": "pass", "OR-05": "manual"}
    assert org(attested, "OR-04").attestation["evidence"] == EVIDENCE_HOSTILE
    assert org(attested, "OR-05").attestation is None
    assert all(f.attestation is None for f in attested.findings if f.target != "organisation")
