"""macOS IA-02, IA-03, PM-02, LG-02 and TX-01 on replays of recorded Mac outputs (no Mac here).

The lowest boundary is faked and nothing above it: ``tests/macos_replay.py`` answers ``target.run(argv)`` and
``target.read_file(path)`` from ``tests/fixtures/macos/m2-*/`` (sources in ``SOURCES-m2.md``). Collectors,
facts, judges, dispatch and both languages' texts are the production code; the registered checks are those
pyproject.toml names (read from the file, since the installed metadata may be older than this tree).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from agent.config.policy import Policy, load_policy
from checks import macos_more
from checks.base import Check, FactSet, Outcome, Status
from collectors.base import Collector
from collectors.macos import admins, audit, pwpolicy, wifi
from collectors.problems import Problem
from tests.macos_replay import ReplayTarget
from tests.test_messages_i18n import english_runs

COLLECTORS: list[Collector] = [pwpolicy.COLLECTOR, admins.COLLECTOR, audit.COLLECTOR, wifi.COLLECTOR]
CHECKS = {"IA-02": macos_more.IA_02, "IA-03": macos_more.IA_03, "PM-02": macos_more.PM_02,
          "LG-02": macos_more.LG_02, "TX-01": macos_more.TX_01}
#: The scan's clock: trail ages are counted from it, so the verdicts do not drift with the calendar.
NOW = dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC).timestamp()
OUTPUTS = Path(__file__).parent / "fixtures" / "macos" / "outputs"


@pytest.fixture(autouse=True)
def _clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit.time, "time", lambda: NOW)


def collect(case: str) -> dict[str, Any]:
    mac = ReplayTarget(case)
    return {c.id: c.collect(mac) for c in COLLECTORS}


def judge(case: str, check_id: str, policy: Policy | None = None, facts: dict[str, Any] | None = None) -> Outcome:
    return CHECKS[check_id].evaluate(FactSet(facts or collect(case), {}), policy or load_policy())


EXPECTED = {  # case -> check -> (status, a piece of the English message)
    "m2-sonoma": {"IA-02": (Status.FAIL, "minimum length 4 < 8"), "IA-03": (Status.PASS, "after 10 failures, for 900 s"),
                  "PM-02": (Status.MANUAL, "tanaka"), "LG-02": (Status.MANUAL, "audit_control is absent"),
                  "TX-01": (Status.MANUAL, "jimusho-wifi (en0, wpa2_personal)")},
    "m2-sequoia": {"IA-02": (Status.FAIL, "accepts an empty password"), "IA-03": (Status.FAIL, "never locked"),
                   "PM-02": (Status.FAIL, "staff (ABCDEFAB-CDEF-ABCD-EFAB-CDEF00000014)"),
                   "LG-02": (Status.FAIL, "keeps only 60 days (365 required)"),
                   "TX-01": (Status.PASS, "<redacted> (en0, wpa3_transition)")},
    "m2-catalina": {"IA-02": (Status.FAIL, "minimum length 6 < 8"), "IA-03": (Status.FAIL, "never locked"),
                    "PM-02": (Status.MANUAL, "tanaka"), "LG-02": (Status.FAIL, "expire-after: 10M"),
                    "TX-01": (Status.FAIL, "FreeWiFi (en0, none): open (no encryption)")},
    "m2-ventura": {"IA-02": (Status.PASS, "at least 15 characters and 2 character classes"),
                   "IA-03": (Status.FAIL, "never locked"), "PM-02": (Status.MANUAL, "tanaka"),
                   "LG-02": (Status.PASS, "365 days"), "TX-01": (Status.NOT_APPLICABLE, "not connected")},
    "m2-garbage": {"IA-02": (Status.ERROR, "not a property list"), "IA-03": (Status.ERROR, "not a property list"),
                   "PM-02": (Status.ERROR, "eDSRecordNotFound"), "LG-02": (Status.ERROR, "sixty days"),
                   "TX-01": (Status.ERROR, "not JSON")},
}


@pytest.mark.parametrize(("case", "check_id"), [(c, k) for c, checks in EXPECTED.items() for k in checks])
def test_each_recorded_mac(case: str, check_id: str) -> None:
    out = judge(case, check_id)
    status, words = EXPECTED[case][check_id]
    assert (out.status, words in out.message.en) == (status, True), out.message.en
    # Both languages, nothing left unfilled, no English sentence inside the Japanese text.
    assert "{" not in out.message.ja + out.message.en
    assert not english_runs(out.message.ja), out.message.ja


def test_what_the_judges_ran_on_is_kept_with_the_mscp_rules() -> None:
    ia02 = judge("m2-sonoma", "IA-02")
    assert "pwpolicy_minimum_length_enforce" in ia02.evidence["mscp"]
    assert ia02.evidence["rules"][0]["identifier"] == "com.apple.defaultpasswordpolicy.fde"
    ia03 = judge("m2-sonoma", "IA-03")
    assert ia03.evidence["threshold"] == 10 and ia03.evidence["lockout_seconds"] == 900
    lg02 = judge("m2-sequoia", "LG-02")
    assert "audit_retention_configure" in lg02.evidence["mscp"]
    assert lg02.evidence["expire_after"]["parsed"] == {"days": 60, "size": "5G", "join": "OR"}


# -- IA-02 / IA-03: pwpolicy -------------------------------------------------------------------------------------


def test_pwpolicy_banner_is_skipped_and_localized_descriptions_are_dropped() -> None:
    policies = pwpolicy.parse_policies((OUTPUTS / "pwpolicy" / "catalina-profile-minlength6.txt").read_bytes())
    assert [p["content"] for p in policies] == ["policyAttributePassword matches '.{6,}+'",
                                                "policyAttributePassword matches '.{4,}+'"]
    facts = json.dumps(collect("m2-catalina")["mac_pwpolicy"], ensure_ascii=False)
    assert "policyContentDescription" not in facts and "символов" not in facts and "个字符" not in facts


@pytest.mark.parametrize(("content", "rule"), [
    ("policyAttributePassword matches '.{8,}+'", {"understood": True, "min_length": 8, "classes": []}),
    ("policyAttributePassword matches '^.{12,}$'", {"understood": True, "min_length": 12, "classes": []}),
    ("policyAttributePassword matches '^$|.{4,}+'", {"understood": True, "min_length": 0, "classes": []}),
    ("policyAttributePassword matches '(.*[^a-zA-Z0-9].*){2,}+'",
     {"understood": True, "min_length": 2, "classes": ["special"]}),
    ("policyAttributePassword matches '(.*[0-9].*){1,}+|.{20,}'",  # either: only the shorter is demanded
     {"understood": True, "min_length": 1, "classes": []}),
    ("policyAttributePassword matches '^(?=.*[0-9]).{12,}$'", {"understood": False}),
    ("policyAttributeCurrentTime > policyAttributeLastPasswordChangeTime", {"understood": False}),
])
def test_password_rules(content: str, rule: dict[str, Any]) -> None:
    assert macos_more.password_rule(content) == rule


def test_a_rule_not_understood_is_never_a_fail_or_a_pass_by_guess() -> None:
    facts = collect("m2-sonoma")
    facts["mac_pwpolicy"]["policies"]["value"].append(
        {"category": "policyCategoryPasswordContent", "identifier": "custom",
         "content": "policyAttributePassword matches '^(?=.*[0-9]).{12,}$'", "parameters": {}})
    out = judge("m2-sonoma", "IA-02", facts=facts)
    assert out.status is Status.ERROR and "custom" in out.message.en


def test_lockout_with_a_short_automatic_unlock_fails() -> None:
    facts = collect("m2-sonoma")
    for p in facts["mac_pwpolicy"]["policies"]["value"]:
        if "autoEnableInSeconds" in p["parameters"]:
            p["parameters"]["autoEnableInSeconds"] = 60
    out = judge("m2-sonoma", "IA-03", facts=facts)
    assert out.status is Status.FAIL and "lockout lasts 60 s < 300 s" in out.message.en


def test_a_lockout_rule_not_understood_is_an_error() -> None:
    facts = collect("m2-ventura")
    facts["mac_pwpolicy"]["policies"]["value"].append(
        {"category": "policyCategoryAuthentication", "identifier": "odd",
         "content": "policyAttributeMaximumFailedAuthentications < policyAttributeFailedAuthentications",
         "parameters": {"policyAttributeMaximumFailedAuthentications": 5}})
    assert judge("m2-ventura", "IA-03", facts=facts).status is Status.ERROR


def test_pwpolicy_without_a_plist_or_absent_is_an_error() -> None:
    with pytest.raises(Problem):
        pwpolicy.parse_policies(b"Getting global account policies\n")
    facts = collect("m2-sonoma")
    facts["mac_pwpolicy"] = pwpolicy.COLLECTOR.collect(ReplayTarget("sonoma"))  # m1's case records no pwpolicy
    assert facts["mac_pwpolicy"]["policies"]["status"] == "missing"
    assert judge("m2-sonoma", "IA-02", facts=facts).status is Status.ERROR
    assert judge("m2-sonoma", "IA-03", facts=facts).status is Status.ERROR


def test_policy_thresholds_decide() -> None:
    pol = load_policy(overrides={"password": {"min_length": 6, "min_classes": 0}})
    assert judge("m2-catalina", "IA-02", pol).status is Status.PASS
    pol = load_policy(overrides={"password": {"min_length": 15, "min_classes": 3}})
    out = judge("m2-ventura", "IA-02", pol)
    assert out.status is Status.FAIL and "2 character classes enforced, the policy wants 3" in out.message.en


# -- PM-02: the admin group ----------------------------------------------------------------------------------------


def test_admin_group_members_against_the_approved_list() -> None:
    pol = load_policy(overrides={"accounts": {"approved_admins": ["tanaka"]}})
    out = judge("m2-sonoma", "PM-02", pol)
    assert out.status is Status.PASS and out.evidence["administrators"] == ["tanaka"]
    assert out.evidence["members"] == ["root", "tanaka"]  # root is kept in the evidence, judged by PM-01
    pol = load_policy(overrides={"accounts": {"approved_admins": ["sato"]}})
    assert judge("m2-sonoma", "PM-02", pol).status is Status.FAIL


def test_a_nested_directory_group_cannot_be_resolved_here() -> None:
    facts = collect("m2-sonoma")
    facts["mac_admins"]["group"]["value"]["nested"] = ["7C1E2D3F-0000-4000-8000-000000000001"]
    out = judge("m2-sonoma", "PM-02", load_policy(overrides={"accounts": {"approved_admins": ["tanaka"]}}),
                facts=facts)
    assert out.status is Status.ERROR and "7C1E2D3F" in out.message.en


def test_dscl_answer_of_another_shape_is_refused() -> None:
    with pytest.raises(Problem):
        admins.parse_group(b'<?xml version="1.0"?><plist version="1.0"><array/></plist>')
    with pytest.raises(Problem):  # GroupMembership must be a list of names
        admins.parse_group(b'<?xml version="1.0"?><plist version="1.0"><dict><key>dsAttrTypeStandard:GroupMembership'
                           b'</key><string>tanaka</string></dict></plist>')


# -- LG-02: the audit trail ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "parsed"), [
    ("10M", {"days": None, "size": "10M", "join": None}),
    ("60d OR 5G", {"days": 60, "size": "5G", "join": "OR"}),
    ("1y AND 2G", {"days": 365, "size": "2G", "join": "AND"}),
    ("60D", {"days": 60, "size": None, "join": None}),
    ("sixty days", None), ("60d OR", None), ("60d XOR 5G", None), ("60d OR 30d", None), ("10m", None),
])
def test_expire_after(value: str, parsed: dict[str, Any] | None) -> None:
    assert macos_more.expire_after(value) == parsed


def test_trail_file_names() -> None:
    names = ["current", "20261008090000.not_terminated", "20261001090000.20261008090000", "notes.txt"]
    assert audit.oldest_trail(names) == {"files": 2, "oldest_start": "2026-10-01T09:00:00Z"}
    assert audit.oldest_trail(["current"]) == {"files": 0, "oldest_start": None}


def test_a_trail_trimmed_by_size_passes_only_when_it_reaches_back_far_enough() -> None:
    facts = collect("m2-catalina")
    assert judge("m2-catalina", "LG-02", facts=facts).evidence["oldest_trail"]["age_days"] == 15.0
    facts["mac_audit"]["trail"]["value"]["oldest_start"] = "2024-04-02T10:15:00Z"
    out = judge("m2-catalina", "LG-02", facts=facts)
    assert out.status is Status.PASS and "oldest file starts 976.9 days ago" in out.message.en
    facts["mac_audit"]["trail"] = {"source": "/var/audit", "status": "error", "problem": {"code": "unreadable",
                                                                                         "error": "permission denied"}}
    assert judge("m2-catalina", "LG-02", facts=facts).status is Status.ERROR


def test_audit_that_does_not_record_logins_fails_and_one_not_running_is_manual() -> None:
    facts = collect("m2-ventura")
    facts["mac_audit"]["control"]["value"]["flags"] = "ad,fm,+lo"
    out = judge("m2-ventura", "LG-02", facts=facts)
    assert out.status is Status.FAIL and "lacks lo, aa" in out.message.en
    facts = collect("m2-ventura")
    facts["mac_audit"]["auditing"]["value"] = "not_auditing"
    assert judge("m2-ventura", "LG-02", facts=facts).status is Status.MANUAL


def test_audit_control_lines() -> None:
    text = (OUTPUTS / "audit" / "audit_control.year").read_bytes()
    assert audit.parse_control(text) == {"dir": "/var/audit", "flags": "lo,aa,ad", "minfree": "5",
                                         "naflags": "lo,aa", "filesz": "2M", "expire-after": "365d"}


# -- TX-01: the connected network ---------------------------------------------------------------------------------------


def test_airport_keeps_the_link_not_the_neighbours() -> None:
    [en0] = wifi.parse_airport((OUTPUTS / "system_profiler" / "sonoma-wpa2.json").read_bytes())  # awdl0 skipped
    assert en0 == {"interface": "en0", "status": "spairport_status_connected", "neighbours": 1,
                   "current": {"ssid": "jimusho-wifi", "security": "spairport_security_mode_wpa2_personal",
                               "phymode": "802.11ac", "channel": "149 (5GHz, 80MHz)"}}
    assert "CafeNet" not in json.dumps(collect("m2-sonoma")["mac_wifi"])


def test_an_unknown_security_mode_is_an_error_and_no_interface_is_not_applicable() -> None:
    facts = collect("m2-sonoma")
    facts["mac_wifi"]["airport"]["value"] = wifi.parse_airport(
        (OUTPUTS / "system_profiler" / "unknown-mode.json").read_bytes())
    assert judge("m2-sonoma", "TX-01", facts=facts).status is Status.ERROR
    facts["mac_wifi"]["airport"]["value"] = wifi.parse_airport(b'{"SPAirPortDataType": [{}]}')
    assert judge("m2-sonoma", "TX-01", facts=facts).status is Status.NOT_APPLICABLE


# -- dispatch and registration -----------------------------------------------------------------------------------------


def test_other_platforms_keep_their_judges() -> None:
    """A Linux or Windows target never runs a mac_* collector, so the judge of its platform runs."""
    out = macos_more.IA_02.evaluate(FactSet({}, {"win_accounts": "boom"}), load_policy())
    assert out.status is Status.ERROR and "win_accounts" in out.message.en


def test_pyproject_registers_these_checks_and_collectors() -> None:
    data = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text("utf-8"))
    eps = data["project"]["entry-points"]
    for cid, chk in CHECKS.items():
        mod, _, name = eps["mamoru.checks"][cid].partition(":")
        obj = getattr(importlib.import_module(mod), name)
        assert isinstance(obj, Check) and obj is chk and "darwin" in obj.meta.platforms
        assert obj.meta.messages.get("remediation_darwin") is not None
    for c in COLLECTORS:
        mod, _, name = eps["mamoru.collectors"][c.id].partition(":")
        assert getattr(importlib.import_module(mod), name) is c and c.platforms == frozenset({"darwin"})


# -- texts --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [pwpolicy, admins, audit, wifi])
def test_every_code_a_mac_collector_records_has_its_words(module: Any) -> None:
    """A code without a text in _facts.yaml (``mac.<code>``) would make the judge say ``unknown message``."""
    import re

    from checks import base

    source = Path(module.__file__).read_text(encoding="utf-8")
    codes = set(re.findall(r'Problem\(\s*"([a-z_0-9]+)"', source)) | {"unreadable", "tool_failed", "tool_exit",
                                                                       "not_found", "too_long", "plist_garbage",
                                                                       "json_garbage"}
    assert not sorted(c for c in codes if f"mac.{c}" not in base.fact_texts())


def test_every_macos_phrase_has_both_languages() -> None:
    """Each phrase key the macOS judges use is in the check's messages or the shared texts, and the Japanese of
    every ``mac_*`` message and ``remediation_darwin`` holds no English sentence."""
    import re

    from checks import base

    source = Path(macos_more.__file__ or "").read_text(encoding="utf-8")
    keys = set(re.findall(r'(?:phrase|message=)\(?"([a-z_.]+)"', source)) | {
        f"win_{k}" for k in macos_more.SECURITY.values() if k.startswith("weak_")}
    for chk in CHECKS.values():
        own = {k for k, v in chk.meta.messages.items() if k.startswith("mac_") or k == "remediation_darwin"}
        assert own, chk.id
        for k in own:
            assert not english_runs(chk.meta.messages[k].ja), (chk.id, k)
    missing = [k for k in keys if base.default_lookup(k) is None
               and not any(k in c.meta.messages for c in CHECKS.values())]
    assert not missing, missing


# -- through the runner --------------------------------------------------------------------------------------------------


def test_the_runner_judges_a_mac_and_a_bundle_judged_later_says_the_same() -> None:
    """Collected as the runner does (each collector under its timeout, facts made JSON), judged by
    ``evaluate_target`` with the Mac's remediation; the same facts through JSON (a bundle) give the same findings."""
    from agent.runner import FactRecord, TargetFacts, evaluate_target, run_collector

    mac = ReplayTarget("m2-sequoia")
    pol = load_policy()
    records = {c.id: run_collector(c, mac, pol) for c in COLLECTORS}
    tf = TargetFacts(id=mac.id, kind=mac.kind, system="darwin", facts=records)
    findings = {f.check: f for f in evaluate_target(tf, list(CHECKS.values()), pol)}
    assert {k: f.status for k, f in findings.items()} == {
        "IA-02": "fail", "IA-03": "fail", "PM-02": "fail", "LG-02": "fail", "TX-01": "pass"}
    assert "pwpolicy" in findings["IA-02"].remediation["en"]
    assert findings["LG-02"].remediation == CHECKS["LG-02"].meta.messages["remediation_darwin"].as_dict()
    again = TargetFacts(id=mac.id, kind=mac.kind, system="darwin", facts={
        k: FactRecord(**{**r.__dict__, "data": json.loads(json.dumps(r.data))}) for k, r in records.items()})
    assert [(f.check, f.status, f.message) for f in evaluate_target(again, list(CHECKS.values()), pol)] == \
        [(f.check, f.status, f.message) for f in findings.values()]


def test_a_collector_that_failed_on_a_mac_is_an_error_not_the_linux_judge() -> None:
    from agent.runner import FactRecord, TargetFacts, evaluate_target

    tf = TargetFacts(id="mac", kind="replay", system="darwin", facts={
        "mac_pwpolicy": FactRecord(collector="mac_pwpolicy", version="1", collected_at="2026-12-05T09:00:00Z",
                                   duration_ms=1.0, data=None, error="collector timed out after 60 s")})
    [f] = evaluate_target(tf, [CHECKS["IA-02"]], load_policy())
    assert f.status == "error" and "mac_pwpolicy" in f.message["en"]
