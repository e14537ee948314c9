"""The HTML report: one self-contained printable page, checked statically and in real headless Chromium.

Reports come from real scans of the rootfs fixtures; hostile reports are those same reports with
attacker-controlled strings (hostnames, SSIDs, evidence, user names, tags, waiver text) set on the loaded
model, as a compromised or malicious host would supply them. Chromium runs with no network: inside a network
namespace of its own when we are root, and with every host name resolving to nothing in any case.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import html
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from reports.formats import RenderContext, get
from reports.formats.html import labels, moment, pretty_json
from reports.load import load_report, report_schema
from reports.model import Report
from reports.safe_text import printable
from reports.signature_status import SignatureInfo
from tests.conftest import FIXTURES, require, require_tool

WEAK = FIXTURES / "rootfs" / "weak"
HARDENED = FIXTURES / "rootfs" / "hardened"

#: Each tries to change document.title, in a different HTML context (text, attribute, <title>, <style>, raw
#: text elements, srcdoc, meta refresh); then ANSI escapes, a bidi override and a lone surrogate.
PAYLOADS = (
    "<script>document.title='PWNED-1'</script>",
    "<img src=x onerror=\"document.title='PWNED-2'\">",
    "\"><svg onload=\"document.title='PWNED-3'\">",
    "'><img src=x onerror=document.title='PWNED-4'>",
    "</title><script>document.title='PWNED-5'</script>",
    "</style><script>document.title='PWNED-6'</script>",
    "</pre></dd><script>document.title='PWNED-7'</script>",
    "<iframe srcdoc=\"<script>parent.document.title='PWNED-8'</script>\"></iframe>",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:document.title='PWNED-9'\">",
    "<a href=\"javascript:document.title='PWNED-10'\" autofocus onfocus=\"document.title='PWNED-11'\">x</a>",
    "\x1b]0;PWNED-12\x07\x1b[31mred\x1b[0m \x9b2J",
    "admin\u202egnp.exe lone-\ud800-surrogate",
)
HOSTILE = " ".join(PAYLOADS)


# --- reports ----------------------------------------------------------------------------------------------

def _scan(out: Path, *targets: Path) -> Path:
    from agent.cli.main import main

    out.parent.mkdir(parents=True)
    argv = ["scan", "--output", str(out), "--quiet", "--no-organisation"]
    for t in targets:
        argv += ["--target", f"rootfs:{t}"]
    assert main(argv) == 1  # the weak tree fails checks: a real report with failures
    return out


@pytest.fixture(scope="module")
def scans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("scans")
    return {"single": _scan(d / "single" / "report.json", WEAK),
            "fleet": _scan(d / "fleet" / "report.json", WEAK, HARDENED)}


def _report(path: Path) -> Report:
    return copy.deepcopy(load_report(path).report)


def _render(report: Report, lang: str = "ja", signature: SignatureInfo | None = None) -> str:
    data = get("html").render(report, RenderContext(lang=lang, signature=signature, source="report.json"))
    return data.decode("utf-8")  # strict: the page is valid UTF-8 whatever the report held


def hostile(report: Report) -> Report:
    """Every host-supplied string a page shows, set to the payloads; a failing finding carries a waiver."""
    t = report.targets[0]
    t.hostname, t.os, t.tags = HOSTILE, HOSTILE, {"org": HOSTILE, HOSTILE: "x"}
    report.run.operator = {"user": HOSTILE, "host": HOSTILE}
    report.run.scope = HOSTILE
    fail = next(f for f in report.findings if f.status == "fail")
    fail.evidence = {"ssid": HOSTILE, "users": list(PAYLOADS), "nested": [{"k": {HOSTILE: [1, None, True]}}]}
    fail.expected = {HOSTILE: HOSTILE}
    fail.message = {"ja": HOSTILE, "en": HOSTILE}
    fail.title = {"ja": HOSTILE, "en": HOSTILE}
    fail.waiver = {"reason": HOSTILE, "approver": HOSTILE, "expires": "2027-01-31", "state": "valid",
                   "source": "waivers.yaml:3"}
    other = next(f for f in report.findings if f.status == "pass")
    other.evidence = HOSTILE
    other.remediation = {"ja": HOSTILE, "en": HOSTILE}
    return report


# --- a small HTML reader ------------------------------------------------------------------------------------

@dataclasses.dataclass
class Page:
    tags: list[tuple[str, dict[str, str | None]]] = dataclasses.field(default_factory=list)
    text: str = ""
    title: str = ""
    style: str = ""
    ids: list[str] = dataclasses.field(default_factory=list)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.page.tags.append((tag, dict(attrs)))
        if dict(attrs).get("id"):
            self.page.ids.append(str(dict(attrs)["id"]))
        self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:
            while self._open.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        where = self._open[-1] if self._open else ""
        if where == "title":
            self.page.title += data
        elif where == "style":
            self.page.style += data
        else:
            self.page.text += data


def read(markup: str) -> Page:
    r = _Reader()
    r.feed(markup)
    r.close()
    return r.page


def _section(markup: str, section_id: str) -> str:
    m = re.search(rf'<section id="{section_id}"[^>]*>(.*?)</section>', markup, re.S)
    assert m, f"no section {section_id}"
    return m.group(1)


# --- static checks -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["ja", "en"])
def test_hostile_strings_are_text_and_the_page_fetches_nothing(scans: dict[str, Path], lang: str) -> None:
    markup = _render(hostile(_report(scans["fleet"])), lang)
    page = read(markup)
    assert "<script" not in markup.lower()
    assert "\x1b" not in markup and "\x9b" not in markup and "\u202e" not in markup
    # only this page's own elements, none that loads, embeds or runs anything
    kinds = {tag for tag, _ in page.tags}
    assert kinds <= {"html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "p", "div",
                     "span", "table", "thead", "tbody", "tr", "th", "td", "br", "a", "nav", "ol", "li", "section",
                     "article", "dl", "dt", "dd", "pre", "strong", "footer"}, kinds
    for tag, attrs in page.tags:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert "src" not in attrs and "srcset" not in attrs and "action" not in attrs
        if "href" in attrs:
            assert str(attrs["href"]).startswith("#") and str(attrs["href"])[1:] in page.ids, attrs
    assert not re.search(r"(?:src|href|action)\s*=\s*[\"']?\s*(?:https?:|//|javascript:)", markup, re.I)
    assert "url(" not in page.style and "@import" not in page.style
    # the strict policy, first in <head>, allowing exactly the page's own stylesheet by its hash
    metas = [a for t, a in page.tags if t == "meta" and str(a.get("http-equiv", "")).lower() == "content-security-policy"]
    assert len(metas) == 1
    policy = str(metas[0]["content"])
    digest = base64.b64encode(hashlib.sha256(page.style.encode()).digest()).decode()
    assert policy == f"default-src 'none'; style-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    assert markup.index("Content-Security-Policy") < markup.index("<style>")
    # the title is the template's own; every payload is on the page as text, its controls made visible
    assert page.title == labels(lang)["title"]
    for p in PAYLOADS:
        assert printable(p) in page.text, p
    assert "\\x1b]0;PWNED-12\\x07" in page.text and "\\x9b2J" in page.text
    assert "\\u202e" in page.text and "\\ud800" in page.text


def test_odd_evidence_never_crashes_and_huge_values_are_cut(scans: dict[str, Path]) -> None:
    report = _report(scans["single"])
    f = report.findings[0]
    f.evidence = {"deep": [[[[{"x": [1.5, -0.0, 10**30]}]]]], "nul": "a\x00b", "emoji": "🔒鍵",
                  "surrogate_pair_halves": "\udc80\udbff", "big": "A" * 200_000}
    deep: list[Any] = []
    for _ in range(50_000):
        deep = [deep]
    f.expected = deep
    markup = _render(report, "en")
    text = read(markup).text
    assert "\x00" not in markup and "\\u0000" in text  # JSON's own escape, shown as text
    assert "🔒鍵" in text and "\\udc80\\udbff" in text
    cut = len(pretty_json(f.evidence, limit=10**9)[0]) - 20_000
    assert f"… {cut} {labels('en')['cut']}" in text
    assert "A" * 200_000 not in markup and "A" * 1000 in markup
    assert labels("en")["too_deep"] in text


# --- structure -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("lang", ["ja", "en"])
def test_fleet_report_has_a_host_table_and_failures_first(scans: dict[str, Path], lang: str) -> None:
    report = _report(scans["fleet"])
    words = labels(lang)
    markup = _render(report, lang)
    assert f'<html lang="{lang}">' in markup
    page = read(markup)
    for heading in (words["summary"], words["to_fix"], words["hosts"], words["all_findings"]):
        assert heading in page.text
    # per-host table: one row per target, with its counts
    hosts = _section(markup, "hosts")
    rows = re.findall(r"<tr>\s*<td>(.*?)</tr>", hosts, re.S)
    assert len(rows) == len(report.targets) == 2
    for t, row in zip(report.targets, rows, strict=True):
        assert html.escape(t.hostname) in row and html.escape(t.id) in row
        fails = sum(1 for f in report.findings if f.target == t.id and f.status == "fail")
        assert f'<td class="num">{fails}</td>' in row
    # every finding once; failures before errors before passes, most severe failure first
    findings = _section(markup, "findings")
    statuses = re.findall(r'<article class="finding st-border-(\w+)"', findings)
    assert len(statuses) == len(report.findings)
    order = ["fail", "error", "manual", "pass", "not_applicable"]
    assert statuses == sorted(statuses, key=order.index) and statuses[0] == "fail" and "pass" in statuses
    sev = re.findall(r'<span class="sev sev-(\w+)">', _section(markup, "to-fix"))
    ranks = ["critical", "high", "medium", "low"]
    assert sev and sev == sorted(sev, key=ranks.index)
    # a check failing on both hosts is one entry to fix, naming both hosts, with its remediation once
    both = {f.check for f in report.findings if f.status == "fail" and f.target == report.targets[0].id} & {
        f.check for f in report.findings if f.status == "fail" and f.target == report.targets[1].id}
    assert both
    check = sorted(both)[0]
    entry = re.search(rf'<div class="fix">\s*<h3>.*?<span class="mono">{check}</span>.*?</div>',
                      _section(markup, "to-fix"), re.S)
    assert entry and all(html.escape(t.hostname) in entry.group(0) for t in report.targets)
    fix = next(f for f in report.findings if f.check == check)
    assert entry.group(0).count(html.escape(fix.remediation[lang])) == 1
    # the guideline summary counts what the report's own summary counts
    summary = report.summary()["by_guideline"]
    item = sorted(summary)[0]
    row = re.search(rf'<tr><td><span class="mono">{item}</span>.*?</tr>', _section(markup, "summary"), re.S)
    assert row
    cells = re.findall(r'<td class="num[^"]*">(\d+)</td>', row.group(0))
    assert [int(c) for c in cells[:5]] == [summary[item][s] for s in order]


def test_a_single_target_is_on_the_cover_without_a_host_table(scans: dict[str, Path]) -> None:
    report = _report(scans["single"])
    report.targets[0].tags = {"org": "山田不動産", "site": "本店"}
    markup = _render(report, "en")
    assert 'id="hosts"' not in markup
    cover = markup[markup.index('<header id="cover">'):markup.index("</header>")]
    assert "reception-pc" in cover and report.run.policy["sha256"] in cover and report.run.id in cover
    assert f"mamoru {report.run.tool['version']}" in cover
    assert labels("en")["organisation"] in cover and "org: 山田不動産" in cover and "site: 本店" in cover


def test_labels_are_strings_with_the_same_keys_in_both_languages() -> None:
    """YAML reads a bare ``on``/``no`` as a boolean: the cover once said "root (True host)"."""

    def leaves(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
        return out

    ja, en = leaves(labels("ja")), leaves(labels("en"))
    assert ja.keys() == en.keys()
    assert all(isinstance(v, str) and v for v in [*ja.values(), *en.values()])
    assert set(labels("en")["status"]) == {"pass", "fail", "error", "not_applicable", "manual"}
    schema = report_schema()  # every reason code a report may carry has words
    reasons = schema["properties"]["targets"]["items"]["properties"]["reason"]["enum"]
    assert {r for r in reasons if r} == set(labels("ja")["reason"]) == set(labels("en")["reason"])


def test_period_is_shown_in_japan_time_and_utc() -> None:
    m = moment("2026-12-05T20:30:00.123Z")
    assert (m.jst, m.utc) == ("2026-12-06 05:30:00 JST", "2026-12-05 20:30:00 UTC")


def test_waiver_is_shown_and_a_waived_failure_is_not_in_what_to_fix(scans: dict[str, Path]) -> None:
    report = _report(scans["single"])
    fails = [f for f in report.findings if f.status == "fail"]
    fails[0].waiver = {"reason": "業者の交換待ち", "approver": "山田 (総務)", "expires": "2027-01-31",
                       "state": "expiring", "source": "waivers.yaml:7"}
    fails[1].waiver = {"reason": "old", "approver": "sato", "expires": "2026-01-31", "state": "expired",
                       "source": "waivers.yaml:12"}
    markup = _render(report, "ja")
    words = labels("ja")
    to_fix = _section(markup, "to-fix")
    waived_part = to_fix[to_fix.index(words["waived_heading"]):]
    fixing_part = to_fix[:to_fix.index(words["waived_heading"])]
    for text in ("業者の交換待ち", "山田 (総務)", "2027-01-31", words["waiver_state"]["expiring"], "waivers.yaml:7"):
        assert text in waived_part
    # an expired waiver no longer excuses the failure: it is to fix again, and its waiver is still shown
    assert f"{fails[1].check}</span>" in fixing_part and words["waiver_state"]["expired"] in markup
    assert f"{fails[0].check}</span>" not in fixing_part or any(
        f.check == fails[0].check and f is not fails[0] and not f.waived for f in fails)
    findings = _section(markup, "findings")
    assert findings.count('<div class="waiver') == 2 and findings.count('<div class="waiver expired">') == 1


@pytest.mark.parametrize(("info", "ja", "en"), [
    (SignatureInfo(status="verified", fingerprint="SHA256:abc", principals=("auditor@example.jp",)),
     "署名は有効です", "Valid signature, by a key your allowed_signers file vouches for"),
    (SignatureInfo(status="unverified_signer", fingerprint="SHA256:abc"), "誰のものかは確認されていません",
     "by a key nobody vouched for"),
    (SignatureInfo(status="invalid", fingerprint="SHA256:abc", problem="bad signature"), "署名が無効です",
     "INVALID signature"),
    (SignatureInfo(status="unsigned"), "署名されていません", "Unsigned"),
    (None, "署名は確認されていません", "not checked"),
])
def test_signature_status_in_plain_words(scans: dict[str, Path], info: SignatureInfo | None, ja: str,
                                         en: str) -> None:
    report = _report(scans["single"])
    for lang, words in (("ja", ja), ("en", en)):
        cover = read(_render(report, lang, info)).text
        assert words in cover
        if info is not None and info.fingerprint:
            assert info.fingerprint in cover
        if info is not None and info.principals:
            assert "auditor@example.jp" in cover
        if info is not None and info.problem:
            assert info.problem in cover


def test_report_command_writes_html_with_the_real_signature_checked(tmp_path: Path) -> None:
    """End to end: a real signed scan, ``mamoru report --format html --allowed-signers``: the cover says who."""
    from agent.cli.main import main
    from reports.signing.keys import allowed_signers_line, create_key_files

    key = create_key_files(tmp_path / "key", comment="auditor")
    out = tmp_path / "r" / "report.json"
    out.parent.mkdir()
    assert main(["scan", "--target", f"rootfs:{WEAK}", "--output", str(out), "--sign-key", str(tmp_path / "key"),
                 "--quiet"]) == 1
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(allowed_signers_line("auditor@example.jp", key.public_blob, "mamoru-report") + "\n")
    page = tmp_path / "report.html"
    assert main(["report", str(out), "--format", "html", "--lang", "en", "--output", str(page),
                 "--allowed-signers", str(allowed)]) == 0
    text = read(page.read_text("utf-8")).text
    assert "vouches for, as: auditor@example.jp" in text and "SHA256:" in text
    out.write_bytes(out.read_bytes().replace(b'"status": "fail"', b'"status": "pass"', 1))  # forged after signing
    assert main(["report", str(out), "--format", "html", "--lang", "ja", "--output", str(page)]) == 0
    assert labels("ja")["sig"]["invalid"] in read(page.read_text("utf-8")).text


# --- real headless Chromium ----------------------------------------------------------------------------------

def _chromium_argv(profile: Path) -> list[str]:
    argv = []
    if os.geteuid() == 0 and shutil.which("unshare"):
        argv = ["unshare", "--net", "--"]  # a network namespace with nothing in it: no packet can leave
    argv += ["chromium", "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-extensions", "--host-resolver-rules=MAP * ~NOTFOUND", "--no-proxy-server",
             f"--user-data-dir={profile}", "--hide-scrollbars"]
    if os.geteuid() == 0:
        argv.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    return argv


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Any]:
    require_tool("chromium")

    def run(page: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
        argv = [*_chromium_argv(tmp_path / "profile"), *args, page.resolve().as_uri()]
        return subprocess.run(argv, capture_output=True, timeout=180, check=True)

    yield run


def _dump_dom(chromium: Any, page: Path) -> Page:
    # virtual time lets load, error and focus handlers run before the DOM is written out
    return read(chromium(page, "--virtual-time-budget=3000", "--dump-dom").stdout.decode("utf-8"))


@pytest.mark.needs_service
def test_chromium_runs_no_script_from_a_hostile_report(scans: dict[str, Path], chromium: Any,
                                                       tmp_path: Path) -> None:
    markup = _render(hostile(_report(scans["fleet"])), "en")
    title = labels("en")["title"]
    # the harness sees script that runs: the same payloads pasted in unescaped change the title
    canary = tmp_path / "canary.html"
    unsafe = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", markup)
    canary.write_text(unsafe.replace("</body>", HOSTILE.replace("\ud800", "") + "</body>"), "utf-8")
    assert "PWNED" in _dump_dom(chromium, canary).title
    # the page as rendered, and with its CSP taken out (escaping alone must hold): nothing ran, all is text
    page = tmp_path / "report.html"
    page.write_text(markup, "utf-8")
    bare = tmp_path / "no-csp.html"
    bare.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", markup), "utf-8")
    assert "Content-Security-Policy" not in bare.read_text("utf-8")
    for p in (page, bare):
        dom = _dump_dom(chromium, p)
        assert dom.title == title, dom.title
        assert {t for t, _ in dom.tags}.isdisjoint({"script", "img", "svg", "iframe"})
        for payload in PAYLOADS:
            assert printable(payload) in dom.text, payload


def _png_colours(path: Path) -> int:
    from PIL import Image

    with Image.open(path) as im:
        assert im.size == (1024, 1400)
        return len(im.convert("RGB").getcolors(maxcolors=1 << 20) or [])


def _pdf(tool: str, path: Path, *args: str) -> str:
    return subprocess.run([tool, *args, str(path)] if tool != "pdftotext" else [tool, *args, str(path), "-"],
                          capture_output=True, check=True, timeout=60).stdout.decode("utf-8")


@pytest.mark.needs_service
@pytest.mark.parametrize("lang", ["ja", "en"])
def test_chromium_screenshot_and_pdf_print(scans: dict[str, Path], chromium: Any, tmp_path: Path,
                                           lang: str) -> None:
    require_tool("pdfinfo", "pdffonts", "pdftotext")
    page = tmp_path / "report.html"
    page.write_text(_render(_report(scans["fleet"]), lang), "utf-8")
    png, pdf = tmp_path / "shot.png", tmp_path / "report.pdf"
    chromium(page, f"--screenshot={png}", "--window-size=1024,1400")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _png_colours(png) > 50  # text, tables and coloured badges: not a blank page
    chromium(page, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    info = _pdf("pdfinfo", pdf)
    pages = int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))  # type: ignore[union-attr]
    assert pages >= 4  # cover, then summary, what to fix, hosts and findings each from a new page
    assert re.search(r"^Page size:.*\(A4\)$", info, re.M), info
    text = _pdf("pdftotext", pdf, "-layout")
    words = labels(lang)
    for heading in (words["title"], words["summary"], words["hosts"], words["all_findings"]):
        assert " ".join(heading.split()) in " ".join(text.split())


@pytest.mark.needs_service
def test_japanese_is_drawn_with_real_glyphs(scans: dict[str, Path], chromium: Any, tmp_path: Path) -> None:
    """What this proves: fontconfig picks IPA Gothic for Japanese; the PDF Chromium prints embeds IPA fonts;
    and the Japanese text comes back out of the PDF from those fonts' glyph-to-Unicode maps, which a missing
    glyph (a tofu box, .notdef) does not have — the control page shows that characters no installed font has
    do not come back. So the Japanese on the page is drawn with real IPA glyphs, not boxes."""
    require_tool("fc-match", "pdffonts", "pdftotext")
    family = subprocess.run(["fc-match", "-f", "%{family}", ":lang=ja"], capture_output=True, check=True,
                            text=True).stdout
    require("IPA" in family, f"fonts-ipafont-gothic is not installed (fc-match :lang=ja gives {family!r})")
    page = tmp_path / "report.html"
    page.write_text(_render(_report(scans["fleet"]), "ja"), "utf-8")
    pdf = tmp_path / "report.pdf"
    chromium(page, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    fonts = _pdf("pdffonts", pdf).splitlines()[2:]
    names = {line.split()[0].split("+")[-1] for line in fonts}
    assert names & {"IPAGothic", "IPAPGothic"}, names
    assert all(line.split()[-5] == "yes" for line in fonts)  # every font embedded: the PDF reads the same anywhere
    text = "".join(_pdf("pdftotext", pdf).split())
    for words in (labels("ja")["title"], "ガイドライン項目ごとの集計", "対応が必要な項目", "不合格"):
        assert "".join(words.split()) in text, words
    # control: characters no installed font has are drawn as boxes and do not come back out
    control = tmp_path / "tofu.html"
    control.write_text('<!DOCTYPE html><html lang="ja"><meta charset="utf-8"><p>監査\U000f0041\U000f0042\U000f0043'
                       "報告書</p></html>", "utf-8")
    chromium(control, f"--print-to-pdf={tmp_path / 'tofu.pdf'}", "--no-pdf-header-footer")
    tofu = "".join(_pdf("pdftotext", tmp_path / "tofu.pdf").split())
    assert "監査" in tofu and "報告書" in tofu and "\U000f0041" not in tofu
