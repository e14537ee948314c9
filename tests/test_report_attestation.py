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


# -- terminal ------------------------------------------------------------------------------------------------


def test_terminal_marks_attested_findings_and_says_whose(attested: Report) -> None:
    text = render(attested, "terminal", "en", width=200).decode("utf-8")
    lines = text.splitlines()
    or01 = next(i for i, line in enumerate(lines) if " OR-01 " in line)
    assert lines[or01].startswith("pass (attested)")
    block = "\n".join(lines[or01:or01 + 6])
    assert "attested by a person (not a machine result) · by: 山田 花子 · on: 2025-04-01" in block
    assert "evidence: 任命通知書 2025-04-01 (https://intra.example/OR-01) · valid until: 2099-03-31" in block
    assert re.search(r"defined at: \S+answers\.yaml:2", block)
    # a machine result carries no such mark
    assert not any("(attested)" in line for line in lines if re.search(r" (AC|IA|LG|TX|PM)-\d\d ", line))
    ja = render(attested, "terminal", "ja", width=200).decode("utf-8")
    assert "不合格 (申告)" in ja and "申告による結果（機械の判定ではありません） · 回答者: 山田 花子 · 回答日: 2025-04-01" in ja


def test_terminal_organisation_line_and_coverage(fleet: Report) -> None:
    text = render(fleet, "terminal", "en", width=200).decode("utf-8")
    assert "organisation  ()" not in text and "organisation () —" not in text
    org_line = next(line for line in text.splitlines() if line.startswith("organisation"))
    assert org_line.startswith("organisation — questions: 4 answered, 15 open: pass 2  FAIL 2"), org_line
    states = Counter(c["state"] for c in fleet.summary()["coverage"].values())
    last = text.rstrip().splitlines()[-1]
    assert last == "coverage of the guideline items: " + "  ".join(
        f"{s} {states.get(s, 0)}" for s in ("covered", "partly", "uncovered", "absent"))
    assert "unanswered questions" not in text  # the table only with --verbose
    verbose = render(fleet, "terminal", "en", width=200, verbose=True).decode("utf-8")
    table = verbose.split("coverage of the guideline items\n")[1]
    for item in guideline_items():
        assert item in table
    row = next(line for line in table.splitlines() if "MLIT-9-2-1" in line)
    assert "covered" in row and "山田 花子" in row
    row = next(line for line in table.splitlines() if "MLIT-9-5-2" in line)
    assert "on 2 target(s)" in row
    ja = render(fleet, "terminal", "ja", width=200).decode("utf-8")
    assert "組織 — 質問: 回答済み 4 件、未回答 15 件" in ja and "ガイドライン項目の網羅: 網羅 " in ja


def test_terminal_escapes_a_crafted_attestation(attested: Report) -> None:
    text = render(raw_copy(attested), "terminal", "en", width=200, verbose=True).decode("utf-8")
    assert "\x1b" not in text and "\x07" not in text and "\x00" not in text
    assert "\\x1b[31mred" in text


# -- HTML ------------------------------------------------------------------------------------------------------


def html_text(html: str) -> str:
    import html as h

    return h.unescape(re.sub(r"<[^>]+>", "", html))


def test_html_shows_attestation_coverage_and_organisation(fleet: Report) -> None:
    html = render(fleet, "html", "en").decode("utf-8")
    article = html.split('<span class="mono">OR-01</span>')[-1].split("</article>")[0]
    assert '<div class="attestation">' in article
    shown = html_text(article)
    for expected in ("Attested: a person's declaration, not a result of this tool", "Declared by山田 花子",
                     "Declared on2025-04-01", "Evidence任命通知書 2025-04-01 (https://intra.example/OR-01)",
                     "Valid until2099-03-31"):
        assert expected in shown, expected
    assert html.count('<span class="badge attested-badge">Attested</span>') >= 4
    assert "attested-badge" not in html.split('<span class="mono">AC-02</span>')[-1].split("</h3>")[0]
    # coverage: near the top (before the per-item summary), every guideline item a row
    assert html.index('id="coverage"') < html.index('id="summary"') < html.index('id="findings"')
    table = html.split('<table class="coverage">')[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + len(guideline_items())
    row = html_text(next(r for r in table.split("<tr>") if "MLIT-9-2-2" in r))
    assert "Covered" in row and "山田 花子" in row
    row = html_text(next(r for r in table.split("<tr>") if "MLIT-9-2-6" in r))
    assert "Uncovered" in row and "OR-06, OR-19" in row
    # the organisation in the per-host table: no empty hostname and "()" OS
    hosts = html.split('<table class="hosts">')[1].split("</table>")[0]
    org_row = html_text(next(r for r in hosts.split("<tr>") if ">organisation<" in r))
    assert "Organisation" in org_row and "questions: 4 answered, 15 open" in org_row


def test_html_escapes_attestation_text(attested: Report) -> None:
    html = render(raw_copy(attested), "html", "en").decode("utf-8")
    assert "<script>" not in html and "<svg" not in html and "<img" not in html and "<b>Eve" not in html
    assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in html
    assert "&lt;b&gt;Eve&lt;/b&gt; &amp; &#39;Mallory&#39;" in html
    assert "\x1b" not in html and "\\x1b[31mred" in html


# -- Markdown ----------------------------------------------------------------------------------------------------


def md_html(data: bytes) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(data.decode("utf-8"))


def test_markdown_shows_attestation_coverage_and_organisation(fleet: Report) -> None:
    data = render(fleet, "markdown", "en")
    text = data.decode("utf-8")
    heads = re.findall(r"^## (.+)$", text, re.M)
    assert heads[0] == "Coverage of the guideline items"  # near the top
    html = md_html(data)
    table = html.split("<h2>Coverage of the guideline items</h2>")[1].split("</table>")[0]
    assert table.count("<tr>") == 1 + len(guideline_items())
    shown = html_text(html)
    assert "| organisation | organisation | questions: 4 answered, 15 open |" in text
    row = next(line for line in text.splitlines() if line.startswith("| organisation | OR-01 |"))
    assert "| pass \\(attested\\) |" in row
    assert "declared by 山田 花子 on 2025-04-01; evidence: 任命通知書" in html_text(md_html(row.encode()))
    assert "- **Attested (a person's declaration, not a result of this tool)**: declared by 山田 花子" in text
    assert not any("(attested)" in line for line in text.splitlines() if line.startswith("| rootfs:"))
    assert "<script>" not in html and "<svg" not in html and "<b>Eve" not in html
    assert "<script>document.title='pwned'</script>" in shown  # shown as text
    raw = md_html(render(raw_copy(fleet), "markdown", "en"))
    assert "<img" not in raw and "\x1b" not in raw and "<h1>heading" not in raw


# -- CSV -----------------------------------------------------------------------------------------------------------


def read_csv(data: bytes) -> list[dict[str, str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_csv_attestation_columns(attested: Report) -> None:
    rows = read_csv(render(attested, "csv", "en"))
    or01 = next(r for r in rows if r["check"] == "OR-01")
    assert or01["basis"] == "attested" and or01["status"] == "pass"
    assert (or01["attested by"], or01["attested on"], or01["attestation valid until"]) == \
        ("山田 花子", "2025-04-01", "2099-03-31")
    assert or01["attestation evidence"] == "任命通知書 2025-04-01 (https://intra.example/OR-01)"
    assert or01["attestation source"].endswith("answers.yaml:2")
    assert next(r for r in rows if r["check"] == "OR-04")["attestation evidence"] == EVIDENCE_HOSTILE
    assert all(r["basis"] == "machine" and not r["attested by"] for r in rows if r["target"] != "organisation")
    assert next(r for r in rows if r["check"] == "OR-05")["basis"] == "machine"  # unanswered: nobody declared
    ja = read_csv(render(attested, "csv", "ja"))
    assert next(r for r in ja if r["チェック"] == "OR-01")["判定の根拠"] == "申告"
    # a formula typed as evidence or as a name stays text
    crafted = copy.deepcopy(attested)
    f = org(crafted, "OR-01")
    f.attestation = {**f.attestation, "evidence": "=HYPERLINK(\"http://evil\")", "by": "@SUM(A1)"}
    row = next(r for r in read_csv(render(crafted, "csv", "en")) if r["check"] == "OR-01")
    assert row["attestation evidence"] == "'=HYPERLINK(\"http://evil\")" and row["attested by"] == "'@SUM(A1)"
    raw = next(r for r in read_csv(render(raw_copy(attested), "csv", "en")) if r["check"] == "OR-01")
    assert raw["attestation evidence"].startswith("\x1b[31mred") and "\\udcff" in raw["attestation evidence"]


# -- JUnit ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def junit_schema() -> Any:
    xmlschema = pytest.importorskip("xmlschema")
    return xmlschema.XMLSchema(str(JUNIT_XSD))


def test_junit_attested_cases(attested: Report, junit_schema: Any) -> None:
    data = render(attested, "junit", "en")
    junit_schema.validate(data.decode("utf-8"))
    root = ET.fromstring(data)
    cases = {c.get("name", "").split(" ")[0]: c for c in root.iter("testcase")}
    fail = cases["OR-02"].find("failure")
    assert fail is not None and fail.get("message", "").startswith("[attested] ")
    assert "declared by 山田 花子 on 2025-04-01; evidence: 職務分掌表は未作成" in (fail.text or "")
    out = cases["OR-01"].find("system-out")
    assert cases["OR-01"].find("failure") is None and out is not None
    assert (out.text or "").startswith("Attested (a person's declaration, not a result of this tool): declared by")
    assert EVIDENCE_HOSTILE in (cases["OR-04"].find("system-out").text or "")  # type: ignore[union-attr]
    machine = [c for name, c in cases.items() if not name.startswith("OR-")]
    assert machine and all(c.find("system-out") is None for c in machine)
    assert all("[attested]" not in (el.get("message") or "") for c in machine for el in c)
    raw = render(raw_copy(attested), "junit", "en")
    junit_schema.validate(raw.decode("utf-8"))
    assert b"\x1b" not in raw and b"\\x1b[31mred" in raw


# -- OCSF ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ocsf_validator() -> Any:
    return jsonschema_rs.validator_for(json.loads(OCSF_SCHEMA.read_text("utf-8")))


def ocsf_events(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.split(b"\n") if line]


def test_ocsf_attested_events(attested: Report, ocsf_validator: Any) -> None:
    events = ocsf_events(render(attested, "ocsf", "en"))
    for ev in events:
        errors = [f"{e.instance_path}: {e.message}" for e in ocsf_validator.iter_errors(ev)]
        assert not errors, errors[:5]
    by_check = {ev["compliance"]["control"]: ev for ev in events if ev["unmapped"].get("attestation")}
    assert set(by_check) == {"OR-01", "OR-02", "OR-03", "OR-04"}
    ev = by_check["OR-01"]
    assert ev["compliance"]["assessments"] == [
        {"name": "attestation", "category": "attestation (a person's declaration, not checked by mamoru)",
         "meets_criteria": True, "uid": ev["unmapped"]["attestation"]["source"]}]
    artefact = ev["evidences"][0]
    assert artefact["name"] == "attestation" and artefact["user"] == {"name": "山田 花子"}
    assert artefact["data"]["evidence"] == "任命通知書 2025-04-01 (https://intra.example/OR-01)"
    assert artefact["data"]["valid_until"] == "2099-03-31" and artefact["data"]["at"] == "2025-04-01"
    assert by_check["OR-02"]["compliance"]["assessments"][0]["meets_criteria"] is False
    assert "resources" in ev and "device" not in ev  # the organisation is no machine
    machine = [e for e in events if e["compliance"]["control"] not in by_check]
    assert machine and not any("attestation" in e["unmapped"] or "assessments" in e["compliance"] or
                               any(x.get("name") == "attestation" for x in e.get("evidences", []))
                               for e in machine)
    raw = ocsf_events(render(raw_copy(attested), "ocsf", "en"))
    hit = next(e for e in raw if e["compliance"]["control"] == "OR-01")
    assert hit["unmapped"]["attestation"]["evidence"].startswith("\x1b[31mred")  # JSON escapes it on the wire
    assert not list(ocsf_validator.iter_errors(hit))


# -- diff ------------------------------------------------------------------------------------------------------------


def test_diff_reports_coverage_changes(attested: Report, tmp_path: Path) -> None:
    unanswered = scan(tmp_path / "r.json", "--target", f"rootfs:{HARDENED}")
    worse = diff_reports(attested, unanswered)
    changed = {c["item"]: c for c in worse["coverage_changed"]}
    assert changed["MLIT-9-2-1"]["old_state"] == "covered" and changed["MLIT-9-2-1"]["new_state"] == "uncovered"
    assert changed["MLIT-9-2-1"]["regression"] and worse["regressed"]
    assert changed["MLIT-9-2-1"]["title"]["en"] == "Appoint a personal-information protection manager"
    assert worse["counts"]["coverage_changed"] == len(changed)
    assert [c["regression"] for c in worse["coverage_changed"]] == sorted(
        (c["regression"] for c in worse["coverage_changed"]), reverse=True)
    better = diff_reports(unanswered, attested)
    assert better["coverage_changed"] and not any(c["regression"] for c in better["coverage_changed"])
    same = diff_reports(attested, attested)
    assert same["coverage_changed"] == [] and not same["regressed"]


def test_diff_command_shows_coverage(run_cli: Any, attested: Report, tmp_path: Path) -> None:
    path = answers_file(tmp_path / "answers.yaml", {"OR-01": ANSWERS["OR-01"]})
    rc, old, _, err = run_cli("scan", "--target", f"rootfs:{HARDENED}", "--answers", str(path), "--quiet")
    assert old is not None, err
    rc, new, _, err = run_cli("scan", "--target", f"rootfs:{HARDENED}", "--quiet")
    assert new is not None, err
    olds, news = sorted(tmp_path.glob("report-*.json"))
    rc, _, out, _ = run_cli("diff", str(olds), str(news), "--json", report=False)
    doc = json.loads(out)
    schema = json.loads((ROOT / "reports" / "schema" / "diff.schema.json").read_text("utf-8"))
    assert not list(jsonschema_rs.validator_for(schema).iter_errors(doc))
    assert rc == 1 and [c["item"] for c in doc["coverage_changed"]] == ["MLIT-9-2-1"]
    rc, _, text, _ = run_cli("diff", str(olds), str(news), "--lang", "ja", report=False)
    assert rc == 1 and "ガイドライン項目の網羅状況の変化 (1)" in text and "網羅 → 未確認" in text
    rc, _, text, _ = run_cli("diff", str(news), str(olds), "--lang", "en", report=False)
    assert rc == 0 and "Coverage of guideline items changed (1)" in text and "uncovered → covered" in text


# -- small fixes -----------------------------------------------------------------------------------------------------


def test_guideline_titles_are_the_wording_of_items_md() -> None:
    """Every title, ja and en, a whole string in ITEMS.md's words: Art. 9 rows word for word (the English with
    a capital first letter), Q&A and other rows by their topic (the title adds the Q number or article)."""
    from tests.conftest import require

    require(ITEMS_MD.exists(), f"{ITEMS_MD} is not here")
    text = ITEMS_MD.read_text("utf-8")
    art9 = {m[0]: (m[1].strip(), m[2].strip())
            for m in re.findall(r"^\| (MLIT-9-[\d-]+) \| ([^|]+) \| ([^|]+) \|", text, re.M)}
    other = {m[0]: m[1].strip() for m in re.findall(r"^\| ((?:MLIT-QA-Q\d|LAW-\d+|MLIT-21)) \| ([^|]+) \|", text, re.M)}
    items = guideline_items()
    assert set(items) == set(art9) | set(other) and len(art9) == 19
    for item, title in items.items():
        for lang in ("ja", "en"):
            value = title.get(lang)
            assert isinstance(value, str) and len(value.strip()) >= 4 and value == value.strip(), (item, lang)
        if item in art9:
            ja, en = art9[item]
            assert title.ja == ja, item
            assert title.en == en[0].upper() + en[1:], item
        else:
            topic = re.sub(r"\s*\(.*\)$", "", other[item])
            assert re.sub(r"\s*\([^()]*\)$", "", title.en) == topic[0].upper() + topic[1:], item
            assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", title.ja), item
    assert items["MLIT-9-2-5"].en == "Evaluate, review, improve the measures"
    assert items["MLIT-9-2-3"].en == "Rules, and operation according to them"


def test_a_waiver_note_names_statuses_in_japanese(run_cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "waivers.yaml"
    path.write_text('waivers:\n  - check: "AC-02"\n    target: "*"\n    reason: "r"\n    approver: "a"\n'
                    '    expires: "2099-12-31"\n', encoding="utf-8")
    rc, _, _, err = run_cli("scan", "--target", f"rootfs:{HARDENED}", "--check", "AC-02", "--waivers", str(path),
                            "--no-organisation", "--lang", "ja")
    note = next(line for line in err.splitlines() if "例外承認" in line and "適用されません" in line)
    assert "不合格ではない結果（合格）" in note or "不合格ではない結果（対象外）" in note, note
    assert not re.search(r"（[a-z_, ]+）", note), note
