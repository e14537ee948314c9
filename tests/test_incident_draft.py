"""``mamoru incident draft``: the safeguards part of a breach report, from a real signed scan, checked now.

Every draft here is made from a real scan of a root filesystem (the weak fixture, copied, with a plain
``/etc/fstab`` so PH-02 fails, a hostile host name and a hostile device name), signed with a key made in the
test. The draft must make its statement verifiable (run id, SHA-256 of the exact bytes, key fingerprint),
say at the top when the report is unsigned or its signature does not verify, keep host text inert, and list
every item of the Enforcement Rules Art. 8(1), filled or as a question.
"""

from __future__ import annotations

import hashlib
import html as htmllib
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reports.formats.markdown import md
from reports.signing.keys import allowed_signers_line, create_key_files, fingerprint
from tests.conftest import FIXTURES, finding

Cli = Callable[..., tuple[int, dict[str, Any] | None, str, str]]

HOSTNAME = "<img src=x onerror=alert(1)>**pc**|[a](http://evil.example)"
DEVICE = "/dev/sda1<script>alert(1)</script>|*x*[l](http://evil.example)`c`"
#: Enforcement Rules Art. 8(1) items 1–9 (formats.md §C2), as the Japanese draft titles them.
RULE8_JA = ("概要", "個人データの項目", "本人の数", "原因", "二次被害", "本人への対応", "公表",
            "再発防止のための措置", "その他参考となる事項")
RULE8_EN = ("Overview", "Items of the personal data", "Number of people", "Cause", "Secondary damage",
            "Response to the people concerned", "Publication", "Recurrence-prevention measures",
            "Other relevant information")


class Scan:
    def __init__(self, report: Path, allowed: Path, fp: str, doc: dict[str, Any]) -> None:
        self.report, self.allowed, self.fingerprint, self.doc = report, allowed, fp, doc


@pytest.fixture
def scan(tmp_path: Path, run_cli: Cli) -> Scan:
    root = tmp_path / "root"
    shutil.copytree(FIXTURES / "rootfs" / "weak", root, symlinks=True)
    (root / "etc" / "hostname").write_text(HOSTNAME + "\n")
    (root / "etc" / "fstab").write_text(f"{DEVICE} / ext4 defaults 0 1\n")
    key = create_key_files(tmp_path / "key", comment="auditor")
    out = tmp_path / "out" / "report.json"
    out.parent.mkdir()
    rc, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--output", str(out), "--sign-key",
                            str(tmp_path / "key"), "--quiet")
    assert rc == 1 and doc is not None
    assert doc["targets"][0]["hostname"] == HOSTNAME  # the hostile name really is in the report
    ph02 = finding(doc, "PH-02")
    assert ph02["status"] == "fail" and DEVICE in ph02["message"]["en"]
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(allowed_signers_line("auditor@example.jp", key.public_blob, "mamoru-report") + "\n")
    return Scan(out, allowed, fingerprint(key.public_blob), doc)


def draft(run_cli: Cli, report: Path, *extra: str) -> str:
    out = report.parent / "draft.md"
    rc, _, _, err = run_cli("incident", "draft", "--report", str(report), "--output", str(out), *extra,
                            report=False)
    assert rc == 0, err
    return out.read_text("utf-8")


def to_html(text: str) -> str:
    """The draft as a GitHub-like renderer shows it (tables, raw HTML passed through)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).render(text)


def top(text: str) -> str:
    """What a reader sees before the first section: the title, the banner and the introduction."""
    return text.split("\n## ", 1)[0]


def part(text: str, heading: str) -> str:
    """One ``### `` part of the draft, up to the next heading of the same or a higher level."""
    start = text.index("\n### " + heading)
    m = re.search(r"\n#{2,3} ", text[start + 1:])
    return text[start: start + 1 + m.start()] if m else text[start:]


def test_the_draft_names_run_hash_time_and_key(scan: Scan, run_cli: Cli) -> None:
    text = draft(run_cli, scan.report, "--allowed-signers", str(scan.allowed), "--lang", "en")
    shown = htmllib.unescape(re.sub(r"<[^>]+>", "", to_html(text)))
    run = scan.doc["run"]
    assert f"Run id**: {run['id']}" in text
    assert hashlib.sha256(scan.report.read_bytes()).hexdigest() in text  # the exact bytes signed
    assert scan.fingerprint.startswith("SHA256:") and scan.fingerprint in shown
    assert "auditor@example.jp" in shown and "verified (a valid signature by a trusted key)" in shown
    assert run["started"][:10] in text and "UTC" in text
    assert re.search(r"Signature checked at\*\*: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", text)
    head = top(text)
    assert "INVALID" not in head and "UNSIGNED" not in head and "Caution" not in head


def test_failed_disk_encryption_shows_in_the_encryption_part(scan: Scan, run_cli: Cli) -> None:
    for lang, heading, failed in (("en", "Encryption", "fail"), ("ja", "暗号化", "不合格")):
        text = draft(run_cli, scan.report, "--allowed-signers", str(scan.allowed), "--lang", lang)
        enc = part(text, heading)
        row = next(line for line in enc.splitlines() if line.startswith("| PH-02 |"))
        assert f"{failed}: {md(HOSTNAME)}" in row, row  # the status, on the host it was found on
        assert f"- PH-02 · {md(HOSTNAME)}: " in enc and md(DEVICE) in enc  # and what the report said


def test_an_unjudged_part_is_never_shown_as_in_place(scan: Scan, run_cli: Cli, tmp_path: Path) -> None:
    """A part whose checks were not run says so: no finding is no evidence of a measure."""
    out = tmp_path / "only" / "r.json"
    out.parent.mkdir()
    root = tmp_path / "root"
    run_cli("scan", "--target", f"rootfs:{root}", "--check", "PH-02", "--output", str(out), "--quiet")
    text = draft(run_cli, out, "--lang", "en")
    assert "holds no result for this part (it was not audited)" in part(text, "Anti-malware")
    assert "| PH-02 |" in part(text, "Encryption")


def test_a_flipped_byte_is_invalid_at_the_top(scan: Scan, run_cli: Cli) -> None:
    data = scan.report.read_bytes()
    assert data.count(b'"Ubuntu 22.04"') >= 1
    scan.report.write_bytes(data.replace(b'"Ubuntu 22.04"', b'"Ubuntu 22.05"', 1))  # one byte, still a report
    for lang, word in (("en", "INVALID"), ("ja", "無効")):
        text = draft(run_cli, scan.report, "--allowed-signers", str(scan.allowed), "--lang", lang)
        banner = top(text).split("\n\n")[1]
        assert banner.startswith("**") and banner.endswith("**") and word in banner, banner
        assert "<strong>" in to_html(banner)
    text = draft(run_cli, scan.report, "--lang", "en")  # without allowed_signers: the key's own check fails too
    assert "INVALID" in top(text).split("\n\n")[1]


def test_unsigned_and_unestablished_keys_are_said_at_the_top(scan: Scan, run_cli: Cli) -> None:
    text = draft(run_cli, scan.report, "--lang", "en")  # valid signature, no allowed_signers
    assert "whether the signing key is one you trust was not checked" in top(text).split("\n\n")[1]
    assert scan.fingerprint in htmllib.unescape(re.sub(r"<[^>]+>", "", to_html(text)))
    Path(str(scan.report) + ".sig").unlink()
    for lang, word in (("en", "UNSIGNED"), ("ja", "署名がありません")):
        text = draft(run_cli, scan.report, "--allowed-signers", str(scan.allowed), "--lang", lang)
        banner = top(text).split("\n\n")[1]
        assert banner.startswith("**") and word in banner, banner
        assert "SHA256:" not in text  # no key to name


def test_hostile_host_text_stays_inert(scan: Scan, run_cli: Cli) -> None:
    for lang in ("ja", "en"):
        text = draft(run_cli, scan.report, "--allowed-signers", str(scan.allowed), "--lang", lang)
        html = to_html(text)
        for tag in ("<script", "<img", "<a ", "<strong>pc", "<em>x", "<code>c"):
            assert tag not in html, tag
        shown = htmllib.unescape(re.sub(r"<[^>]+>", "", html))
        assert HOSTNAME in shown and DEVICE in shown  # shown as written, not interpreted
        # no host "|" split a table row: every row of every table has as many cells as its header
        for table in re.findall(r"<table>(.*?)</table>", html, re.S):
            header = len(re.findall(r"<th>", table))
            rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
            assert rows and all(r.count("<td>") == header for r in rows)


@pytest.mark.parametrize(("lang", "titles", "fill"), [("ja", RULE8_JA, "【記入】"), ("en", RULE8_EN, "[FILL IN]")])
def test_every_rule8_item_appears(scan: Scan, run_cli: Cli, lang: str, titles: tuple[str, ...], fill: str) -> None:
    text = draft(run_cli, scan.report, "--allowed-signers", str(scan.allowed), "--lang", lang)
    heads = re.findall(r"^### (\d)\. (.+)$", text, re.M)
    assert [int(n) for n, _ in heads] == list(range(1, 10))
    for (_, head), title in zip(heads, titles, strict=True):
        assert title in head, (head, title)
    for n in range(1, 10):
        body = text.split(f"\n### {n}. ", 1)[1].split("\n### ", 1)[0]
        assert fill in body  # the person filling it in is asked
    eight = text.split("\n### 8. ", 1)[1].split("\n### ", 1)[0]
    assert "PH-02" in eight and "IA-01" in eight  # what failed, as material for recurrence prevention
    assert ("30" in text and "60" in text) and ("3〜5" in text if lang == "ja" else "3–5" in text)
    sources = text.split("\n## ", 2)[1]
    assert ("報告様式" in sources and "参照していません" in sources) if lang == "ja" else \
        ("form were not read" in sources)
    assert "2024" in sources  # the version of the Rules the items follow


def test_attested_organisation_items_name_who_answered(scan: Scan, run_cli: Cli, tmp_path: Path) -> None:
    answers = tmp_path / "answers.yaml"
    answers.write_text("answers:\n  - item: OR-16\n    answer: yes\n    evidence: AP設定の写真 <b>x</b>\n"
                       "    answered_by: 総務 山田\n    answered_at: 2026-11-01\n    valid_until: 2099-03-31\n")
    out = tmp_path / "att" / "r.json"
    out.parent.mkdir()
    rc, doc, _, err = run_cli("scan", "--target", f"rootfs:{tmp_path / 'root'}", "--answers", str(answers),
                              "--output", str(out), "--quiet")
    assert doc is not None, err
    text = draft(run_cli, out, "--lang", "ja")
    org = part(text, "組織としての措置")
    row = next(line for line in org.splitlines() if line.startswith("| OR-16 |"))
    assert "合格" in row and "総務 山田" in row and "2026-11-01" in row and "2099-03-31" in row
    assert "<b>" not in to_html(org)
    assert "未回答" in next(line for line in org.splitlines() if line.startswith("| OR-01 |"))


def test_a_damaged_report_is_refused(tmp_path: Path, run_cli: Cli) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "mamoru-report/1"')
    rc, _, _, err = run_cli("incident", "draft", "--report", str(bad), report=False)
    assert rc == 2 and "bad.json" in err


def test_the_parts_name_real_checks_and_items_with_both_languages() -> None:
    """A part naming a check or item that does not exist would silently show "not audited"."""
    from checks.base import guideline_items
    from reports.incident import all_topic_checks, texts, topics

    meta = FIXTURES.parents[1] / "checks" / "meta"
    assert all((meta / f"{c}.yaml").is_file() for c in all_topic_checks())
    assert all(g in guideline_items() for tp in topics() for g in tp.guideline)
    ja, en = texts("ja"), texts("en")
    assert set(ja) == set(en) and set(ja["topic"]) == set(en["topic"]) == {tp.id for tp in topics()}
    assert len(ja["items"]) == len(en["items"]) == 9


def test_two_hosts_of_one_name_stay_apart(tmp_path: Path, run_cli: Cli) -> None:
    """Two PCs both called reception-pc, one encrypted and one not: the draft must not merge them."""
    plain, enc = tmp_path / "a", tmp_path / "b"
    for root, fstab in ((plain, "/dev/sda1 / ext4 defaults 0 1\n"),
                        (enc, "/dev/mapper/root_crypt / ext4 defaults 0 1\n")):
        shutil.copytree(FIXTURES / "rootfs" / "weak", root, symlinks=True)
        (root / "etc" / "fstab").write_text(fstab)
    (enc / "etc" / "crypttab").write_text("root_crypt UUID=abcd none luks\n")
    out = tmp_path / "two" / "r.json"
    out.parent.mkdir()
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{plain}", "--target", f"rootfs:{enc}", "--check", "PH-02",
                           "--output", str(out), "--quiet")
    assert doc is not None and sorted(f["status"] for f in doc["findings"]) == ["fail", "pass"]
    row = next(line for line in part(draft(run_cli, out, "--lang", "en"), "Encryption").splitlines()
               if line.startswith("| PH-02 |"))
    assert f"fail: reception-pc \\(rootfs:{md(str(plain))}\\)" in row, row
    assert f"pass: reception-pc \\(rootfs:{md(str(enc))}\\)" in row, row


def test_the_command_says_on_stderr_when_the_report_is_not_verified(scan: Scan, run_cli: Cli) -> None:
    Path(str(scan.report) + ".sig").unlink()
    rc, _, stdout, err = run_cli("incident", "draft", "--report", str(scan.report), "--lang", "en", report=False)
    assert rc == 0 and stdout.startswith("# Breach report draft") and "UNSIGNED" in err
    rc, _, stdout, err = run_cli("incident", "draft", "--report", str(scan.report), report=False)
    assert rc == 0 and stdout.startswith("# 漏えい等報告 下書き") and "UNSIGNED" in err  # Japanese by default
