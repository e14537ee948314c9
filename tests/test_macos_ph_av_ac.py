"""macOS PH-01, PH-02, AV-01, AV-03, AV-04 and AC-01 on replays of recorded Mac outputs (no Mac here).

The lowest boundary is faked and nothing above it: ``tests/macos_replay.py`` answers ``target.run(argv)``
and ``target.read_file(path)`` from ``tests/fixtures/macos/<case>/`` (sources in that folder's README; the
two screensaver profiles are the real files of the shared corpus, read at test time). Collectors, facts,
judges and texts are the production code.
"""

from __future__ import annotations

import json
import re
import types
from typing import Any

import pytest

from agent.config.policy import load_policy
from agent.runner import TargetFacts, announce_reads, evaluate_target, run_collector
from agent.targets.base import CommandResult, CommandUnavailable, FileMissing
from checks import base, macos
from collectors.macos import updates as updates_module
from collectors.macos import xprotect as xprotect_module
from collectors.macos.base import managed_preferences, read_plist, run_tool
from collectors.macos.filevault import COLLECTOR as FILEVAULT
from collectors.macos.firewall import COLLECTOR as FIREWALL
from collectors.macos.screenlock import COLLECTOR as SCREENLOCK
from collectors.macos.updates import COLLECTOR as UPDATES
from collectors.macos.xprotect import COLLECTOR as XPROTECT
from collectors.problems import Problem
from reports.model import Finding
from tests.macos_replay import ReplayTarget
from tests.test_messages_i18n import english_runs

# -- the plumbing: the replay target and the shared readers ----------------------------------------------------


def _fdesetup(res: CommandResult) -> str:
    line = res.stdout.decode().splitlines()[0]
    if not line.startswith("FileVault is "):
        raise Problem("unknown_answer", tool="fdesetup", output=line)
    return line


def test_replay_answers_what_was_recorded_and_nothing_else() -> None:
    mac = ReplayTarget("sonoma")
    assert mac.platform().system == "darwin"
    assert mac.run(["/usr/bin/fdesetup", "status"]).stdout == b"FileVault is On.\n"
    with pytest.raises(CommandUnavailable):
        mac.run(["/usr/bin/fdesetup", "status", "-extended"])  # not recorded: as if the tool did not know it
    with pytest.raises(FileMissing):
        mac.read_file("/etc/passwd")


def test_run_tool_statuses() -> None:
    mac = ReplayTarget("sonoma")
    assert run_tool(mac, ["/usr/bin/fdesetup", "status"], _fdesetup) == {
        "source": "/usr/bin/fdesetup status", "status": "ok", "exit": 0, "value": "FileVault is On."}
    missing = run_tool(mac, ["/usr/bin/xprotect", "version"], _fdesetup)
    assert missing == {"source": "/usr/bin/xprotect version", "status": "missing",
                       "problem": {"code": "not_found", "tool": "/usr/bin/xprotect"}}


def test_managed_preferences_from_the_real_profile() -> None:
    mac = ReplayTarget("sequoia")
    [computer] = managed_preferences(mac, "com.apple.screensaver", ("askForPassword", "askForPasswordDelay",
                                                                     "idleTime", "loginWindowIdleTime"))
    assert computer["status"] == "ok"  # only the keys asked for are kept (loginWindowModulePath is not)
    assert computer["value"] == {"askForPassword": 0, "askForPasswordDelay": 0, "idleTime": 300,
                                 "loginWindowIdleTime": 1200}
    assert read_plist(mac, "/Library/Preferences/com.apple.alf.plist") == {
        "source": "/Library/Preferences/com.apple.alf.plist", "status": "missing"}


# -- collecting and judging a case as the runner does ------------------------------------------------------------

COLLECTORS = [SCREENLOCK, FILEVAULT, FIREWALL, XPROTECT, UPDATES]
CHECKS = {c.id: c for c in (macos.PH_01, macos.PH_02, macos.AC_01, macos.AV_01, macos.AV_03, macos.AV_04)}


def collect(case: str, monkeypatch: pytest.MonkeyPatch) -> tuple[TargetFacts, ReplayTarget]:
    """The case's facts, collected with the clock at the case's ``collected_at``."""
    mac = ReplayTarget(case)
    when = mac.case.platform["collected_at"]
    clock = types.SimpleNamespace(time=lambda: when.timestamp())
    monkeypatch.setattr(updates_module, "time", clock)
    monkeypatch.setattr(xprotect_module, "time", clock)
    announce_reads(mac, COLLECTORS)
    records = {c.id: run_collector(c, mac) for c in COLLECTORS}
    return TargetFacts(id=mac.id, kind=mac.kind, system="darwin", facts=records), mac


def judge(case: str, monkeypatch: pytest.MonkeyPatch, policy: Any = None) -> dict[str, Finding]:
    tf, _ = collect(case, monkeypatch)
    return {f.check: f for f in evaluate_target(tf, list(CHECKS.values()), policy or load_policy())}


def statuses(found: dict[str, Finding]) -> dict[str, str]:
    return {c: f.status for c, f in found.items()}



# -- the recorded Macs ---------------------------------------------------------------------------------------------


def test_sonoma_managed_as_mscp_asks_passes_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    found = judge("sonoma", monkeypatch)
    assert statuses(found) == dict.fromkeys(CHECKS, "pass"), {c: f.message["en"] for c, f in found.items()}
    ph01 = found["PH-01"]
    assert "within 300 s idle" in ph01.message["en"] and "300 秒以内" in ph01.message["ja"]
    assert ph01.evidence["mscp"] == ["system_settings_screensaver_password_enforce",
                                     "system_settings_screensaver_ask_for_password_delay_enforce",
                                     "system_settings_screensaver_timeout_enforce"]
    # sysadminctl answers on stderr behind a log prefix: read all the same
    assert ph01.evidence["sysadminctl"]["value"] == {"state": "immediate", "delay_seconds": 0}
    assert found["PH-02"].message["en"].startswith("FileVault encrypts the startup disk, and a configuration profile")
    assert found["AC-01"].evidence["from"] == "socketfilterfw"
    # Sonoma has no xprotect tool: the launchd jobs, as mSCP's rule for 14 counts them
    assert found["AV-01"].evidence["xprotect_status"]["status"] == "missing"
    assert found["AV-01"].evidence["launchctl"]["value"] == {"jobs": dict.fromkeys(macos.XPROTECT_JOBS, True)}
    av03 = found["AV-03"]
    assert (av03.evidence["version"], av03.evidence["installed_from"], av03.evidence["bundle_used"]) == (
        "5269", "history", "coreservices")
    assert "5269" in av03.message["ja"] and "6.1 日前" in av03.message["ja"]
    assert found["AV-04"].evidence["installed"][0]["displayName"] == "XProtectPlistConfigData"


def test_sequoia_from_the_real_example_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """The corpus profile sets askForPassword 0; FileVault still encrypting; firewall off; an update pending."""
    found = judge("sequoia", monkeypatch)
    assert statuses(found) == {"PH-01": "fail", "PH-02": "fail", "AC-01": "fail", "AV-01": "pass", "AV-03": "pass",
                               "AV-04": "fail"}
    assert "askForPassword is off" in found["PH-01"].message["en"]
    assert "reports the screen lock off" in found["PH-01"].message["en"]
    assert found["PH-01"].evidence["managed"][0]["value"] == {"askForPassword": 0, "askForPasswordDelay": 0,
                                                              "idleTime": 300}
    assert "has not finished (42.5 %)" in found["PH-02"].message["en"]
    assert "暗号化が完了していません（進行状況: 42.5 %）" in found["PH-02"].message["ja"]
    assert found["AC-01"].message["en"] == "The application firewall is off (State = 0, socketfilterfw)"
    # 15: `xprotect status` is asked and believed (the launchd jobs are not needed)
    assert found["AV-01"].evidence["xprotect_status"]["value"] == {"launch_scans": True, "background_scans": True}
    # the bundle in /var/protected is the one in use; its update came over iCloud (no history): its mtime tells
    av03 = found["AV-03"]
    assert (av03.evidence["bundle_used"], av03.evidence["version"], av03.evidence["installed_from"]) == (
        "protected", "5278", "mtime")
    assert av03.evidence["installed"].startswith("2024-11-13T03:12:40")
    assert "macOS Sequoia 15.1.1" in found["AV-04"].message["en"]
    assert "15.1.1 15.1.1" not in found["AV-04"].message["en"]


def test_monterey_an_older_release(monkeypatch: pytest.MonkeyPatch) -> None:
    found = judge("monterey", monkeypatch)
    assert statuses(found) == {"PH-01": "fail", "PH-02": "fail", "AC-01": "pass", "AV-01": "fail", "AV-03": "fail",
                               "AV-04": "fail"}
    ph01 = found["PH-01"]
    # the real ByHost profile sets only idleTime: recorded, but nothing enforces the password
    assert ph01.evidence["managed_byhost"][0]["value"] == {"idleTime": 1200}
    assert ph01.evidence["managed"][0]["status"] == "missing"
    assert "askForPassword, askForPasswordDelay, idleTime" in ph01.message["en"]
    assert ph01.evidence["sysadminctl"]["value"] == {"state": "delay", "delay_seconds": 300}
    assert "deferred to the next login" in found["PH-02"].message["en"]
    # socketfilterfw failed; before 15 the preferences file is where the firewall kept its state
    assert found["AC-01"].evidence["from"] == "/Library/Preferences/com.apple.alf.plist"
    assert found["AC-01"].evidence["globalstate"]["status"] == "error"
    av01 = found["AV-01"].message["en"]
    assert "com.apple.XProtect.daemon.scan" in av01 and "Gatekeeper is off" in av01
    assert "com.apple.XprotectFramework.PluginService" not in av01  # loaded
    av03 = found["AV-03"].message["en"]
    assert "(ConfigDataInstall) is off (local)" in av03 and "118.6 days old, more than 30" in av03
    assert "2023-11-03, 118.6 days ago (more than 14)" in found["AV-04"].message["en"]


def test_filevault_off(monkeypatch: pytest.MonkeyPatch) -> None:
    found = judge("filevault_off", monkeypatch)
    assert found["PH-02"].status == "fail"
    assert found["PH-02"].message["en"] == "FileVault is off; personal data on the startup disk is not encrypted"
    assert found["PH-02"].evidence["dontAllowFDEDisable"] is False


def test_garbage_never_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    found = judge("garbage", monkeypatch)
    assert statuses(found) == dict.fromkeys(CHECKS, "error"), {c: f.message["en"] for c, f in found.items()}
    assert "not a property list" in found["PH-01"].message["en"]
    assert "exit 1: Error: Unable to determine FileVault status." in found["PH-02"].message["en"]
    assert "answer not understood: Firewall is enabled. (State =" in found["AC-01"].message["en"]
    # the tool's English stays out of the Japanese text
    assert "Unable" not in found["PH-02"].message["ja"] and "終了コード 1" in found["PH-02"].message["ja"]


def test_a_mac_that_answers_nothing_never_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    """No tool and no file recorded (a non-root SFTP view, a stripped image): nothing is a pass."""
    found = judge("bare", monkeypatch)
    assert "pass" not in statuses(found).values(), statuses(found)
    assert found["PH-01"].status == "fail"  # no profile enforces the screen lock: that much is known
    assert {found[c].status for c in ("PH-02", "AC-01", "AV-01")} == {"error"}
    assert "/usr/bin/fdesetup: command not found" in found["PH-02"].message["en"]
    assert "/usr/bin/fdesetup がありません" in found["PH-02"].message["ja"]


# -- the judges' edges, on recorded facts with one answer changed -----------------------------------------------------


def rejudge(case: str, monkeypatch: pytest.MonkeyPatch, change: Any, check: str, policy: Any = None) -> Finding:
    tf, _ = collect(case, monkeypatch)
    change(tf.facts)
    return next(f for f in evaluate_target(tf, [CHECKS[check]], policy or load_policy()))


def test_fdesetup_pending_and_decrypting(monkeypatch: pytest.MonkeyPatch) -> None:
    from collectors.macos.filevault import parse_fdesetup

    def answer(text: str) -> dict[str, Any]:
        return parse_fdesetup(CommandResult(argv=("fdesetup",), returncode=0, stdout=text.encode(), stderr=b""))

    assert answer("FileVault is On.\nEncryption in progress: Pending\n")["pending"] is True
    assert answer("FileVault is Off.\nDecryption in progress: Percent completed = 12.0\n")["progress"] == "decrypting"
    with pytest.raises(Problem):
        answer("Encryption in progress: Percent completed = 31.2\n")  # no On/Off line: not understood

    def pending(facts: dict[str, Any]) -> None:
        facts["mac_filevault"].data["fdesetup"]["value"] = answer("FileVault is On.\nEncryption in progress: Pending\n")

    f = rejudge("sonoma", monkeypatch, pending, "PH-02")
    assert f.status == "fail" and "pending (not on power)" in f.message["en"]


def test_data_paths_on_other_volumes_are_left_to_a_person(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = load_policy(overrides={"data_paths": ["/Users/Shared/kokyaku", "/Volumes/NAS/keiyaku"]})
    f = rejudge("sonoma", monkeypatch, lambda facts: None, "PH-02", policy)
    assert f.status == "manual" and "/Volumes/NAS/keiyaku" in f.message["en"]


def test_screen_lock_policy_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    strict = load_policy(overrides={"screen_lock": {"max_idle_seconds": 120, "require_system_lock": True}})
    f = next(f for f in evaluate_target(collect("sonoma", monkeypatch)[0], [CHECKS["PH-01"]], strict))
    assert f.status == "fail" and "idleTime 300 s + askForPasswordDelay 0 s > 120 s" in f.message["en"]

    def only_password(facts: dict[str, Any]) -> None:
        facts["mac_screenlock"].data["managed"][0]["value"] = {"askForPassword": True}

    lenient = load_policy(overrides={"screen_lock": {"max_idle_seconds": 600, "require_system_lock": False}})
    f = rejudge("sonoma", monkeypatch, only_password, "PH-01", lenient)
    assert f.status == "manual" and "askForPasswordDelay, idleTime" in f.message["en"]
    f = rejudge("sonoma", monkeypatch, only_password, "PH-01")
    assert f.status == "fail"

    def wrong_type(facts: dict[str, Any]) -> None:
        facts["mac_screenlock"].data["managed"][0]["value"]["idleTime"] = "300"

    f = rejudge("sonoma", monkeypatch, wrong_type, "PH-01")
    assert f.status == "error" and "idleTime is a str" in f.message["en"]


def test_unknown_firewall_state_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def seven(facts: dict[str, Any]) -> None:
        facts["mac_firewall"].data["globalstate"]["value"] = {"state": 7}

    f = rejudge("sonoma", monkeypatch, seven, "AC-01")
    assert f.status == "error" and "firewall state 7" in f.message["en"]


def test_xprotect_status_missing_on_15_is_an_error_not_the_old_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """On 15 and later the launchd jobs are not what mSCP counts: a missing `xprotect` there is unexplained."""
    def gone(facts: dict[str, Any]) -> None:
        facts["mac_xprotect"].data["status"] = {"source": "/usr/bin/xprotect status", "status": "missing"}

    f = rejudge("sequoia", monkeypatch, gone, "AV-01")
    assert f.status == "error" and "/usr/bin/xprotect status" in f.message["en"]


def test_the_update_counter_alone_is_trusted_only_without_the_list(monkeypatch: pytest.MonkeyPatch) -> None:
    def stale_counter(facts: dict[str, Any]) -> None:
        facts["mac_updates"].data["prefs"]["value"]["LastRecommendedUpdatesAvailable"] = 1

    assert rejudge("sonoma", monkeypatch, stale_counter, "AV-04").status == "pass"

    def counter_only(facts: dict[str, Any]) -> None:
        prefs = facts["mac_updates"].data["prefs"]["value"]
        prefs["LastRecommendedUpdatesAvailable"] = 2
        del prefs["RecommendedUpdates"]

    f = rejudge("sonoma", monkeypatch, counter_only, "AV-04")
    assert f.status == "fail" and "2 recommended updates pending" in f.message["en"]


def test_truncated_output_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    mac = ReplayTarget("sonoma")
    monkeypatch.setattr("collectors.macos.base.MAX_OUTPUT", 8)
    answer = run_tool(mac, ["/usr/bin/fdesetup", "status"], _fdesetup)
    assert answer["status"] == "error" and answer["problem"]["code"] == "too_long"


# -- facts: what is kept, and that a bundle judged later says the same ----------------------------------------------


def test_facts_keep_only_the_settings_judged(monkeypatch: pytest.MonkeyPatch) -> None:
    tf, mac = collect("sonoma", monkeypatch)
    text = json.dumps(tf.to_dict())
    for absent in ("loggingenabled", "LastResultCode", "packageIdentifiers", "Numbers", "appstoreagent"):
        assert absent not in text, absent
    assert "/Library/Receipts/InstallHistory.plist" in mac.reads


def test_a_saved_bundle_is_judged_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    for case in ("sonoma", "sequoia", "monterey"):
        tf, _ = collect(case, monkeypatch)
        again = TargetFacts.from_dict(json.loads(json.dumps(tf.to_dict())))
        first = evaluate_target(tf, list(CHECKS.values()), load_policy())
        later = evaluate_target(again, list(CHECKS.values()), load_policy())
        assert [(f.status, f.message) for f in first] == [(f.status, f.message) for f in later]


def test_other_platforms_keep_their_judges() -> None:
    """Without mac_* facts the check is the Linux/Windows one it extends, judge for judge."""
    from checks import windows, windows_live
    from checks.base import FactSet

    facts = FactSet({}, {"win_bitlocker": "boom"})
    policy = load_policy()
    assert macos.PH_02.evaluate(facts, policy) == windows_live.PH_02.evaluate(facts, policy)
    assert "win_bitlocker" in macos.PH_02.evaluate(facts, policy).message.en
    assert macos.PH_01.needs == (*windows.PH_01.needs, "mac_screenlock")
    with pytest.raises(ValueError, match="darwin"):
        macos.with_macos(windows_live.AV_02, "mac_xprotect", macos.av01_macos)


# -- every text in both languages --------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["sonoma", "sequoia", "monterey", "filevault_off", "garbage", "bare"])
def test_japanese_messages_hold_no_english_sentences(case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    found = judge(case, monkeypatch)
    crashed = base.common_texts()["judge_crashed"].en.split("(")[0]
    for f in found.values():
        assert not english_runs(f.message["ja"]), (f.check, f.message["ja"])
        for lang in ("ja", "en"):
            assert not re.search(r"\{[a-z_]+\}", f.message[lang]), (f.check, f.message[lang])
            assert not re.search(r"\{[a-z_]+\}", f.remediation[lang])
        assert crashed not in f.message["en"]
        assert "dconf" not in f.remediation["en"] and "apt" not in f.remediation["en"]  # the Mac's own remediation


def test_xprotect_age_limit_is_the_policys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The Sonoma case's XProtect data is 6.1 days old: inside the default 30 days, outside a 5-day policy —
    and ClamAV's much shorter signature limit does not apply to Apple's weekly feed."""
    assert judge("sonoma", monkeypatch, load_policy(overrides={"antivirus": {"signature_max_age_days": 1}})
                 )["AV-03"].status == "pass"
    strict = load_policy(overrides={"antivirus": {"xprotect_max_age_days": 5}})
    assert judge("sonoma", monkeypatch, strict)["AV-03"].status == "fail"
