"""``mamoru report --format ocsf|csv|junit|markdown``: rendered from real scans, checked by real parsers.

OCSF events are validated against the pinned Compliance Finding schema (reports/schema/ocsf/), JUnit against
the Jenkins xunit XSD (tests/data/junit-10.xsd, with ``xmlschema``), CSV read back with the ``csv`` module as
Excel would get it (UTF-8 with BOM), Markdown rendered to HTML by markdown-it-py with raw HTML allowed.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from reports.formats import RenderContext, get
from reports.load import load_report
from reports.model import Finding, Report
from reports.signature_status import SignatureInfo
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[1]
OCSF_SCHEMA = ROOT / "reports" / "schema" / "ocsf" / "compliance_finding-1.8.0.schema.json"
JUNIT_XSD = Path(__file__).resolve().parent / "data" / "junit-10.xsd"
WEAK = FIXTURES / "rootfs" / "weak"
HARDENED = FIXTURES / "rootfs" / "hardened"
Cli = Callable[..., tuple[int, dict[str, Any] | None, str, str]]

HOSTILE = [
    "<script>document.title='pwned'</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "\x1b[31mred\x1b[0m\x07",
    "=cmd|' /C calc'!A0",
    "**bold** [link](http://evil.example) `code` | cell\nnext line ~~x~~ $x$",
    "```\n# injected heading\n```",
    "lone \udcff surrogate and nul \x00",
]


# -- real scans, made once per module -----------------------------------------------------------------------


def _scan(out: Path, *targets: str) -> Report:
    from agent.cli.main import main

    argv = ["scan", "--output", str(out), "--quiet", "--no-organisation"]
    for t in targets:
        argv += ["--target", t]
    assert main(argv) in (1, 3)
    return load_report(out).report


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """A real fleet scan: the weak and the hardened rootfs, and a directory that is no machine (error)."""
    out = tmp_path_factory.mktemp("fleet") / "report.json"
    return _scan(out, f"rootfs:{WEAK}", f"rootfs:{HARDENED}", "rootfs:/nonexistent-mamoru-target")


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> Report:
    """A real scan of an offline Windows image built from the corpus hives (SYSTEM, SAM, NTUSER.DAT)."""
    from tests.windows_image import build_tree

    root = build_tree(tmp_path_factory.mktemp("win") / "image")
    return _scan(root.parent / "report.json", f"rootfs:{root}")


def hostile_copy(report: Report) -> Report:
    """The report with hostile host strings in hostnames, messages, evidence, and waivers on three failures."""
    r = copy.deepcopy(report)
    for i, t in enumerate(r.targets):
        t.hostname = HOSTILE[i % len(HOSTILE)]
    for i, f in enumerate(r.findings):
        text = HOSTILE[i % len(HOSTILE)]
        f.message = {"ja": f"日本語 {text}", "en": f"English {text}"}
        f.evidence = {"value": text, "nested": [{"deep": {"deeper": text}}], "n": -1, "big": "x" * 5000}
    fails = [f for f in r.findings if f.status == "fail"]
    fails[0].waiver = {"reason": "業務上必要 " + HOSTILE[0], "approver": "部長 <boss@example.jp>",
                       "expires": "2099-03-31", "state": "valid", "source": "waivers.yaml:3"}
    fails[1].waiver = {"reason": "old", "approver": "x", "expires": "2020-01-01", "state": "expired",
                       "source": "waivers.yaml:9"}
    fails[2].waiver = {"reason": "soon", "approver": "y", "expires": "2026-12-10", "state": "expiring",
                       "source": "waivers.yaml:14"}
    return r


def render(report: Report, fmt: str, lang: str = "ja", **kw: Any) -> bytes:
    return get(fmt).render(report, RenderContext(lang=lang, **kw))


# -- OCSF ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ocsf_validator() -> Any:
    return jsonschema_rs.validator_for(json.loads(OCSF_SCHEMA.read_text("utf-8")))


def ocsf_events(data: bytes) -> list[dict[str, Any]]:
    lines = data.split(b"\n")
    assert lines[-1] == b""  # JSON Lines: every event ends its line
    return [json.loads(line) for line in lines[:-1]]


def assert_valid(validator: Any, ev: dict[str, Any]) -> None:
    errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(ev)]
    assert not errors, errors[:5]


def test_ocsf_events_of_a_real_fleet_validate_and_map(fleet: Report, ocsf_validator: Any) -> None:
    from reports.formats.ocsf import finding_uid

    events = ocsf_events(render(fleet, "ocsf"))
    assert len(events) == len(fleet.findings) > 50
    finished_ms = dt_ms(fleet.run.finished)
    comp = {"pass": 1, "fail": 3, "error": 2, "not_applicable": 99, "manual": 99}
    seen = Counter()
    for ev, f in zip(events, fleet.findings, strict=True):
        assert_valid(ocsf_validator, ev)
        assert (ev["class_uid"], ev["category_uid"], ev["activity_id"], ev["type_uid"]) == (2003, 2, 1, 200301)
        assert ev["time"] == finished_ms and ev["time"] > 10**12  # milliseconds, not seconds
        assert ev["metadata"]["version"] == "1.8.0"
        assert ev["metadata"]["product"] == {"name": "mamoru", "vendor_name": "mamoru project",
                                             "version": fleet.run.tool["version"], "lang": "ja"}
        c = ev["compliance"]
        assert (c["status_id"], c["status_code"], c["control"]) == (comp[f.status], f.status, f.check)
        assert c["requirements"] == f.guideline and c["standards"] and c["checks"][0]["uid"] == f.check
        assert ev["status_id"] == 1  # New: no waivers here
        assert ev["finding_info"] == {"uid": finding_uid(f.check, f.target), "title": f.title["ja"],
                                      "desc": f.message["ja"], "created_time": finished_ms}
        expect_sev = 1 if f.status in ("pass", "not_applicable") else {"critical": 5, "high": 4, "medium": 3,
                                                                         "low": 2}[f.severity]
        assert ev["severity_id"] == expect_sev
        if f.target.startswith("rootfs:/nonexistent"):
            assert "device" not in ev  # not reached: kind unknown, no device profile to claim
        else:
            assert ev["device"]["os"]["type_id"] == 200 and ev["device"]["os"]["type"] == "Linux"
            assert ev["device"]["hostname"] in ("reception-pc", "fileserver")
        if f.evidence is not None:
            assert ev["evidences"] == [{"name": "evidence", "data": f.evidence}]
        seen[c["status"]] += 1
    assert set(seen) == {"Pass", "Fail", "Warning", "Not Applicable", "Manual"}
    en = ocsf_events(render(fleet, "ocsf", "en"))
    assert en[0]["finding_info"]["title"] == fleet.findings[0].title["en"]


def dt_ms(stamp: str) -> int:
    import datetime as dt

    t = dt.datetime.fromisoformat(stamp)
    return int(t.timestamp()) * 1000 + t.microsecond // 1000


def test_ocsf_events_of_a_windows_image_validate(windows: Report, ocsf_validator: Any) -> None:
    events = ocsf_events(render(windows, "ocsf", "en"))
    assert events and len(events) == len(windows.findings)
    for ev in events:
        assert_valid(ocsf_validator, ev)
        assert ev["device"]["os"]["type_id"] == 100 and ev["device"]["os"]["type"] == "Windows"


def test_ocsf_finding_uid_is_stable_across_runs(fleet: Report, tmp_path: Path) -> None:
    again = _scan(tmp_path / "again.json", f"rootfs:{WEAK}", f"rootfs:{HARDENED}",
                  "rootfs:/nonexistent-mamoru-target")
    first, second = ocsf_events(render(fleet, "ocsf")), ocsf_events(render(again, "ocsf"))
    assert fleet.run.id != again.run.id
    uids = [e["finding_info"]["uid"] for e in first]
    assert len(set(uids)) == len(uids)  # one per check and target
    assert uids == [e["finding_info"]["uid"] for e in second]
    assert {e["metadata"]["uid"] for e in first}.isdisjoint(e["metadata"]["uid"] for e in second)


@pytest.mark.parametrize(("name", "mutate"), [
    ("missing class_uid", lambda e: e.pop("class_uid")),
    ("wrong class_uid", lambda e: e.update(class_uid=2004)),
    ("compliance.status_id not in its enum", lambda e: e["compliance"].update(status_id=4)),
    ("status_id not in its enum", lambda e: e.update(status_id=7)),
    ("type_uid of another class", lambda e: e.update(type_uid=200401)),
    ("time as a string", lambda e: e.update(time="2026-12-05T00:00:00Z")),
    ("missing finding_info.uid", lambda e: e["finding_info"].pop("uid")),
    ("missing metadata.version", lambda e: e["metadata"].pop("version")),
    ("device without type_id", lambda e: e["device"].pop("type_id")),
    ("os.type_id not in its enum", lambda e: e["device"]["os"].update(type_id=250)),
    ("an attribute OCSF does not define", lambda e: e.update(mamoru_status="fail")),
    ("an evidence artifact with nothing in it", lambda e: e.update(evidences=[{"name": "evidence"}])),
])
def test_the_ocsf_schema_bites(fleet: Report, ocsf_validator: Any, name: str,
                               mutate: Callable[[dict[str, Any]], Any]) -> None:
    ev = next(e for e in ocsf_events(render(fleet, "ocsf")) if "device" in e and "evidences" in e)
    assert_valid(ocsf_validator, ev)
    mutate(ev)
    assert not ocsf_validator.is_valid(ev), name


def test_ocsf_waivers_and_hostile_text(fleet: Report, ocsf_validator: Any) -> None:
    r = hostile_copy(fleet)
    data = render(r, "ocsf")
    data.decode("utf-8")  # strict UTF-8 even with a lone surrogate in the evidence
    events = ocsf_events(data)
    for ev in events:
        assert_valid(ocsf_validator, ev)
    by_state = {e["unmapped"]["waiver"]["state"]: e for e in events if "waiver" in e["unmapped"]}
    assert by_state["valid"]["status_id"] == 3 and by_state["valid"]["status"] == "Suppressed"
    assert by_state["expiring"]["status_id"] == 3  # still in force
    assert by_state["expired"]["status_id"] == 1  # counts again: New
    for ev in by_state.values():
        assert ev["compliance"]["status_id"] == 3  # the facts still say fail
    assert by_state["valid"]["unmapped"]["waiver"]["approver"] == "部長 <boss@example.jp>"
    assert all("signature" not in e["unmapped"] for e in events)  # not checked: nothing claimed
    sig = SignatureInfo(status="invalid", fingerprint="SHA256:x")
    for ev in ocsf_events(render(r, "ocsf", signature=sig)):
        assert_valid(ocsf_validator, ev)
        assert ev["unmapped"]["signature"] == {"status": "invalid", "fingerprint": "SHA256:x"}
    assert all(e["status_id"] == 1 for e in events if "waiver" not in e["unmapped"])
    lone = next(e for e in events if "surrogate" in e["message"])
    assert lone["evidences"][0]["data"]["value"] == HOSTILE[-1]  # escaped in JSON, not lost


def test_ocsf_a_network_target_is_a_resource_not_a_device(fleet: Report, ocsf_validator: Any) -> None:
    """A network sweep or Wi-Fi survey is no machine: no host-profile device is claimed for it."""
    r = copy.deepcopy(fleet)
    r.targets[0].kind, r.targets[0].os = "network", "IPv4 network"
    events = ocsf_events(render(r, "ocsf"))
    for ev in events:
        assert_valid(ocsf_validator, ev)
    net = [e for e in events if e["resources"][0]["uid"] == r.targets[0].id]
    assert net and all("device" not in e and e["resources"][0]["type"] == "network" for e in net)
    assert all("hostname" not in e["resources"][0] for e in net)


# -- CSV -------------------------------------------------------------------------------------------------


def read_csv(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_csv_round_trips_in_japanese(fleet: Report) -> None:
    rows = read_csv(render(fleet, "csv"))
    header, body = rows[0], rows[1:]
    assert header[:6] == ["対象", "ホスト名", "OS", "チェック", "ガイドライン項目", "結果"]
    assert len(body) == len(fleet.findings)
    col = {name: i for i, name in enumerate(header)}
    for row, f in zip(body, fleet.findings, strict=True):
        assert row[col["チェック"]] == f.check and row[col["対象"]] == f.target
        assert row[col["項目"]] == f.title["ja"] and row[col["内容"]] == f.message["ja"]
        assert row[col["対策"]] == f.remediation["ja"]
        assert row[col["結果"]] == {"pass": "合格", "fail": "不合格", "error": "判定不能", "not_applicable": "対象外",
                                  "manual": "手動確認"}[f.status]
        assert row[col["ガイドライン項目"]].split("\n")[0].startswith(f.guideline[0] + " ")
        evidence = row[col["証跡"]]
        assert (json.loads(evidence) if evidence else None) == f.evidence
    assert read_csv(render(fleet, "csv", "en"))[0][:3] == ["target", "hostname", "os"]


def test_csv_quotes_newlines_waivers_and_formula_injection(fleet: Report) -> None:
    r = copy.deepcopy(fleet)
    cells = ["=1+1", "+1", "-2", "@SUM(A1)", "\t=x", "\r=x", "＝1+1", "normal, \"quoted\"\r\nand newline"]
    for f, text in zip(r.findings, cells, strict=False):
        f.message = {"ja": text, "en": text}
    r.targets[0].hostname = "=HYPERLINK(\"http://evil\",\"x\")"
    r.findings[0].waiver = {"reason": "理由, \"引用\"\n改行", "approver": "部長", "expires": "2099-03-31",
                            "state": "valid", "source": "w.yaml:1"}
    rows = read_csv(render(r, "csv"))
    col = {name: i for i, name in enumerate(rows[0])}
    got = [row[col["内容"]] for row in rows[1:len(cells) + 1]]
    assert got[:7] == ["'" + c for c in cells[:7]]  # text, never a formula
    assert got[7] == cells[7]  # quotes and newlines survive untouched
    host_rows = [row for row in rows[1:] if row[col["対象"]] == r.targets[0].id]
    assert host_rows and all(row[col["ホスト名"]] == "'=HYPERLINK(\"http://evil\",\"x\")" for row in host_rows)
    first = rows[1]
    assert [first[col[k]] for k in ("例外承認の状態", "例外承認の理由", "例外承認者", "例外承認の期限",
                                    "例外承認の定義")] == ["有効", "理由, \"引用\"\n改行", "部長", "2099-03-31",
                                                      "w.yaml:1"]
    assert rows[2][col["例外承認の状態"]] == ""


def test_csv_survives_hostile_text(fleet: Report) -> None:
    rows = read_csv(render(hostile_copy(fleet), "csv"))
    assert len(rows) == len(fleet.findings) + 1
    assert all(not cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row)
    assert any("\\udcff" in cell for row in rows for cell in row)  # the lone surrogate shown, not a crash
    r = copy.deepcopy(fleet)
    r.findings[0].evidence = {"lines": ["y" * 1000] * 100}
    rows = read_csv(render(r, "csv"))
    cell = rows[1][rows[0].index("証跡")]
    assert len(cell) == 32767 and cell.endswith("全文は JSON レポートにあります）")


# -- JUnit -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def junit_schema() -> Any:
    xmlschema = pytest.importorskip("xmlschema")
    return xmlschema.XMLSchema(str(JUNIT_XSD))


def test_junit_of_a_real_fleet_is_valid_and_counts(fleet: Report, junit_schema: Any) -> None:
    data = render(fleet, "junit", "en")
    junit_schema.validate(data.decode("utf-8"))
    root = ET.fromstring(data)
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == [t.id for t in fleet.targets]
    cases = root.findall("testsuite/testcase")
    assert len(cases) == len(fleet.findings) == int(root.get("tests", ""))
    status = Counter(f.status for f in fleet.findings)
    assert len(root.findall("testsuite/testcase/failure")) == status["fail"] == int(root.get("failures", ""))
    assert len(root.findall("testsuite/testcase/error")) == status["error"] == int(root.get("errors", ""))
    assert len(root.findall("testsuite/testcase/skipped")) == status["not_applicable"] + status["manual"]
    for suite in suites:
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        assert props["signature"] == "unchecked" and props["run"] == fleet.run.id
        assert int(suite.get("tests", "")) == len(suite.findall("testcase"))
        assert int(suite.get("failures", "")) == len(suite.findall("testcase/failure"))
    f = next(f for f in fleet.findings if f.status == "fail")
    case = next(c for c in cases if c.get("name", "").startswith(f.check) and c.get("classname") == f.target)
    assert case.get("name") == f"{f.check} {f.title['en']}"
    failure = case.find("failure")
    assert failure is not None and failure.get("message") == f.message["en"]
    assert f.remediation["en"] in (failure.text or "")


def test_junit_waivers_and_hostile_text(fleet: Report, junit_schema: Any) -> None:
    r = hostile_copy(fleet)
    data = render(r, "junit")
    junit_schema.validate(data.decode("utf-8"))
    root = ET.fromstring(data)  # well-formed despite NUL, ESC and a lone surrogate in the input
    text = data.decode("utf-8")
    assert "\x1b" not in text and "\x00" not in text and "\\x1b[31mred" in text
    assert "<script>" not in text and "&lt;script&gt;" in text
    waived = [f for f in r.findings if f.waived]
    expired = next(f for f in r.findings if f.waiver and f.waiver["state"] == "expired")
    assert int(root.get("failures", "")) == sum(f.status == "fail" for f in r.findings) - len(waived)

    def case_of(f: Finding) -> ET.Element:
        return next(c for c in root.iter("testcase")
                    if c.get("classname") == f.target and (c.get("name") or "").startswith(f.check + " "))

    for f in waived:
        skipped = case_of(f).find("skipped")
        assert skipped is not None and "例外承認済み" in skipped.get("message", "")
        assert f.waiver is not None and f.waiver["expires"] in skipped.get("message", "")
    failure = case_of(expired).find("failure")
    assert failure is not None and "期限切れ" in (failure.text or "") and "2020-01-01" in (failure.text or "")


def test_the_junit_xsd_bites(fleet: Report, junit_schema: Any) -> None:
    root = ET.fromstring(render(fleet, "junit"))
    case = root.find("testsuite/testcase")
    assert case is not None
    del case.attrib["name"]
    assert not junit_schema.is_valid(ET.tostring(root, encoding="unicode"))
    root = ET.fromstring(render(fleet, "junit"))
    suite = root.find("testsuite")
    assert suite is not None
    ET.SubElement(suite, "finding")
    assert not junit_schema.is_valid(ET.tostring(root, encoding="unicode"))


# -- Markdown --------------------------------------------------------------------------------------------


def md_html(data: bytes) -> str:
    """The Markdown as a GitHub-like renderer makes it: tables, strikethrough, raw HTML passed through."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(data.decode("utf-8"))


def test_markdown_summary_failures_and_findings(fleet: Report) -> None:
    r = copy.deepcopy(fleet)
    waived = next(f for f in r.findings if f.status == "fail" and f.severity == "critical")
    waived.waiver = {"reason": "承認済み", "approver": "部長", "expires": "2099-03-31", "state": "valid",
                     "source": "w.yaml:1"}
    assert "確認していません" in render(r, "markdown").decode("utf-8")  # signature not checked: said so
    sig = SignatureInfo(status="verified", fingerprint="SHA256:ab_c+d/e", principals=("auditor@example.jp",))
    data = render(r, "markdown", source="report_2026.json", signature=sig)
    text = data.decode("utf-8")
    html = md_html(data)
    assert text.startswith("# 個人データ安全管理措置 点検報告")
    shown = html_text(html)
    assert "report_2026.json" in shown and "検証済み" in shown and "SHA256:ab_c+d/e" in shown
    assert "auditor@example.jp" in shown
    heads = re.findall(r"^## (.+)$", text, re.M)
    assert heads == ["ガイドライン項目の網羅状況", "集計", "対象一覧", "対策が必要な項目", "全ての結果"]
    fails = [f for f in r.findings if f.status == "fail"]
    fail_heads = re.findall(r"^### (.+)$", text.split("## 対策が必要な項目")[1], re.M)
    assert len(fail_heads) == len(fails)
    order = {"緊急": 0, "高": 1, "中": 2, "低": 3}
    unwaived = [order[h.split(" · ")[0]] for h in fail_heads[:-1]]
    assert unwaived == sorted(unwaived)  # by severity, the waived one last
    assert waived.check in fail_heads[-1] and "緊急" in fail_heads[-1]
    assert "有効：承認済み（承認者 部長、期限 2099-03-31）" in text
    for f in fails:
        assert f.remediation["ja"] in shown and f.message["ja"] in shown
    assert html.count("<tr>") == 2 + (1 + len(r.summary()["by_guideline"])) + (1 + len(r.targets)) + \
        (1 + len(r.findings)) + (1 + len(r.summary()["coverage"]))


def test_markdown_escapes_hostile_host_text(fleet: Report) -> None:
    r = hostile_copy(fleet)
    data = render(r, "markdown", "en")
    text = data.decode("utf-8")
    html = md_html(data)
    assert "\x1b" not in text and "\x00" not in text
    for tag in ("<script", "<img", "<svg", "<a ", "<strong>bold", "<code>code", "<del>", "<h1>injected"):
        assert tag not in html, tag
    assert "&lt;script&gt;document.title=" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "**bold** [link](http://evil.example) `code` | cell" in html_text(html)
    assert html.count("<h1>") == 1
    # every row of the all-findings table still has its six cells: no host "|" or newline split one
    table = html.split("All findings</h2>")[1]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)
    assert len(rows) == len(r.findings) + 1
    assert all(row.count("<td>") == 6 for row in rows[1:])
    # a fenced block cannot be closed by the evidence's own backticks
    assert "# injected heading" in html and "<h1>injected" not in html


def html_text(html: str) -> str:
    import html as h

    return h.unescape(re.sub(r"<[^>]+>", "", html))


# -- the command -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("fmt", "check"), [
    ("ocsf", lambda b: json.loads(b.split(b"\n")[0])["class_uid"] == 2003),
    ("csv", lambda b: b.startswith(b"\xef\xbb\xbf")),
    ("junit", lambda b: ET.fromstring(b).tag == "testsuites"),
    ("markdown", lambda b: b.startswith(b"# ")),
])
def test_report_command_writes_each_format(run_cli: Cli, tmp_path: Path, fmt: str,
                                           check: Callable[[bytes], bool]) -> None:
    out = tmp_path / "report.json"
    rc, _, _, _ = run_cli("scan", "--target", f"rootfs:{WEAK}", "--output", str(out), "--quiet")
    assert rc == 1
    target = tmp_path / f"out.{fmt}"
    rc, _, _, stderr = run_cli("report", str(out), "--format", fmt, "--lang", "ja", "--output", str(target),
                               report=False)
    assert rc == 0, stderr
    assert check(target.read_bytes())


def test_every_format_renders_an_empty_report(fleet: Report) -> None:
    empty = dataclasses.replace(fleet, targets=[], findings=[])
    for fmt in ("ocsf", "csv", "junit", "markdown"):
        assert isinstance(render(empty, fmt), bytes)
