"""The terminal summary people read: failures first with their fix, long text wrapped and never cut, host text
escaped, in the chosen language. Built from real scans of the rootfs fixtures."""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reports.load import load_report
from reports.model import Report
from reports.terminal import render_terminal
from tests.conftest import FIXTURES

WEAK = FIXTURES / "rootfs" / "weak"
HARDENED = FIXTURES / "rootfs" / "hardened"
Cli = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
HOSTILE_HOST = "evil\x1b]0;owned\x07\x1b[2J[bold red]x[/]\u202e"
SEVERITY = {"critical": 0, "high": 1, "medium": 2, "low": 3}
ROW = re.compile(r"^(\S+) +(critical|high|medium|low|重大|高|中|低) +([A-Z]{2}-\d{2}) ")


@pytest.fixture
def fleet(run_cli: Cli, tmp_path: Path) -> Report:
    """A real scan of two hosts: the weak one (with a hostile hostname) and the hardened one."""
    weak = tmp_path / "weak"
    shutil.copytree(WEAK, weak)
    (weak / "etc/hostname").write_text(HOSTILE_HOST + "\n")
    out = tmp_path / "fleet.json"
    rc, _, _, err = run_cli("scan", "--target", f"rootfs:{weak}", "--target", f"rootfs:{HARDENED}", "--output",
                            str(out), "--quiet")
    assert rc == 1, err
    return load_report(out).report


@pytest.fixture
def single(run_cli: Cli, tmp_path: Path) -> Report:
    out = tmp_path / "single.json"
    rc, _, _, err = run_cli("scan", "--target", f"rootfs:{WEAK}", "--output", str(out), "--quiet")
    assert rc == 1, err
    return load_report(out).report


def render(report: Report, lang: str = "en", *, width: int = 100, verbose: bool = False) -> str:
    buf = io.StringIO()
    render_terminal(report, lang=lang, file=buf, width=width, verbose=verbose)
    return buf.getvalue()


def squeeze(text: str) -> str:
    """Text with all layout gone (spaces, line breaks, table rules): what a wrapped line must still hold."""
    return re.sub(r"[\s│┃|]", "", text)


def rows(text: str) -> list[tuple[str, str, str]]:
    return [(m.group(1), m.group(2), m.group(3)) for line in text.splitlines() if (m := ROW.match(line))]


def test_failures_first_by_severity_then_errors_then_the_rest(fleet: Report) -> None:
    shown = rows(render(fleet))
    by_status = {"FAIL": 0, "error": 1}
    order = [by_status.get(status, 2) for status, _, _ in shown]
    assert order == sorted(order) and 0 in order and 1 in order and 2 in order
    fails = [SEVERITY[sev] for status, sev, _ in shown if status == "FAIL"]
    assert fails == sorted(fails) and fails[0] == 0  # critical first
    assert len(shown) == len(fleet.findings)  # every finding has its row


def test_remediation_is_shown_for_failures_in_the_language(single: Report) -> None:
    for lang, label in (("en", "fix:"), ("ja", "対処:")):
        text = squeeze(render(single, lang))
        fails = [f for f in single.findings if f.status == "fail"]
        assert fails
        for f in fails:
            assert squeeze(f"{label}{f.remediation[lang]}") in text, f.check
        passed = [f for f in single.findings if f.status == "error"]
        assert all(squeeze(f.remediation[lang]) not in text for f in passed)


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_a_long_message_is_wrapped_without_loss(single: Report, lang: str) -> None:
    finding = next(f for f in single.findings if f.status == "fail")
    words = " ".join(f"word{i}" for i in range(250)) + " " + "x" * 300  # spaces, then one unbroken run
    japanese = "".join("設定が見つかりません" for _ in range(200))  # 2 000 characters, no space to break at
    message = {"en": words, "ja": japanese}[lang]
    assert len(message) >= 2000
    finding.message = {**finding.message, lang: message}
    text = render(single, lang, width=80)
    assert squeeze(message) in squeeze(text)
    assert "…" not in text
    assert max(len(line.rstrip()) for line in text.splitlines()) <= 80


def test_hostile_hostnames_are_shown_escaped(fleet: Report) -> None:
    for lang in ("en", "ja"):
        text = render(fleet, lang)
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
        assert "evil\\x1b]0;owned\\x07\\x1b[2J[bold red]x[/]\\u202e" in text  # markup not parsed either


def test_fleet_has_a_line_per_host_with_counts(fleet: Report) -> None:
    text = render(fleet, "en", width=300)  # one line per host when the terminal is wide enough
    for t in fleet.targets:
        [line] = [ln for ln in text.splitlines() if ln.startswith(t.id)]
        fails = sum(1 for f in fleet.findings if f.target == t.id and f.status == "fail")
        assert f"FAIL {fails}" in line
    ja = render(fleet, "ja", width=300)
    assert any(ln.startswith(fleet.targets[1].id) and "不合格" in ln for ln in ja.splitlines())


def test_words_follow_lang(single: Report) -> None:
    en, ja = render(single, "en"), render(single, "ja")
    assert "Failures (" in en and "Could not tell (" in en and "fix:" in en
    assert "不合格 (" in ja and "判定不能 (" in ja and "対処:" in ja and "重大" in ja
    assert "Failures" not in ja and "fix:" not in ja and "critical" not in ja
    assert "対処" not in en and "不合格" not in en


def test_verbose_shows_evidence_and_expected(single: Report) -> None:
    f = next(f for f in single.findings if f.check == "PM-01")
    plain, verbose = render(single, "en"), render(single, "en", verbose=True)
    assert '{"uid0_accounts":["root","toor"]}' in squeeze(verbose)
    assert '{"uid0_accounts":["root"]}' in squeeze(verbose)
    assert "uid0_accounts" not in plain and f.guideline[0] in plain
    assert "証跡:" in render(single, "ja", verbose=True)


def test_odd_evidence_never_crashes(single: Report) -> None:
    f = next(f for f in single.findings if f.status == "fail")
    f.evidence = {"lone": "\ud800", "esc": "\x1b[2J", "nested": [[{"a": {"b": [1, None, True]}}]], "big": "z" * 9000}
    text = render(single, "en", verbose=True)
    assert "\x1b" not in text and "\ud800" not in text
    assert "more characters: see the JSON report" in text


def test_waivers_are_shown_on_waived_failures(single: Report) -> None:
    f = next(f for f in single.findings if f.check == "IA-05")
    f.waiver = {"reason": "legacy backup \x1b[31maccount", "approver": "Tanaka (CISO)", "expires": "2027-03-31",
                "state": "expiring", "source": "waivers.yaml:4"}
    g = next(f for f in single.findings if f.check == "PM-01")
    g.waiver = {"reason": "r", "approver": "a", "expires": "2026-01-01", "state": "expired", "source": "w.yaml:9"}
    text = squeeze(render(single, "en", width=200))
    assert squeeze("waiver (expiring soon) · reason: legacy backup \\x1b[31maccount · approver: Tanaka (CISO) · "
                   "expires: 2027-03-31 · defined at: waivers.yaml:4") in text
    assert squeeze("waiver (EXPIRED)") in text
    assert "(waived1)" in text  # the summary counts the one in force, not the expired one
    assert "期限切れ" in render(single, "ja")


def test_scan_shows_the_same_summary(run_cli: Cli) -> None:
    rc, doc, out, _ = run_cli("scan", "--target", f"rootfs:{WEAK}", "--lang", "en")
    assert rc == 1 and doc is not None
    assert "Failures (" in out and "fix:" in out


def test_verbose_reaches_scan_evaluate_and_report(run_cli: Cli, tmp_path: Path) -> None:
    evidence = '"uid0_accounts":["root","toor"]'
    rc, _, out, _ = run_cli("scan", "--target", f"rootfs:{WEAK}", "--check", "PM-01", "--lang", "en", "--verbose")
    assert rc == 1 and evidence in out
    rc, _, out, _ = run_cli("scan", "--target", f"rootfs:{WEAK}", "--check", "PM-01", "--lang", "en")
    assert rc == 1 and evidence not in out
    bundle = tmp_path / "b.bundle.json"
    rc, _, _, err = run_cli("collect", "--target", f"rootfs:{WEAK}", "--output", str(bundle), report=False)
    assert rc == 0, err
    rc, _, out, _ = run_cli("evaluate", str(bundle), "--check", "PM-01", "--lang", "en", "--verbose",
                            "--output", str(tmp_path / "e.json"))
    assert rc == 1 and evidence in out
    rc, _, out, _ = run_cli("report", str(tmp_path / "e.json"), "--lang", "en", "--verbose", report=False)
    assert rc == 0 and evidence in out
