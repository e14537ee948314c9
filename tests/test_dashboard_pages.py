"""The organisation pages over reports that went through the real ingest: a real ``mamoru scan`` of this
machine, made into daily signed series (tests/dashboard_reports.py), altered where a test needs a shape
(hostile host text, a failure that starts, a waiver that lapses).

Each page answers in ja and en, on an empty organisation too; host text is inert in HTML, SVG and CSV; another
organisation's ids are 404; the numbers are the stored findings' numbers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from dashboard import charts, queries
from dashboard.ingest import ingest
from dashboard.models import (
    DailyItemSummary,
    Finding,
    FindingItem,
    Host,
    Membership,
    Observation,
    Organisation,
    Report,
)
from tests.dashboard_reports import Made, SeriesMaker, Signer

pytestmark = pytest.mark.django_db

HOSTILE_NAME = '<script>alert("host")</script>'
HOSTILE_MESSAGE = '"><svg onload=alert(1)>'
TERMINAL = "\x1b[31mred\x1b]0;title\x07"
HUGE = "A" * 200_000
PAGES = ("overview", "hosts", "checks", "manual", "waivers", "print_report")


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def org(signer: Signer) -> Organisation:
    return Organisation.objects.create(slug="a", name="A 不動産", allowed_signers=signer.allowed)


@pytest.fixture
def other(signer: Signer) -> Organisation:
    return Organisation.objects.create(slug="b", name="B 商事", allowed_signers=signer.allowed)


@pytest.fixture
def member(client: Client, django_user_model: Any, org: Organisation) -> Client:
    user = django_user_model.objects.create_user(username="alice", password="correct horse battery")
    Membership.objects.create(user=user, organisation=org, role="viewer")
    client.force_login(user)
    return client


def put(org: Organisation, made: Made) -> None:
    ingest(org, made.data, made.sig, made.sha256)


def get(client: Client, url: str, lang: str = "ja") -> str:
    response = client.get(url, HTTP_ACCEPT_LANGUAGE=lang)
    assert response.status_code == 200, (url, response.status_code)
    body = b"".join(response.streaming_content) if response.streaming else response.content  # type: ignore[attr-defined]
    return body.decode("utf-8-sig")


def local(doc: dict[str, Any], check: str) -> dict[str, Any]:
    return next(f for f in doc["findings"] if f["target"] == "local" and f["check"] == check)


def setting(check: str, status: str, **more: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        f = local(doc, check)
        f["status"] = status
        f.update(more)
    return change


def both(*changes: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        for c in changes:
            c(doc)
    return change


def url(name: str, slug: str = "a", **kw: Any) -> str:
    from django.urls import reverse

    return reverse(f"dashboard:{name}", kwargs={"slug": slug, **kw})


# ---------------------------------------------------------------- every page, both languages


@pytest.mark.parametrize("lang, word", [("ja", "適合率"), ("en", "Share compliant")])
def test_every_page_answers_on_an_empty_organisation(member: Client, org: Organisation, lang: str,
                                                     word: str) -> None:
    for name in PAGES:
        body = get(member, url(name), lang)
        assert "<script" not in body
        assert f'<html lang="{lang}">' in body
    assert word in get(member, url("overview"), lang)
    assert get(member, url("export_csv"), lang).count("\r\n") == 1  # the header only
    assert get(member, url("export_ocsf"), lang) == ""


@pytest.mark.parametrize("lang, words", [("ja", ("ガイドライン項目", "不合格", "実行の履歴", "悪化")),
                                         ("en", ("Guideline item", "fail", "Timeline", "Regressed"))])
def test_pages_of_real_reports_in_both_languages(member: Client, org: Organisation, signer: Signer, lang: str,
                                                 words: tuple[str, ...]) -> None:
    maker = SeriesMaker(signer)
    put(org, maker.make(0))
    put(org, maker.make(1, change=setting("IA-01", "fail")))
    pc = Host.objects.get(organisation=org, kind="local")
    overview = get(member, url("overview"), lang)
    host = get(member, url("host", host_id=pc.pk), lang)
    for w in words[:2]:
        assert w in overview
    assert words[2] in host and words[3] in host
    # every run on the timeline links its report and .sig exactly as received, for anyone to re-verify
    for report in Report.objects.filter(organisation=org):
        assert f"/o/{org.slug}/reports/{report.sha256}/report.json" in host
        assert f"/o/{org.slug}/reports/{report.sha256}/report.json.sig" in host
    check = get(member, url("check", check_id="IA-01"), lang)
    assert "office-pc-01" in check
    for name in PAGES:
        body = get(member, url(name), lang)
        assert "<script" not in body


def test_host_page_queries_do_not_grow_with_its_timeline(member: Client, org: Organisation,
                                                        signer: Signer) -> None:
    """One query per page section, not one per run: a row that reached a deferred field cost 100 queries and
    ~55 ms per host page at 1,000 hosts x 365 days (benchmarks/dashboard.py)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    maker = SeriesMaker(signer)
    counts = []
    for days in (range(0, 3), range(3, 9)):
        for day in days:
            put(org, maker.make(day))
        pc = Host.objects.get(organisation=org, kind="local")
        with CaptureQueriesContext(connection) as queries_run:
            body = get(member, url("host", host_id=pc.pk))
        assert body.count("report.json.sig") >= len(days)
        counts.append(len(queries_run.captured_queries))
    assert counts[0] == counts[1], counts


# ---------------------------------------------------------------- overview numbers


def test_grid_counts_are_the_latest_findings_of_every_host(member: Client, org: Organisation,
                                                           signer: Signer) -> None:
    a, b = SeriesMaker(signer, operator_host="pc-a"), SeriesMaker(signer, operator_host="pc-b", seed=2)
    put(org, a.make(0))
    put(org, a.make(1, change=setting("IA-01", "fail")))  # pc-a now fails IA-01 (was pass)
    put(org, b.make(0))
    rows = {r["item"]: r for r in queries.grid(org)}
    latest = Host.objects.filter(organisation=org).values_list("latest_id", flat=True)
    sets = Observation.objects.filter(pk__in=latest).values_list("finding_set_id", flat=True)
    items = FindingItem.objects.filter(finding__finding_sets__in=sets)
    # every host has its own finding set here, so the grid is a plain count of their items
    assert len(set(sets)) == 3
    for item, row in rows.items():
        mine = items.filter(item=item)
        assert row["counts"]["pass"] == mine.filter(status="pass").count()
        assert sum(row["counts"].values()) == mine.count()
    ia = rows["MLIT-9-5-1"]  # IA-* : the real scan fails some IA checks on both machines
    assert ia["hosts"] == 2 and ia["compliant"] == 0 and ia["share"] == 0
    assert rows["MLIT-9-5-3"]["compliant"] == 2  # PM-01..04 all pass on this machine
    assert [r["item"] for r in queries.grid(org)][:1] == ["MLIT-9-2-1"]  # the guideline's order
    overall = queries.overall(org)
    assert overall == {"hosts": 3, "judged": 3, "compliant": 0, "share": 0.0}


def test_unreachable_host_is_never_counted_compliant(org: Organisation, signer: Signer) -> None:
    def unreachable(doc: dict[str, Any]) -> None:
        doc["targets"] = [t for t in doc["targets"] if t["kind"] == "local"]
        doc["targets"][0].update(status="error", reason="unreachable", error="connection refused")
        doc["findings"] = []
    put(org, SeriesMaker(signer).make(0, change=unreachable))
    assert queries.overall(org) == {"hosts": 1, "judged": 0, "compliant": 0, "share": None}
    assert [h["latest__status"] for h in queries.unscanned_hosts(org)] == ["error"]


def test_trend_is_the_daily_share_per_item_and_updates_for_late_reports(org: Organisation,
                                                                        signer: Signer) -> None:
    maker = SeriesMaker(signer)
    pm_all_pass = maker.make(0)
    pm_fail = maker.make(1, change=setting("PM-01", "fail"))
    put(org, pm_all_pass)
    now = maker.day0 + dt.timedelta(days=3)
    by_item, overall = queries.trend(org, days=4, now=now)
    assert [p["share"] for p in by_item["MLIT-9-5-3"]] == [1.0, None, None, None]
    put(org, pm_fail)  # arrives later: its day is recomputed from the watermark
    by_item, overall = queries.trend(org, days=4, now=now)
    assert [p["share"] for p in by_item["MLIT-9-5-3"]] == [1.0, 0.0, None, None]
    assert overall[2]["share"] is None and overall[0]["share"] is not None
    assert DailyItemSummary.objects.filter(organisation=org).count() == 2 * len(by_item)


def test_trend_recomputes_only_days_touched_since_the_watermark(org: Organisation, signer: Signer) -> None:
    maker = SeriesMaker(signer)
    for day in range(3):
        put(org, maker.make(day))
    assert queries.refresh_daily(org) == 3  # first time: every day
    assert queries.refresh_daily(org) == 0  # nothing new
    put(org, maker.make(3))
    assert queries.refresh_daily(org) == 1  # only the new report's day
    put(org, maker.make(3, previous=None, change=setting("PM-01", "fail")))  # a late second run of day 3
    queries.refresh_daily(org)
    row = DailyItemSummary.objects.get(organisation=org, item="MLIT-9-5-3", day=dt.date(2026, 4, 4))
    assert (row.hosts, row.compliant) == (1, 0)  # one host; not compliant: one of its runs that day failed


def test_attention_lists_stale_hosts_and_broken_chains(member: Client, org: Organisation, signer: Signer) -> None:
    maker = SeriesMaker(signer)
    put(org, maker.make(0))
    maker.make(1)  # never delivered
    put(org, maker.make(2))  # names day 1: a gap
    body = get(member, url("overview"), "en")
    assert "office-pc-01" in body.split("Hosts that stopped reporting")[1].split("</table>")[0]  # 2026-04: stale
    broken = queries.broken_series(org)
    assert len(broken) == 1 and broken[0]["gaps"] == 1
    assert "gap" in get(member, url("host", host_id=Host.objects.get(kind="local").pk), "en")


# ---------------------------------------------------------------- host page, diff, check page


def test_diff_of_two_runs_sorts_checks_into_regressed_fixed_changed_new_gone(
        member: Client, org: Organisation, signer: Signer) -> None:
    maker = SeriesMaker(signer)

    def drop(check: str) -> Callable[[dict[str, Any]], None]:
        def change(doc: dict[str, Any]) -> None:
            doc["findings"] = [f for f in doc["findings"] if not (f["target"] == "local" and f["check"] == check)]
        return change

    def evidence(doc: dict[str, Any]) -> None:
        local(doc, "PM-02")["evidence"] = {"changed": "yes"}

    put(org, maker.make(0, change=drop("TX-05")))
    put(org, maker.make(1, change=both(setting("IA-01", "fail"), setting("AC-01", "pass"), evidence, drop("LG-04"))))
    pc = Host.objects.get(organisation=org, kind="local")
    old, new = Observation.objects.filter(host=pc).order_by("started")
    result = queries.diff(old, new)
    assert [r["check"] for r in result["regressed"]] == ["IA-01"]
    assert [r["check"] for r in result["fixed"]] == ["AC-01"]
    assert [r["check"] for r in result["changed"]] == ["PM-02"]
    assert result["changed"][0]["evidence"]
    assert [r["check"] for r in result["new"]] == ["TX-05"]
    assert [r["check"] for r in result["gone"]] == ["LG-04"]
    body = get(member, url("host", host_id=pc.pk) + f"?a={old.pk}&b={new.pk}", "en")
    for kind, check in (("regressed", "IA-01"), ("fixed", "AC-01"), ("changed", "PM-02"), ("new", "TX-05"),
                        ("gone", "LG-04")):
        table = body.split(f'<table class="diff-{kind}">')[1].split("</table>")[0]
        assert f">{check}<" in table


def test_hosts_sharing_findings_each_see_only_their_own_set(member: Client, org: Organisation,
                                                             signer: Signer) -> None:
    """Findings are stored once and listed by every set that has them: two hosts (and two days of one) share
    all but one or two findings, and every page still shows each host exactly its own latest findings."""
    a, b = SeriesMaker(signer, operator_host="pc-a"), SeriesMaker(signer, operator_host="pc-b", seed=2)
    put(org, a.make(0))
    put(org, b.make(0, change=setting("IA-01", "fail")))
    put(org, a.make(1, change=setting("AC-01", "pass")))
    pa, pb = (Host.objects.get(organisation=org, hostname=h) for h in ("pc-a", "pc-b"))
    assert pa.latest is not None and pb.latest is not None
    n = len(queries.findings_of(pa.latest))
    assert n == len(queries.findings_of(pb.latest)) > 10
    shared = Finding.objects.filter(organisation=org, finding_sets=pa.latest.finding_set_id) \
        .filter(finding_sets=pb.latest.finding_set_id)
    assert shared.count() == n - 2  # all but IA-01 and AC-01

    def rows(host: Host) -> dict[str, str]:
        body = get(member, url("host", host_id=host.pk), "en")
        latest = body.split('<table class="findings">')[1].split("</table>")[0]
        out = {}
        for row in latest.split('<tr class="finding">')[1:]:
            check = re.search(r'>([A-Z]+-[0-9]+)</a>', row)
            assert check is not None
            out[check.group(1)] = re.search(r'class="status-([a-z_-]+)"', row).group(1)  # type: ignore[union-attr]
        assert len(latest.split('<tr class="finding">')) - 1 == n
        return out

    mine_a, mine_b = rows(pa), rows(pb)
    assert (mine_a["IA-01"], mine_a["AC-01"]) == ("pass", "pass")
    assert (mine_b["IA-01"], mine_b["AC-01"]) == ("fail", "fail")
    assert [h.hostname for h in queries.host_list(org, check="IA-01", status="fail")] == ["pc-b"]
    assert [h.hostname for h in queries.host_list(org, check="AC-01", status="pass")] == ["pc-a"]
    assert [r["hostname"] for r in queries.check_failures(org, "AC-01")] == ["pc-b"]
    table = {r["check"]: r["counts"] for r in queries.check_table(org)}
    assert (table["IA-01"]["fail"], table["IA-01"]["pass"]) == (1, 1)
    old, new = Observation.objects.filter(host=pa).order_by("started")
    result = queries.diff(old, new)
    assert [r["check"] for r in result["fixed"]] == ["AC-01"]
    assert not any(result[k] for k in ("regressed", "changed", "new", "gone"))
    raw = b"".join(member.get(url("export_csv"), HTTP_ACCEPT_LANGUAGE="en").streaming_content)  # type: ignore[attr-defined]
    per_host = Counter(row[1] for row in list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))[1:])
    assert (per_host["pc-a"], per_host["pc-b"]) == (n, n)


def test_check_page_shows_who_fails_now_and_since_when(member: Client, org: Organisation, signer: Signer) -> None:
    maker = SeriesMaker(signer)
    put(org, maker.make(0))  # IA-01 passes
    put(org, maker.make(1, change=setting("IA-01", "fail")))
    put(org, maker.make(2, change=setting("IA-01", "fail")))
    rows = queries.check_failures(org, "IA-01")
    assert len(rows) == 1
    assert rows[0]["since"] == maker.day0 + dt.timedelta(days=1)
    assert rows[0]["last_ok"] == maker.day0
    # a check that has failed on every run fails since the host was first seen
    always = queries.check_failures(org, "AC-01")
    assert always[0]["since"] == maker.day0 and always[0]["last_ok"] is None
    body = get(member, url("check", check_id="IA-01"), "en")
    assert "2026-04-02 18:00" in body  # day 1, 09:00 UTC, shown in Tokyo time
    assert member.get(url("check", check_id="NO-SUCH")).status_code == 404


def test_waivers_are_grouped_by_tokyo_days_left(member: Client, org: Organisation, signer: Signer) -> None:
    today = queries.tokyo_day(dt.datetime.now(dt.UTC))

    def waiver(days: int) -> dict[str, Any]:
        return {"reason": f"reason {days}", "approver": "課長", "state": "valid", "source": "waivers.yaml:3",
                "expires": (today + dt.timedelta(days=days)).isoformat()}

    put(org, SeriesMaker(signer).make(0, change=both(setting("AC-01", "fail", waiver=waiver(-1)),
                                                     setting("AC-03", "fail", waiver=waiver(10)),
                                                     setting("AV-01", "fail", waiver=waiver(90)))))
    groups = queries.waivers(org)
    assert [[r["check"] for r in groups[k]] for k in ("expired", "expiring", "active")] == [
        ["AC-01"], ["AC-03"], ["AV-01"]]
    body = get(member, url("waivers"), "ja")
    expiring = body.split('<h2 class="waivers-expiring">')[1].split("</table>")[0]
    assert "期限間近" in expiring and "reason 10" in expiring and "reason 90" not in expiring


def test_manual_page_lists_open_questions_and_attestations(member: Client, org: Organisation,
                                                           signer: Signer) -> None:
    def answer(doc: dict[str, Any]) -> None:
        f = next(f for f in doc["findings"] if f["check"] == "OR-01")
        f.update(status="pass", attestation={"by": "山田 太郎", "at": "2026-03-01", "evidence": "任命書 2026-01",
                                             "valid_until": "2027-03-01", "source": "answers.yaml:2"})
    put(org, SeriesMaker(signer).make(0, change=answer))
    data = queries.attestations(org)
    assert [r["check"] for r in data["answered"]] == ["OR-01"]
    assert len(data["open"]) == 19  # 18 organisation questions + AV-05 (manual on the machine)
    body = get(member, url("manual"), "ja")
    assert "山田 太郎" in body and "任命書 2026-01" in body


# ---------------------------------------------------------------- hostile host text


def hostile(doc: dict[str, Any]) -> None:
    for t in doc["targets"]:
        if t["kind"] == "local":
            t["hostname"] = HOSTILE_NAME + TERMINAL
            t["os"] = HOSTILE_MESSAGE
    f = local(doc, "IA-01")
    f["status"] = "fail"
    f["message"] = {"ja": HOSTILE_MESSAGE + TERMINAL, "en": HOSTILE_MESSAGE + TERMINAL}
    f["title"] = {"ja": HOSTILE_NAME, "en": HOSTILE_NAME}
    f["evidence"] = {"ssid": HOSTILE_NAME + TERMINAL, "huge": HUGE, "</pre><script>x</script>": 1}
    f["waiver"] = {"reason": HOSTILE_MESSAGE, "approver": HOSTILE_NAME, "expires": "2026-04-30", "state": "valid",
                   "source": "w.yaml:1"}


def assert_inert(body: str) -> None:
    assert "<script" not in body
    assert "<svg onload" not in body
    assert "\x1b" not in body and "\x07" not in body


def test_hostile_host_text_is_inert_on_every_page(member: Client, org: Organisation, signer: Signer) -> None:
    maker = SeriesMaker(signer)
    put(org, maker.make(0))
    put(org, maker.make(1, change=hostile))
    pc = Host.objects.get(organisation=org, kind="local")
    old, new = Observation.objects.filter(host=pc).order_by("started")
    pages = [url(n) for n in PAGES] + [url("host", host_id=pc.pk), url("host", host_id=pc.pk) + f"?a={old.pk}&b={new.pk}",
                                       url("check", check_id="IA-01"), url("hosts") + "?item=MLIT-9-5-1&status=fail"]
    for page in pages:
        for lang in ("ja", "en"):
            body = get(member, page, lang)
            assert_inert(body)
    host = get(member, url("host", host_id=pc.pk), "en")
    assert "&lt;script&gt;alert(&quot;host&quot;)&lt;/script&gt;\\x1b[31mred" in host
    assert "&quot;&gt;&lt;svg onload=alert(1)&gt;" in host
    assert HUGE in host  # shown whole, inside a <pre>
    assert "&lt;/pre&gt;&lt;script&gt;" in host
    assert "\\x1b[31mred" in get(member, url("check", check_id="IA-01"), "en")


def test_svg_charts_escape_their_labels() -> None:
    label = HOSTILE_MESSAGE + HOSTILE_NAME + TERMINAL
    points: list[charts.Point] = [{"day": dt.date(2026, 1, 1), "share": 0.5}, {"day": dt.date(2026, 1, 2),
                                                                               "share": None}]
    for svg in (charts.sparkline(points, label), charts.line_chart(points, label), charts.share_bar(0.3, label)):
        assert "<script" not in svg and "<svg onload" not in svg and "\x1b" not in svg
        tree = ET.fromstring(svg)  # well-formed XML: the label could not open an element
        assert {el.tag.split("}")[1] for el in tree.iter()} <= {"svg", "title", "line", "polyline", "circle",
                                                                 "text", "rect"}
        title = tree.find("{http://www.w3.org/2000/svg}title")
        assert title is not None and title.text is not None and HOSTILE_NAME in title.text
        assert tree.get("aria-label") == title.text


# ---------------------------------------------------------------- isolation


def test_another_organisations_ids_are_404(member: Client, org: Organisation, other: Organisation,
                                           signer: Signer) -> None:
    maker = SeriesMaker(signer, operator_host="secret-pc-of-b")
    put(other, maker.make(0))
    put(other, maker.make(1))
    theirs = Host.objects.get(organisation=other, kind="local")
    obs = list(Observation.objects.filter(host=theirs).values_list("pk", flat=True))
    assert member.get(url("host", host_id=theirs.pk)).status_code == 404
    for name in (*PAGES, "export_csv", "export_ocsf"):
        assert member.get(url(name, slug="b")).status_code == 404
    assert member.get(url("check", slug="b", check_id="IA-01")).status_code == 404
    # a's own check page and host page never show b's data, even when b's observation ids are asked for
    put(org, SeriesMaker(signer, operator_host="own-pc").make(0))
    own = Host.objects.get(organisation=org, kind="local")
    body = get(member, url("host", host_id=own.pk) + f"?a={obs[0]}&b={obs[1]}", "en")
    assert "secret-pc-of-b" not in body
    for name in (*PAGES, "export_csv", "export_ocsf"):
        assert "secret-pc-of-b" not in get(member, url(name), "en")
    assert "secret-pc-of-b" not in get(member, url("check", check_id="IA-01"), "en")


def test_anonymous_user_is_sent_to_login(client: Client, org: Organisation) -> None:
    for name in (*PAGES, "export_csv"):
        response = client.get(url(name))
        assert response.status_code == 302 and "/login/" in response["Location"]


# ---------------------------------------------------------------- exports


def test_csv_export_is_formula_safe_and_has_every_latest_finding(member: Client, org: Organisation,
                                                                 signer: Signer) -> None:
    def injection(doc: dict[str, Any]) -> None:
        for t in doc["targets"]:
            if t["kind"] == "local":
                t["hostname"] = "=HYPERLINK(\"http://evil\",\"x\")"
        local(doc, "IA-01")["message"] = {"ja": "+1+cmd|' /C calc'!A0", "en": "@SUM(1)"}
        local(doc, "IA-02")["evidence"] = {"v": "\t-1"}

    a, b = SeriesMaker(signer, operator_host="pc-a"), SeriesMaker(signer, operator_host="pc-b", seed=2)
    put(org, a.make(0))
    put(org, a.make(1, change=injection))
    put(org, b.make(0))
    response = member.get(url("export_csv"), HTTP_ACCEPT_LANGUAGE="en")
    assert response["Content-Type"].startswith("text/csv")
    raw = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert raw.startswith(b"\xef\xbb\xbf") and raw.count(b"\xef\xbb\xbf") == 1
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    header, data = rows[0], rows[1:]
    assert header[:3] == ["Target", "Host name", "OS"] or len(header) == 23
    # pc-a (its latest: day 1), pc-b, and the organisation target (latest of whichever came last)
    assert len(data) == 36 + 36 + 19
    for row in data:
        for cell in row:
            assert not re.match(r"[=+\-@\t\r]", cell), cell
    cells = [c for row in data for c in row]
    assert "'=HYPERLINK(\"http://evil\",\"x\")" in cells
    assert "'@SUM(1)" in cells


def test_ocsf_export_is_one_compliance_finding_per_latest_finding(member: Client, org: Organisation,
                                                                  signer: Signer) -> None:
    put(org, SeriesMaker(signer).make(0, change=hostile))
    response = member.get(url("export_ocsf"), HTTP_ACCEPT_LANGUAGE="en")
    lines = b"".join(response.streaming_content).decode().splitlines()  # type: ignore[attr-defined]
    events = [json.loads(line) for line in lines]
    assert len(events) == 36 + 19
    assert {e["class_uid"] for e in events} == {2003}
    ia = next(e for e in events if e["metadata"]["event_code"] == "IA-01")
    assert ia["device"]["hostname"] == HOSTILE_NAME + TERMINAL  # JSON carries it escaped, as data
    assert ia["unmapped"]["signature"]["status"] == "verified"
    assert ia["unmapped"]["waiver"]["reason"] == HOSTILE_MESSAGE


def test_printable_report_lists_failing_findings_per_host(member: Client, org: Organisation,
                                                          signer: Signer) -> None:
    put(org, SeriesMaker(signer).make(0))
    body = get(member, url("print_report"), "en")
    block = body.split("Failures and errors by host")[1]
    assert "office-pc-01" in block and ">AC-01<" in block and ">IA-01<" not in block  # IA-01 passes here


def test_every_word_the_pages_use_exists_in_both_languages() -> None:
    from pathlib import Path

    from dashboard.texts import all_texts

    texts = all_texts()
    root = Path(__file__).resolve().parents[1] / "dashboard" / "templates" / "dashboard" / "pages"
    used: set[str] = set()
    prefixes: set[str] = set()
    for page in root.glob("*.html"):
        source = page.read_text("utf-8")
        used |= set(re.findall(r"""\{% t ["']([a-z_]+)["'] ?[^|%]*%}""", source))
        prefixes |= set(re.findall(r"""\{% t ["']([a-z_]+_)["']\|add:""", source))
    assert used and prefixes
    for key in used:
        assert texts[key]["ja"] and texts[key]["en"], key
    # keys made from a prefix and a value: every value the pages can pass
    values = {"pg_chain_": ("first", "linked", "gap", "fork"), "pg_sig_": ("verified", "unsigned"),
              "pg_diff_": queries.DIFF_KINDS, "pg_waivers_": ("expired", "expiring", "active")}
    assert prefixes == set(values)
    for prefix, names in values.items():
        for name in names:
            assert prefix + name in texts, prefix + name
    for status in (*queries.GRID_STATUSES, "absent"):
        assert f"pg_status_{status}" in texts
