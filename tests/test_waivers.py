"""Waivers (issue 12, item 7): accepted risks with reason, approver and expiry.

Real scans of the rootfs fixtures through the CLI for what a user sees (exit codes, the report, stderr);
the expiry boundaries with an injected clock (``now``) at 23:59/00:00 Asia/Tokyo and the same instants in
UTC; malformed files refused with file and line before any scan work.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from agent.config.waivers import Waiver, apply_waivers, days_left, load_waivers
from agent.errors import ConfigError
from reports.model import Report
from tests.conftest import FIXTURES, finding

Cli = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
WEAK = f"rootfs:{FIXTURES / 'rootfs' / 'weak'}"  # host name reception-pc: TX-04 and MN-01 fail, AV-04 is an error
HARDENED = f"rootfs:{FIXTURES / 'rootfs' / 'hardened'}"  # host name fileserver: TX-04 passes, MN-01 fails
ROOT = Path(__file__).resolve().parents[1]
JST = ZoneInfo("Asia/Tokyo")
UTC = dt.UTC


def waiver_file(tmp_path: Path, *entries: dict[str, str], name: str = "waivers.yaml") -> Path:
    """A waivers file with one block per entry; each entry starts on line 2 + 7 * its index (7 lines each)."""
    lines = ["waivers:"]
    for e in entries:
        full = {"check": "TX-04", "target": "*", "reason": "legacy scanner needs CBC", "approver": "yamada",
                "expires": "2099-12-31", **e}
        keys = ["check", "target", "reason", "approver", "expires", "id", "ticket"]
        block = [f"{k}: {json.dumps(full[k])}" if k in full else f"# no {k}" for k in keys]
        lines += ["  - " + block[0], *("    " + b for b in block[1:])]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def today_jst() -> dt.date:
    return dt.datetime.now(JST).date()


# -- end to end: the exit code, the report, the notes ------------------------------------------------------


def test_a_valid_waiver_turns_exit_1_into_0_and_keeps_fail(run_cli: Cli, tmp_path: Path) -> None:
    rc, doc, _, err = run_cli("scan", "--target", WEAK, "--check", "TX-04", "--quiet")
    assert rc == 1 and doc is not None and finding(doc, "TX-04")["waiver"] is None, err
    path = waiver_file(tmp_path, {"target": "reception-*", "id": "W-7", "ticket": "OPS-12"})
    rc, doc, _, err = run_cli("scan", "--target", WEAK, "--check", "TX-04", "--waivers", str(path), "--quiet",
                              "--lang", "en")
    assert rc == 0, err
    f = finding(doc, "TX-04")
    assert f["status"] == "fail"  # the facts still say fail; only the exit code reads the waiver
    assert f["waiver"] == {"reason": "legacy scanner needs CBC", "approver": "yamada", "expires": "2099-12-31",
                           "state": "valid", "source": f"{path}:2", "id": "W-7", "ticket": "OPS-12"}
    assert doc["summary"]["by_status"]["fail"] == 1
    assert "1 failure(s) accepted under a waiver in force" in err


def test_an_expired_waiver_counts_again(run_cli: Cli, tmp_path: Path) -> None:
    path = waiver_file(tmp_path, {"expires": "2000-01-01"})
    rc, doc, _, err = run_cli("scan", "--target", WEAK, "--check", "TX-04", "--waivers", str(path), "--quiet",
                              "--lang", "en")
    assert rc == 1, err
    assert finding(doc, "TX-04")["waiver"]["state"] == "expired"
    assert f"{path}:2: waiver TX-04 * expired on 2000-01-01 (Asia/Tokyo): the 1 failure(s) it covered count again" in err
    rc, _, _, err = run_cli("scan", "--target", WEAK, "--check", "TX-04", "--waivers", str(path), "--quiet",
                            "--lang", "ja")
    assert rc == 1 and "期限が切れました" in err


def test_an_expiring_waiver_is_in_force_and_warns(run_cli: Cli, tmp_path: Path) -> None:
    ends = today_jst() + dt.timedelta(days=5)
    path = waiver_file(tmp_path, {"expires": ends.isoformat()})
    rc, doc, _, err = run_cli("scan", "--target", WEAK, "--check", "TX-04", "--waivers", str(path), "--quiet",
                              "--lang", "en")
    assert rc == 0, err
    assert finding(doc, "TX-04")["waiver"]["state"] == "expiring"
    assert f"waiver TX-04 * ends on {ends.isoformat()} (Asia/Tokyo)" in err and "day(s) left" in err
    rc, _, _, err = run_cli("scan", "--target", WEAK, "--check", "TX-04", "--waivers", str(path), "--quiet",
                            "--lang", "ja")
    assert rc == 0 and f"{ends.isoformat()}（日本時間）まで" in err


def test_an_error_is_never_waived_and_keeps_exit_3(run_cli: Cli, tmp_path: Path) -> None:
    """AV-04 cannot be judged on the fixture (no dpkg database): a waiver must not hide that blind spot."""
    path = waiver_file(tmp_path, {}, {"check": "AV-04"})
    rc, doc, _, err = run_cli("scan", "--target", WEAK, "--check", "TX-04", "--check", "AV-04",
                              "--waivers", str(path), "--quiet", "--lang", "en")
    assert rc == 3, err  # the failure is accepted, the error is not: "could not tell" is never a 0
    assert finding(doc, "TX-04")["waiver"]["state"] == "valid"
    assert finding(doc, "AV-04")["status"] == "error" and finding(doc, "AV-04")["waiver"] is None
    assert f"{path}:9: waiver AV-04 * is not applied: it matches no failure, only findings that are error" in err


def test_a_waiver_that_matches_nothing_is_reported(run_cli: Cli, tmp_path: Path) -> None:
    path = waiver_file(tmp_path, {"target": "fileserver"}, {"check": "AC-02", "target": "reception-pc"})
    rc, doc, _, err = run_cli("scan", "--target", WEAK, "--check", "TX-04", "--check", "AC-02",
                              "--waivers", str(path), "--quiet", "--lang", "en")
    assert rc == 1, err
    assert finding(doc, "TX-04")["waiver"] is None
    assert f"{path}:2: waiver TX-04 fileserver matches no finding of this scan" in err
    # the status in the terminal's words ("n/a"), not the report's code
    assert f"{path}:9: waiver AC-02 reception-pc is not applied" in err and "only findings that are n/a" in err
    assert "accepted under a waiver" not in err


def test_patterns_match_the_target_id_or_the_host_name(run_cli: Cli, tmp_path: Path) -> None:
    """MN-01 fails on both fixtures: a waiver for one host must leave the other's failure counting."""
    by_host = waiver_file(tmp_path, {"check": "MN-01", "target": "FILESERVER"}, name="host.yaml")
    rc, doc, _, err = run_cli("scan", "--target", WEAK, "--target", HARDENED, "--check", "MN-01",
                              "--waivers", str(by_host), "--quiet")
    assert rc == 1, err
    assert finding(doc, "MN-01", HARDENED)["waiver"]["state"] == "valid"  # host names match in any case
    assert finding(doc, "MN-01", WEAK)["waiver"] is None
    both = waiver_file(tmp_path, {"check": "MN-01", "target": "fileserver"},
                       {"check": "MN-01", "target": "rootfs:*/weak"}, name="both.yaml")
    rc, doc, _, err = run_cli("scan", "--target", WEAK, "--target", HARDENED, "--check", "MN-01",
                              "--waivers", str(both), "--quiet")
    assert rc == 0, err
    assert finding(doc, "MN-01", WEAK)["waiver"]["source"] == f"{both}:9"
    id_case = waiver_file(tmp_path, {"check": "MN-01", "target": "ROOTFS:*"}, name="case.yaml")
    rc, doc, _, err = run_cli("scan", "--target", WEAK, "--check", "MN-01", "--waivers", str(id_case), "--quiet")
    assert rc == 1 and "matches no finding" in err  # a target id is matched exactly, case and all


def test_evaluate_applies_waivers_to_a_bundle(run_cli: Cli, tmp_path: Path) -> None:
    bundle = tmp_path / "pc.bundle.json"
    rc, _, _, err = run_cli("collect", "--target", WEAK, "--check", "TX-04", "--output", str(bundle))
    assert rc == 0, err
    out = tmp_path / "r.json"
    rc, doc, _, err = run_cli("evaluate", str(bundle), "--check", "TX-04", "--output", str(out), "--quiet")
    assert rc == 1, err
    path = waiver_file(tmp_path, {"target": "reception-pc"})
    rc, doc, _, err = run_cli("evaluate", str(bundle), "--check", "TX-04", "--waivers", str(path),
                              "--output", str(out), "--quiet")
    assert rc == 0, err
    assert doc is not None and finding(doc, "TX-04")["waiver"]["approver"] == "yamada"


def test_the_terminal_shows_a_waived_failure_as_waived(run_cli: Cli, tmp_path: Path) -> None:
    path = waiver_file(tmp_path, {"reason": "Legacy\x1b[2Jscanner", "approver": "yamada"})
    rc, _, out, err = run_cli("scan", "--target", WEAK, "--check", "TX-04", "--waivers", str(path), "--lang", "en")
    assert rc == 0, err
    assert "FAIL" in out and "waived" in out and "yamada" in out and "2099-12-31" in out
    assert "\x1b" not in out and "\x1b" not in err  # a reason is text from a file: no escape reaches the terminal


# -- malformed files: exit 2 with file and line, before any scan work ---------------------------------------

BAD: list[tuple[str, str, int, str]] = [
    ("missing reason", "waivers:\n  - check: TX-04\n    target: '*'\n    approver: y\n    expires: 2099-01-01\n",
     2, "the key 'reason' is missing"),
    ("blank reason", "waivers:\n  - check: TX-04\n    target: '*'\n    reason: '   '\n    approver: y\n"
     "    expires: 2099-01-01\n", 4, "waivers.0.reason: does not have the expected form"),
    ("missing approver", "waivers:\n  - check: TX-04\n    target: '*'\n    reason: r\n    expires: 2099-01-01\n",
     2, "the key 'approver' is missing"),
    ("missing expiry", "waivers:\n  - check: TX-04\n    target: '*'\n    reason: r\n    approver: y\n",
     2, "the key 'expires' is missing"),
    ("missing target", "waivers:\n  - check: TX-04\n    reason: r\n    approver: y\n    expires: 2099-01-01\n",
     2, "the key 'target' is missing"),
    ("not a date", "waivers:\n  - check: TX-04\n    target: '*'\n    reason: r\n    approver: y\n"
     "    expires: 2026-02-30\n", 6, "expires: not a calendar date"),
    ("a date-time", "waivers:\n  - check: TX-04\n    target: '*'\n    reason: r\n    approver: y\n"
     "    expires: 2026-03-31T23:59:00\n", 6, "waivers.0.expires: does not have the expected form"),
    ("garbage date", "waivers:\n  - check: TX-04\n    target: '*'\n    reason: r\n    approver: y\n"
     "    expires: next spring\n", 6, "waivers.0.expires: does not have the expected form"),
    ("a number for a date", "waivers:\n  - check: TX-04\n    target: '*'\n    reason: r\n    approver: y\n"
     "    expires: 20260331\n", 6, 'is not of type "string"'),
    ("unknown check", "waivers:\n  - check: TX-99\n    target: '*'\n    reason: r\n    approver: y\n"
     "    expires: 2099-01-01\n", 2, "there is no check TX-99"),
    ("not a check id", "waivers:\n  - check: all\n    target: '*'\n    reason: r\n    approver: y\n"
     "    expires: 2099-01-01\n", 2, "waivers.0.check: does not have the expected form"),
    ("unknown key", "waivers:\n  - check: TX-04\n    target: '*'\n    reasn: r\n    reason: r\n    approver: y\n"
     "    expires: 2099-01-01\n", 4, "unknown key 'waivers.0.reasn'"),
    ("duplicate key", "waivers:\n  - check: TX-04\n    target: '*'\n    reason: r\n    approver: y\n"
     "    expires: 2020-01-01\n    expires: 2099-01-01\n", 7, "duplicate key (first at line 6)"),
    ("alias", "waivers:\n  - check: TX-04\n    target: '*'\n    reason: &r text\n    approver: *r\n"
     "    expires: 2099-01-01\n", 5, "alias *r"),
    ("not a mapping", "- check: TX-04\n", 1, "a waivers file is a mapping with a 'waivers' list"),
    ("no list", "waiver: []\n", 1, "the key 'waivers' is missing"),
]


@pytest.mark.parametrize(("text", "line", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_waivers_file_is_exit_2_with_file_and_line(run_cli: Cli, tmp_path: Path, text: str, line: int,
                                                         words: str) -> None:
    path = tmp_path / "waivers.yaml"
    path.write_text(text)
    out = tmp_path / "r.json"
    # An SSH target on a closed port: had the scan started, it would be an exit 3 after a connection attempt.
    rc, doc, _, err = run_cli("scan", "--target", "ssh://audit@127.0.0.1:1", "--waivers", str(path),
                              "--output", str(out), "--quiet", "--lang", "en")
    assert rc == 2 and doc is None and not out.exists(), err
    assert f"{path}:{line}:" in err and words in err, err


def test_evaluate_refuses_a_bad_waivers_file_and_a_missing_one(run_cli: Cli, tmp_path: Path) -> None:
    bundle = tmp_path / "pc.bundle.json"
    assert run_cli("collect", "--target", WEAK, "--check", "TX-04", "--output", str(bundle))[0] == 0
    path = tmp_path / "waivers.yaml"
    path.write_text("waivers:\n  - check: TX-04\n    target: '*'\n    reason: ''\n    approver: y\n"
                    "    expires: 2099-01-01\n")
    rc, _, _, err = run_cli("evaluate", str(bundle), "--waivers", str(path), "--quiet")
    assert rc == 2 and f"{path}:4: waivers.0.reason" in err
    rc, _, _, err = run_cli("evaluate", str(bundle), "--waivers", str(tmp_path / "none.yaml"), "--quiet")
    assert rc == 2 and "none.yaml: no such file" in err


def test_an_empty_list_is_no_waivers(tmp_path: Path) -> None:
    path = tmp_path / "w.yaml"
    path.write_text("waivers: []\n")
    assert load_waivers(path) == []


# -- the clock: Tokyo days, at the boundaries ---------------------------------------------------------------


def jst(y: int, mo: int, d: int, h: int, mi: int, s: int) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=JST)


def utc(y: int, mo: int, d: int, h: int, mi: int, s: int) -> dt.datetime:
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=UTC)


MARCH_31 = Waiver(check="TX-04", target="*", reason="r", approver="a", expires=dt.date(2026, 3, 31), source="w:2")


@pytest.mark.parametrize(("now", "state"), [
    (jst(2026, 3, 31, 23, 59, 59), "expiring"),  # the expiry date itself is still in force
    (jst(2026, 4, 1, 0, 0, 0), "expired"),  # from midnight in Tokyo
    (utc(2026, 3, 31, 14, 59, 59), "expiring"),  # the same two instants, in UTC
    (utc(2026, 3, 31, 15, 0, 0), "expired"),
    (utc(2026, 3, 31, 23, 59, 0), "expired"),  # still March 31 in UTC, but April 1 in Tokyo
    (utc(2026, 3, 30, 15, 0, 0), "expiring"),  # March 31 00:00 JST, while UTC is still March 30
    (jst(2026, 3, 17, 0, 0, 0), "expiring"),  # 14 days before: the warning starts
    (jst(2026, 3, 16, 23, 59, 59), "valid"),
    (utc(2026, 3, 16, 15, 0, 0), "expiring"),
    (utc(2026, 3, 16, 14, 59, 59), "valid"),
    (dt.datetime(2026, 3, 31, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=-10))), "expired"),  # Honolulu
])
def test_expiry_is_counted_in_tokyo_days(now: dt.datetime, state: str) -> None:
    assert MARCH_31.state(now) == state


def test_days_left_needs_an_aware_time() -> None:
    assert days_left(dt.date(2026, 3, 31), jst(2026, 3, 31, 12, 0, 0)) == 0
    with pytest.raises(ValueError, match="aware"):
        days_left(dt.date(2026, 3, 31), dt.datetime(2026, 3, 31, 12, 0))


@pytest.fixture(scope="module")
def weak_report() -> Report:
    """A real scan of the weak fixture, made once: TX-04 and MN-01 fail there, AV-04 is an error."""
    from agent.config.policy import load_policy
    from agent.registry import checks, collectors
    from agent.runner import build_report, collect_target, needed_collectors, new_run_id, now_iso

    chosen = [checks()[c] for c in ("TX-04", "MN-01", "AV-04")]
    wanted = needed_collectors(chosen, collectors(n for c in chosen for n in c.needs))
    tf = collect_target(WEAK, wanted)
    return build_report(run_id=new_run_id(), started=now_iso(), target_facts=[tf], checks=chosen,
                        policy=load_policy())


def fresh(report: Report) -> Report:
    return Report.from_dict(report.to_dict())


@pytest.mark.parametrize(("now", "code"), [
    (utc(2026, 3, 31, 14, 59, 59), 3),  # both failures waived: the AV-04 error remains
    (utc(2026, 3, 31, 15, 0, 0), 1),  # a day later in Tokyo: they count again
])
def test_the_exit_code_follows_the_clock(weak_report: Report, now: dt.datetime, code: int) -> None:
    report = fresh(weak_report)
    waivers = [MARCH_31, Waiver(check="MN-01", target="reception-pc", reason="r", approver="a",
                                expires=dt.date(2026, 3, 31), source="w:9")]
    notes = apply_waivers(report, waivers, now=now)
    assert report.exit_code() == code
    assert [f.waiver["state"] for f in report.findings if f.waiver] == ["expiring", "expiring"] if code == 3 \
        else ["expired", "expired"]
    assert {n.key for n in notes} == ({"waiver_expiring", "waivers_accepted"} if code == 3 else {"waiver_expired"})


def test_the_default_clock_is_the_report_finish_time(weak_report: Report) -> None:
    report = fresh(weak_report)
    report.run.finished = "2026-03-31T14:59:59.000Z"
    apply_waivers(report, [MARCH_31])
    assert tx04(report)["state"] == "expiring"
    report.run.finished = "2026-03-31T15:00:00.000Z"
    apply_waivers(report, [MARCH_31])
    assert tx04(report)["state"] == "expired"


def tx04(report: Report) -> dict[str, Any]:
    waiver = next(f for f in report.findings if f.check == "TX-04").waiver
    assert waiver is not None
    return waiver


def test_the_longest_waiver_applies_and_the_other_is_named(weak_report: Report) -> None:
    """A renewed waiver added below the expired one is the one that counts; the old one is called stale."""
    report = fresh(weak_report)
    renewed = Waiver(check="TX-04", target="reception-pc", reason="renewed", approver="b",
                     expires=dt.date(2027, 3, 31), source="w:9")
    notes = apply_waivers(report, [MARCH_31, renewed], now=jst(2026, 6, 1, 9, 0, 0))
    tx = next(f for f in report.findings if f.check == "TX-04")
    assert tx.waiver is not None and tx.waiver["reason"] == "renewed" and tx.waiver["state"] == "valid"
    assert [n.key for n in notes] == ["waiver_superseded", "waivers_accepted"]
    assert "w:2: waiver TX-04 * is not used: another waiver covers the same failures for longer" in notes[0].render("en")


# -- the zone data is there even where the system has none --------------------------------------------------


def test_asia_tokyo_loads_without_a_system_zone_database() -> None:
    """Windows and slim containers have no /usr/share/zoneinfo: the tzdata package (a dependency) serves."""
    code = ("import datetime as dt; from agent.config.waivers import Waiver;"
            "w = Waiver(check='TX-04', target='*', reason='r', approver='a', expires=dt.date(2026, 3, 31), source='s');"
            "print(w.state(dt.datetime(2026, 3, 31, 15, 0, tzinfo=dt.UTC)))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONTZPATH": "", "PYTHONPATH": str(ROOT)}, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "expired", proc.stderr[-800:]


def test_a_waiver_needs_a_real_check(tmp_path: Path) -> None:
    path = waiver_file(tmp_path, {"check": "ZZ-01"})
    with pytest.raises(ConfigError, match=r"waivers.yaml:2: there is no check ZZ-01"):
        load_waivers(path)
    assert load_waivers(path, known_checks=["ZZ-01"])[0].check == "ZZ-01"
