"""Issue 13: the organisation as a target, questions as data, attested answers, coverage of every item.

Real scans of the rootfs fixtures through the CLI; answers files written as a person would (the questionnaire
from ``mamoru answers template``, filled in by editing its lines).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config.answers import load_answers
from agent.errors import ConfigError
from checks.base import guideline_items
from checks.organisation import Organisation, questions, select_questions, tokyo_today
from tests.conftest import FIXTURES, finding

RunCli = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
HARDENED = FIXTURES / "rootfs" / "hardened"
WEAK = FIXTURES / "rootfs" / "weak"
ITEMS_MD = Path("/work/shared/guideline/ITEMS.md")


def items_md() -> list[str]:
    """The item IDs of ITEMS.md (first column of its tables), or the packaged copy when it is not here."""
    if not ITEMS_MD.exists():
        return list(guideline_items())
    return re.findall(r"^\| ((?:MLIT|LAW)-[A-Z0-9-]+) \|", ITEMS_MD.read_text("utf-8"), re.M)


def org(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in doc["findings"] if f["target"] == "organisation"]


def template(run_cli: RunCli, lang: str) -> str:
    rc, _, out, err = run_cli("answers", "template", "--lang", lang, report=False)
    assert rc == 0, err
    return out


def fill(text: str, *, answer: str = "yes", by: str = "山田 花子", at: str = "2025-04-01",
         until: str = "2099-03-31", only: set[str] | None = None) -> str:
    """Fill the questionnaire as a person would: edit the blank lines under each ``- item:``."""
    out: list[str] = []
    current = ""
    for line in text.splitlines():
        m = re.match(r"^  - item: (OR-\d{2})$", line)
        if m:
            current = m.group(1)
        if only is None or current in only:
            line = re.sub(r"^    answer: .*$", f"    answer: {answer}", line)
            line = re.sub(r"^    evidence:$", f"    evidence: 規程集 第3版 p.{current[-2:]} (https://intra.example/{current})",
                          line)
            line = re.sub(r"^    answered_by:$", f"    answered_by: {by}", line)
            line = re.sub(r"^    answered_at: .*$", f"    answered_at: {at}", line)
            line = re.sub(r"^    valid_until: .*$", f"    valid_until: {until}", line)
        out.append(line)
    return "\n".join(out) + "\n"


def scan(run_cli: RunCli, *args: str) -> tuple[int, dict[str, Any], str]:
    rc, doc, _, err = run_cli("scan", "--target", f"rootfs:{HARDENED}", "--quiet", *args)
    assert doc is not None, err
    return rc, doc, err


def test_items_md_is_the_packaged_item_list() -> None:
    assert items_md() == list(guideline_items())


def test_scan_without_answers_covers_every_item_and_asks_the_questions(run_cli: RunCli) -> None:
    rc, doc, _ = scan(run_cli)
    coverage = doc["summary"]["coverage"]
    assert list(coverage) == items_md()  # every ITEMS.md item, in its order
    assert all(c["state"] != "absent" for c in coverage.values()), coverage
    assert [t for t in doc["targets"] if t["kind"] == "organisation"] == [
        {"id": "organisation", "kind": "organisation", "hostname": "", "os": "", "status": "ok", "error": None,
         "machine_id": "", "reason": None, "tags": {}}]
    asked = org(doc)
    assert [f["check"] for f in asked] == list(questions())
    for f in asked:
        q = questions()[f["check"]]
        assert f["status"] == "manual" and f["attestation"] is None
        assert q.question.en in f["message"]["en"] and q.question.ja in f["message"]["ja"]
        assert f["expected"]["evidence"] == q.evidence.as_dict()
    # The questions are asked, never counted: the exit code is the machine's alone.
    rc_without, doc_without, _ = scan(run_cli, "--no-organisation")
    assert rc == rc_without and not org(doc_without)
    assert "organisation" not in {t["id"] for t in doc_without["targets"]}
    # Without the organisation, the organisational items are absent, said so rather than silently dropped.
    assert doc_without["summary"]["coverage"]["MLIT-9-2-1"]["state"] == "absent"
    # Unanswered items say which questions are open.
    assert coverage["MLIT-9-2-1"] == {"state": "uncovered", "attested": [], "unanswered": ["OR-01"],
                                      "automated": {"targets": 0, "by_status": {
                                          "pass": 0, "fail": 0, "error": 0, "not_applicable": 0, "manual": 0}}}
    assert coverage["MLIT-9-5-2"]["automated"]["targets"] == 1


@pytest.mark.parametrize("lang", ["ja", "en"])
def test_template_round_trips(run_cli: RunCli, tmp_path: Path, lang: str) -> None:
    text = template(run_cli, lang)
    assert ("質問" in text) == (lang == "ja") and ("question" in text) == (lang == "en")
    for q in questions().values():
        assert q.question.get(lang) in text and f"  - item: {q.id}\n" in text
    blank = tmp_path / "blank.yaml"
    blank.write_text(text, "utf-8")
    assert load_answers(blank) == {}  # the fresh questionnaire loads: every question unanswered
    filled = tmp_path / "answers.yaml"
    filled.write_text(fill(text), "utf-8")
    answers = load_answers(filled)
    assert sorted(answers) == sorted(questions())
    assert {a.answer for a in answers.values()} == {"yes"} and {a.by for a in answers.values()} == {"山田 花子"}
    # The source of each answer is its item's line in the file.
    lines = filled.read_text("utf-8").splitlines()
    for a in answers.values():
        path, _, line = a.source.rpartition(":")
        assert path == str(filled) and lines[int(line) - 1] == f"  - item: {a.item}"


def test_full_answers_leave_nothing_manual_and_are_marked_attested(run_cli: RunCli, tmp_path: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text(fill(template(run_cli, "ja")), "utf-8")
    rc, doc, _ = scan(run_cli, "--answers", str(answers))
    rc_plain, _, _ = scan(run_cli)
    assert rc == rc_plain  # every answer is yes: nothing new fails
    asked = org(doc)
    assert len(asked) == len(questions()) and {f["status"] for f in asked} == {"pass"}
    for f in asked:
        att = f["attestation"]
        assert att["by"] == "山田 花子" and att["at"] == "2025-04-01" and att["valid_until"] == "2099-03-31"
        assert att["evidence"].startswith("規程集 第3版") and att["source"].startswith(f"{answers}:")
        assert f["message"]["en"].startswith("Attested by 山田 花子 on 2025-04-01: yes")
        assert f["message"]["ja"].startswith("山田 花子 が 2025-04-01 に「はい」と回答")
    # No machine result carries an attestation.
    assert all(f["attestation"] is None for f in doc["findings"] if f["target"] != "organisation")
    coverage = doc["summary"]["coverage"]
    assert all(not c["unanswered"] for c in coverage.values()), coverage
    assert coverage["MLIT-9-2-1"]["state"] == "covered"
    assert coverage["MLIT-9-2-1"]["attested"] == [{"check": "OR-01", "status": "pass", "by": "山田 花子",
                                                   "at": "2025-04-01"}]
    assert coverage["LAW-21"]["attested"][0]["check"] == "OR-07"


def test_no_and_partly_fail_the_run(run_cli: RunCli, tmp_path: Path) -> None:
    text = template(run_cli, "en")
    text = fill(text, answer="no", only={"OR-01"})
    text = fill(text, answer="partly", only={"OR-14"})
    answers = tmp_path / "answers.yaml"
    answers.write_text(text, "utf-8")
    rc, doc, _ = scan(run_cli, "--check", "IA-01", "--guideline", "MLIT-9-5-1", "--answers", str(answers))
    assert not org(doc)  # --check IA-01 asks nothing of the organisation
    rc, doc, _ = scan(run_cli, "--guideline", "MLIT-9-2-1", "--guideline", "MLIT-QA-Q6", "--answers", str(answers))
    assert rc == 1
    assert [(f["check"], f["status"]) for f in org(doc)] == [("OR-01", "fail"), ("OR-14", "fail")]
    assert "no, this measure is not in place" in finding(doc, "OR-01")["message"]["en"]
    assert "partly" in finding(doc, "OR-14")["message"]["en"]
    assert finding(doc, "OR-01")["attestation"]["by"] == "山田 花子"


def test_expired_answer_is_manual_again(run_cli: RunCli, tmp_path: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text(fill(template(run_cli, "en"), at="2020-04-01", until="2021-03-31", only={"OR-09"}), "utf-8")
    _, doc, _ = scan(run_cli, "--answers", str(answers))
    f = finding(doc, "OR-09")
    assert f["status"] == "manual" and f["attestation"] is None
    assert "expired after 2021-03-31" in f["message"]["en"] and "2021-03-31 で期限が切れています" in f["message"]["ja"]
    assert questions()["OR-09"].question.en in f["message"]["en"]
    assert f["evidence"]["expired_answer"]["answered_by"] == "山田 花子"
    assert doc["summary"]["coverage"]["MLIT-9-4-1"]["unanswered"] == ["OR-09"]


def test_expiry_is_the_day_after_valid_until_in_japan(tmp_path: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text("answers:\n  - item: OR-09\n    answer: yes\n    evidence: 入退室記録\n"
                       "    answered_by: 佐藤\n    answered_at: 2026-01-05\n    valid_until: 2026-03-31\n", "utf-8")
    # 2026-03-31 15:30 UTC is already 1 April in Tokyo.
    assert tokyo_today(dt.datetime(2026, 3, 31, 14, 59, tzinfo=dt.UTC)) == dt.date(2026, 3, 31)
    assert tokyo_today(dt.datetime(2026, 3, 31, 15, 0, tzinfo=dt.UTC)) == dt.date(2026, 4, 1)
    loaded = load_answers(answers, today=dt.date(2026, 3, 31))
    q = select_questions(guideline=("MLIT-9-4-1",))
    last_day = Organisation(questions=q, answers=loaded, today=dt.date(2026, 3, 31)).findings()
    day_after = Organisation(questions=q, answers=loaded, today=dt.date(2026, 4, 1)).findings()
    assert [f.status for f in last_day] == ["pass"] and [f.status for f in day_after] == ["manual"]


def test_same_answers_give_the_same_organisation_findings(run_cli: RunCli, tmp_path: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text(fill(template(run_cli, "ja"), only={"OR-01", "OR-05", "OR-16"}), "utf-8")
    _, first, _ = scan(run_cli, "--answers", str(answers))
    _, second, _ = scan(run_cli, "--answers", str(answers))
    assert first["run"]["id"] != second["run"]["id"]
    assert org(first) == org(second)
    assert [t for t in first["targets"] if t["id"] == "organisation"] == \
        [t for t in second["targets"] if t["id"] == "organisation"]


def test_evaluate_takes_answers_like_scan(run_cli: RunCli, tmp_path: Path) -> None:
    bundle = tmp_path / "pc.mamoru"
    rc, _, _, err = run_cli("collect", "--target", f"rootfs:{WEAK}", "--output", str(bundle), "--quiet", report=False)
    assert rc == 0, err
    answers = tmp_path / "answers.yaml"
    answers.write_text(fill(template(run_cli, "en"), only={"OR-02"}), "utf-8")
    out = tmp_path / "evaluated.json"
    _, doc, _, err = run_cli("evaluate", str(bundle), "--answers", str(answers), "--output", str(out), "--quiet")
    assert doc is not None, err
    _, scanned, _, _ = run_cli("scan", "--target", f"rootfs:{WEAK}", "--answers", str(answers), "--quiet")
    assert scanned is not None and org(doc) == org(scanned)
    assert finding(doc, "OR-02")["status"] == "pass"


BAD: list[tuple[str, str, int, str]] = [
    ("unknown item", "answers:\n  - item: OR-01\n    answer:\n  - item: OR-99\n    answer:\n", 4,
     "OR-99 is not a question"),
    ("bad date", "answers:\n  - item: OR-01\n    answer: no\n    answered_by: 佐藤\n    answered_at: 2026-02-30\n"
                 "    valid_until: 2026-12-31\n", 5, "not a calendar date"),
    ("date form", "answers:\n  - item: OR-01\n    answer: no\n    answered_by: 佐藤\n    answered_at: 1.4.2026\n"
                  "    valid_until: 2026-12-31\n", 5, "expected form"),
    ("duplicate key", "answers:\n  - item: OR-01\n    answer: yes\n    answer: no\n", 4, "answer"),
    ("missing answered_by", "answers:\n  - item: OR-01\n    answer: no\n    answered_at: 2026-01-01\n"
                            "    valid_until: 2026-12-31\n", 2, "'answered_by' is missing"),
    ("yes without evidence", "answers:\n  - item: OR-03\n    answer: yes\n    answered_by: 佐藤\n"
                             "    answered_at: 2026-01-01\n    valid_until: 2026-12-31\n", 2, "'evidence' is missing"),
    ("answered twice", "answers:\n  - item: OR-01\n    answer:\n  - item: OR-01\n    answer:\n", 4,
     "answered twice (first at line 2)"),
    ("ends before", "answers:\n  - item: OR-01\n    answer: no\n    answered_by: 佐藤\n    answered_at: 2026-01-01\n"
                    "    valid_until: 2025-12-31\n", 6, "ends before answered_at"),
    ("future", "answers:\n  - item: OR-01\n    answer: no\n    answered_by: 佐藤\n    answered_at: 2999-01-01\n"
               "    valid_until: 2999-12-31\n", 5, "later than today"),
    ("unknown answer", "answers:\n  - item: OR-01\n    answer: maybe\n", 3, "accepted values"),
    ("unknown key", "answers:\n  - item: OR-01\n    answr: yes\n", 3, "answr"),
    ("alias", "answers:\n  - &a {item: OR-01}\n  - *a\n", 3, "alias"),
    ("password in a URL", "answers:\n  - item: OR-01\n    answer:\n    evidence: https://taro:Hunter2@nas.local/x\n",
     4, "URL with a password"),
    ("terminal escape", "answers:\n  - item: OR-01\n    answer:\n    answered_by: \"\\x1b[2J佐藤\"\n", 4,
     "control characters"),
]


@pytest.mark.parametrize(("name", "text", "line", "says"), BAD, ids=[b[0] for b in BAD])
def test_malformed_answers_exit_2_with_file_and_line(run_cli: RunCli, tmp_path: Path, name: str, text: str,
                                                    line: int, says: str) -> None:
    path = tmp_path / "answers.yaml"
    path.write_text(text, "utf-8")
    rc, doc, _, err = run_cli("scan", "--target", f"rootfs:{HARDENED}", "--answers", str(path), "--quiet",
                              "--lang", "en")
    assert rc == 2 and doc is None
    assert f"{path}:{line}" in err and says in err, err
    assert "Hunter2" not in err
    with pytest.raises(ConfigError):
        load_answers(path)


def test_answers_and_no_organisation_conflict(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "answers.yaml"
    path.write_text("answers: []\n", "utf-8")
    rc, doc, _, err = run_cli("scan", "--target", f"rootfs:{HARDENED}", "--answers", str(path),
                              "--no-organisation", "--quiet")
    assert rc == 2 and doc is None and "--no-organisation" in err


def test_wl01_no_longer_asks_on_every_host(run_cli: RunCli) -> None:
    rc, doc, _, err = run_cli("scan", "--target", f"rootfs:{HARDENED}", "--target", f"rootfs:{WEAK}", "--quiet")
    assert doc is not None, err
    per_host = [f for f in doc["findings"] if f["check"] == "WL-01"]
    assert len(per_host) == 2
    for f in per_host:
        assert f["status"] == "not_applicable", f
        assert "OR-16" in f["message"]["en"] and "OR-16" in f["message"]["ja"]
        assert "?" not in f["message"]["en"] and "か。" not in f["message"]["ja"]  # no question on a host
    asked = [f for f in doc["findings"] if f["check"] == "OR-16"]
    assert len(asked) == 1 and asked[0]["target"] == "organisation" and asked[0]["status"] == "manual"
    assert "MAC" in asked[0]["message"]["en"]
    # --check WL-01 brings the question it hands over, and no other.
    _, only, _, _ = run_cli("scan", "--target", f"rootfs:{HARDENED}", "--check", "WL-01", "--quiet")
    assert only is not None and [f["check"] for f in org(only)] == ["OR-16"]


def test_every_question_is_well_formed() -> None:
    qs = questions()
    assert list(qs) == [f"OR-{i:02d}" for i in range(1, len(qs) + 1)]
    covered = {g for q in qs.values() for g in q.guideline}
    # The items no check judges, or only partly, each have a question (ITEMS.md: manual and partly rows,
    # Q2, Q6, Q8's MAC list, LAW-21/22, MLIT-21).
    for item in ("MLIT-9-2-1", "MLIT-9-2-2", "MLIT-9-2-3", "MLIT-9-2-4", "MLIT-9-2-5", "MLIT-9-2-6", "MLIT-9-3-1",
                 "MLIT-9-3-2", "MLIT-9-4-1", "MLIT-9-4-2", "MLIT-9-4-3", "MLIT-9-5-7", "MLIT-QA-Q2", "MLIT-QA-Q6",
                 "MLIT-QA-Q8", "LAW-21", "LAW-22", "MLIT-21"):
        assert item in covered, item
    for q in qs.values():
        assert q.question.en.endswith("?") and q.question.ja.endswith("か。"), q.id


def test_a_target_named_organisation_is_refused(run_cli: RunCli, tmp_path: Path) -> None:
    bundle = tmp_path / "pc.mamoru"
    rc, _, _, err = run_cli("collect", "--target", f"rootfs:{HARDENED}", "--name", "organisation",
                            "--output", str(bundle), "--quiet", report=False)
    assert rc == 0, err
    rc, doc, _, err = run_cli("evaluate", str(bundle), "--output", str(tmp_path / "r.json"), "--quiet")
    assert rc == 2 and doc is None and "--no-organisation" in err
    rc, doc, _, err = run_cli("evaluate", str(bundle), "--output", str(tmp_path / "r.json"), "--quiet",
                              "--no-organisation")
    assert doc is not None and [t["id"] for t in doc["targets"]] == ["organisation"]
    assert doc["targets"][0]["kind"] == "rootfs"


def test_organisation_messages_are_japanese_in_japanese(run_cli: RunCli, tmp_path: Path) -> None:
    from tests.test_messages_i18n import english_runs

    answers = tmp_path / "answers.yaml"
    text = fill(template(run_cli, "ja"), only={"OR-01", "OR-02"})
    text = fill(text, answer="no", only={"OR-03"})
    text = fill(text, answer="partly", only={"OR-04"})
    text = fill(text, at="2020-01-01", until="2020-12-31", only={"OR-05"})
    answers.write_text(text, "utf-8")
    _, doc, _ = scan(run_cli, "--answers", str(answers))
    statuses = {f["check"]: f["status"] for f in org(doc)}
    assert [statuses[q] for q in ("OR-01", "OR-03", "OR-04", "OR-05", "OR-06")] == \
        ["pass", "fail", "fail", "manual", "manual"]
    for f in org(doc):
        for field in ("title", "message", "remediation"):
            assert not english_runs(f[field]["ja"]), (f["check"], field, f[field]["ja"])
            assert "{" not in f[field]["ja"] and "{" not in f[field]["en"]


def test_coverage_counts_only_targets_a_program_judged() -> None:
    """"Automated on N targets" means judged (pass/fail) there: a target where the check does not apply (the
    network target for an account check) or could not tell is not counted as covering the item."""
    from reports.coverage import coverage
    from reports.model import Finding, TargetRecord

    def f(target: str, status: str) -> Finding:
        text = {"ja": "x", "en": "x"}
        return Finding(check="IA-01", target=target, status=status, severity="high", guideline=["MLIT-9-5-1"],
                       title=text, message=text, remediation=text, evidence={}, expected={}, duration_ms=0.0)

    targets = [TargetRecord(id=t, kind="ssh", hostname=t, os="", status="ok") for t in ("a", "b", "c")]
    got = coverage([f("a", "pass"), f("b", "not_applicable"), f("c", "error")], targets, ["MLIT-9-5-1"])
    assert got["MLIT-9-5-1"]["automated"]["targets"] == 1
    assert got["MLIT-9-5-1"]["state"] == "partly"
