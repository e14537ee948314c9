"""MN-01 (event forwarding) and MN-02 (monitoring) on Windows, from offline images of the real corpus hives.

What the corpus SYSTEM hives really hold (read with python-registry, see SOURCES.md): Windows 7
(WKS-WIN732BITA) has McAfee VirusScan and McAfee Host Intrusion Prevention (``enterceptAgent`` Start=2,
``McShield`` Start=2), WinDefend Start=3, WinRM Start=3 and no forwarding agent; Windows 10 1709
(DESKTOP-2KGM189) has WinDefend Start=2, Defender for Endpoint's ``Sense`` Start=3 (not onboarded),
WinRM Start=3, and no Sysmon, Wazuh or forwarding agent. Variants add keys with hivexsh (tests/windows_image.py).
"""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config.policy import load_policy
from agent.runner import collect_target, evaluate_target
from agent.targets.registry import RegType, RegValue
from checks.base import FactSet
from checks.windows_monitoring import mn01_windows, mn02_windows
from collectors.windows.monitoring import COLLECTOR, parse_subscription
from tests.test_messages_i18n import english_runs
from tests.windows_image import (
    CORRUPTED_SYSTEM,
    WIN7_SYSTEM,
    add_keys,
    build_tree,
    hivex_write,
    profile_list,
)

SYSTEM = "Windows/System32/config/SYSTEM"
WEF_KEY = r"Policies\Microsoft\Windows\EventLog\EventForwarding\SubscriptionManager"
WEF_HTTPS = "Server=https://wec.example.jp:5986/wsman/SubscriptionManager/WEC,Refresh=60,IssuerCA=0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"


def scan(root: Path, policy: Any = None) -> dict[str, Any]:
    from agent.registry import checks as registered

    every = registered()
    tf = collect_target(f"rootfs:{root}", [COLLECTOR])
    assert tf.system == "windows", tf
    found = {f.check: f for f in evaluate_target(tf, [every["MN-01"], every["MN-02"]], policy or load_policy())}
    for f in found.values():  # every message is whole in both languages
        assert not english_runs(f.message["ja"]), f.message["ja"]
        for lang in ("ja", "en"):
            assert "{" not in f.message[lang] and "internal" not in f.message[lang], f.message[lang]
    return found


def with_policy(**changes: dict[str, Any]) -> Any:
    policy = copy.deepcopy(load_policy())
    for section, values in changes.items():
        policy[section].update(values)
    return policy


def set_value(hive: Path, key: str, name: str, new: str) -> None:
    """Change one value of an existing key, keeping its others (hivexsh's setval replaces them all)."""
    from Registry import Registry

    values = [(v.name(), f"hex:{v.value_type()}:{v.raw_data().hex(',')}")
              for v in Registry.Registry(str(hive)).open(key).values() if v.name() != name]
    values.append((name, new))
    hivex_write(hive, [f"cd \\{key}", f"setval {len(values)}", *[x for v in values for x in v]])


SYSMON = {r"ControlSet001\Services\Sysmon64": [("Type", "dword:0x00000010"), ("Start", "dword:0x00000002"),
                                                ("ErrorControl", "dword:0x00000001"),
                                                ("ImagePath", r"expandstring:C:\Windows\Sysmon64.exe")],
          r"ControlSet001\Services\SysmonDrv": [("Type", "dword:0x00000001"), ("Start", "dword:0x00000000"),
                                                 ("ErrorControl", "dword:0x00000001"),
                                                 ("ImagePath", "expandstring:SysmonDrv.sys")]}


# -- the corpus images as they are -----------------------------------------------------------------------


@pytest.mark.needs_service  # hivexsh writes the SOFTWARE hive
def test_win10_corpus_image(tmp_path: Path) -> None:
    found = scan(build_tree(tmp_path, software=profile_list()))
    mn01, mn02 = found["MN-01"], found["MN-02"]
    assert mn01.status == "fail" and "No log forwarding" in mn01.message["en"]
    assert mn01.evidence["winrm"] == {"state": "manual", "key": r"HKLM\SYSTEM\ControlSet001\Services\WinRM", "start": 3}
    assert mn01.evidence["wef_policy"]["status"] == "missing"
    # Defender is set to start (2) but may be passive; Sense (Defender for Endpoint) is not onboarded (3).
    assert mn02.status == "manual", mn02.message
    assert mn02.evidence["tools"]["defender"] == {"state": "auto", "key": r"HKLM\SYSTEM\ControlSet001\Services\WinDefend",
                                                  "start": 2, "start_type": "automatic"}
    assert mn02.evidence["tools"]["defender_endpoint"]["start"] == 3
    assert "passive" in mn02.message["en"] and "受動モード" in mn02.message["ja"]
    assert "running state not observed" in mn02.evidence["judged_from"]


@pytest.mark.needs_service  # hivexsh writes the SOFTWARE hive
def test_win7_corpus_image_mcafee_hips_is_monitoring(tmp_path: Path) -> None:
    found = scan(build_tree(tmp_path, system=WIN7_SYSTEM, software=profile_list()))
    mn02 = found["MN-02"]
    assert mn02.status == "pass" and "McAfee Host Intrusion Prevention" in mn02.message["en"]
    assert "judged from the registry configuration" in mn02.message["en"] and "未確認" in mn02.message["ja"]
    assert mn02.evidence["tools"]["defender"]["start"] == 3  # WinDefend manual beside McAfee
    assert found["MN-01"].status == "fail"


def test_without_software_the_policies_are_unknown(tmp_path: Path) -> None:
    found = scan(build_tree(tmp_path))
    assert found["MN-01"].status == "error" and "SOFTWARE hive not in the image" in found["MN-01"].message["en"]
    assert "ハイブのファイルがイメージにありません" in found["MN-01"].message["ja"]
    assert found["MN-02"].status == "error"  # Defender's policy could have turned it off
    # McAfee HIPS needs no policy key to be seen: Windows 7 still passes MN-02.
    assert scan(build_tree(tmp_path / "w7", system=WIN7_SYSTEM))["MN-02"].status == "pass"


@pytest.mark.parametrize("software", [False, pytest.param(True, marks=pytest.mark.needs_service)])
def test_corrupted_system_hive_is_error_never_pass(tmp_path: Path, software: bool) -> None:
    found = scan(build_tree(tmp_path, system=CORRUPTED_SYSTEM, software=profile_list() if software else None))
    for f in found.values():
        assert f.status == "error", (f.check, f.status, f.message["en"])
        assert "damaged" in f.message["en"] and "ハイブが壊れています" in f.message["ja"]
        assert "more unreadable the same way" in f.message["en"]  # one reason per key would bury the message


# -- Windows Event Forwarding ----------------------------------------------------------------------------


@pytest.mark.needs_service  # hivexsh writes SOFTWARE and edits SYSTEM
def test_wef_policy_with_winrm_manual_asks_and_automatic_passes(tmp_path: Path) -> None:
    root = build_tree(tmp_path, software=profile_list() | {WEF_KEY: [("1", f"string:{WEF_HTTPS}")]})
    mn01 = scan(root)["MN-01"]
    assert mn01.status == "manual" and "WinRM starts only on demand" in mn01.message["en"]
    [sub] = mn01.evidence["subscriptions"]
    assert sub == {"name": "1", "server": "https://wec.example.jp:5986/wsman/SubscriptionManager/WEC",
                   "scheme": "https", "scheme_given": True, "refresh": 60, "issuer_ca": True, "problem": None}
    assert "0a1b2c3d" not in json.dumps(mn01.evidence)  # the thumbprint is not evidence
    set_value(root / SYSTEM, r"ControlSet001\Services\WinRM", "Start", "dword:0x00000002")
    mn01 = scan(root)["MN-01"]
    assert mn01.status == "pass", mn01.message
    assert "https://wec.example.jp:5986/wsman/SubscriptionManager/WEC" in mn01.message["en"]
    assert "which events the collector subscribes to" in mn01.message["en"]
    tls = scan(root, with_policy(log_forwarding={"require_tls": True}))["MN-01"]
    assert tls.status == "pass"  # HTTPS already
    set_value(root / SYSTEM, r"ControlSet001\Services\WinRM", "Start", "dword:0x00000004")
    mn01 = scan(root)["MN-01"]
    assert mn01.status == "fail" and "WinRM, which sends the events, is disabled (Start=4)" in mn01.message["en"]


@pytest.mark.needs_service  # hivexsh writes SOFTWARE and edits SYSTEM
def test_wef_server_loses_credentials_and_http_fails_required_tls(tmp_path: Path) -> None:
    value = "Server=http://svc:S3cretPw@wec.example.jp:5985/wsman/SubscriptionManager/WEC?key=T0ken#x,Refresh=60"
    root = build_tree(tmp_path, software=profile_list() | {WEF_KEY: [("1", f"string:{value}")]})
    set_value(root / SYSTEM, r"ControlSet001\Services\WinRM", "Start", "dword:0x00000002")
    tf = collect_target(f"rootfs:{root}", [COLLECTOR])
    facts = json.dumps(tf.facts["win_monitoring"].data)
    assert "S3cretPw" not in facts and "T0ken" not in facts and "svc" not in facts
    found = scan(root)
    assert found["MN-01"].status == "pass"
    assert "http://wec.example.jp:5985/wsman/SubscriptionManager/WEC" in found["MN-01"].message["en"]
    strict = scan(root, with_policy(log_forwarding={"require_tls": True}))["MN-01"]
    assert strict.status == "fail" and "not HTTPS" in strict.message["en"]
    off = scan(root, with_policy(log_forwarding={"required": False}))["MN-01"]
    assert off.status == "pass"  # forwarding that works passes even when not required


@pytest.mark.needs_service  # hivexsh writes SOFTWARE and edits SYSTEM
@pytest.mark.parametrize("garbage", ["dword:0x00000001", "string:Server=", "string:Refresh=60",
                                     "string:Server=ftp://wec.example.jp/,Refresh=60",
                                     "string:Server=https://wec.example.jp:5986/wsman,Refresh=often",
                                     "string:Server=https://,Refresh=60", "string:junk"])
def test_garbage_wef_values_never_pass(tmp_path: Path, garbage: str) -> None:
    root = build_tree(tmp_path, software=profile_list() | {WEF_KEY: [("1", garbage)]})
    set_value(root / SYSTEM, r"ControlSet001\Services\WinRM", "Start", "dword:0x00000002")
    mn01 = scan(root)["MN-01"]
    assert mn01.status == "error", (garbage, mn01.status, mn01.message["en"])
    assert "Subscription Manager value 1" in mn01.message["en"]


# -- agents and monitoring tools as services -------------------------------------------------------------


@pytest.mark.needs_service  # hivexsh writes SOFTWARE and edits SYSTEM
def test_sysmon_with_its_driver_passes_and_without_it_does_not(tmp_path: Path) -> None:
    root = build_tree(tmp_path / "full", software=profile_list())
    add_keys(root / SYSTEM, SYSMON)
    mn02 = scan(root)["MN-02"]
    assert mn02.status == "pass" and "Sysmon" in mn02.message["en"]
    assert mn02.evidence["tools"]["sysmon"] == {"state": "auto", "key": r"HKLM\SYSTEM\ControlSet001\Services\Sysmon64",
                                                "start": 2, "start_type": "automatic"}
    lone = build_tree(tmp_path / "lone", software=profile_list())
    add_keys(lone / SYSTEM, {k: v for k, v in SYSMON.items() if k.endswith("Sysmon64")})
    assert scan(lone)["MN-02"].status == "manual"  # Defender's question remains; Sysmon does not count
    only = scan(lone, with_policy(monitoring={"accepted_tools": ["sysmon"]}))["MN-02"]
    assert only.status == "fail" and "SysmonDrv is not registered" in only.message["en"]
    set_value(root / SYSTEM, r"ControlSet001\Services\Sysmon64", "Start", "string:2")
    bad = scan(root, with_policy(monitoring={"accepted_tools": ["sysmon"]}))["MN-02"]
    assert bad.status == "error" and "not a service start type" in bad.message["en"]


@pytest.mark.needs_service  # hivexsh writes SOFTWARE and edits SYSTEM
def test_wazuh_agent_forwards_and_monitors(tmp_path: Path) -> None:
    root = build_tree(tmp_path, software=profile_list())
    add_keys(root / SYSTEM, {r"ControlSet001\Services\WazuhSvc": [
        ("Type", "dword:0x00000010"), ("Start", "dword:0x00000002"),
        ("ImagePath", r"string:C:\Program Files (x86)\ossec-agent\wazuh-agent.exe")]})
    found = scan(root)
    assert found["MN-01"].status == "pass" and "Wazuh agent" in found["MN-01"].message["en"]
    assert found["MN-02"].status == "pass" and "Wazuh" in found["MN-02"].message["ja"]
    tls = scan(root, with_policy(log_forwarding={"require_tls": True}))["MN-01"]
    assert tls.status == "manual" and "TLS" in tls.message["en"]
    set_value(root / SYSTEM, r"ControlSet001\Services\WazuhSvc", "Start", "dword:0x00000003")
    manual = scan(root)
    assert manual["MN-01"].status == "manual" and "is it running" in manual["MN-01"].message["en"]
    set_value(root / SYSTEM, r"ControlSet001\Services\WazuhSvc", "DeleteFlag", "dword:0x00000001")
    gone = scan(root)["MN-01"]
    assert gone.status == "fail" and "marked for deletion" in gone.message["en"]


@pytest.mark.needs_service  # hivexsh writes SOFTWARE
def test_defender_can_fail_by_policy_but_never_pass(tmp_path: Path) -> None:
    only_defender = with_policy(monitoring={"accepted_tools": ["defender"]})
    on = scan(build_tree(tmp_path / "on", software=profile_list()), only_defender)["MN-02"]
    assert on.status == "manual"  # WinDefend Start=2 and no policy against it: still only a question
    off = profile_list() | {r"Policies\Microsoft\Windows Defender": [("DisableAntiSpyware", "dword:0x00000001")]}
    mn02 = scan(build_tree(tmp_path / "off", software=off), only_defender)["MN-02"]
    assert mn02.status == "fail" and "DisableAntiSpyware=1" in mn02.message["en"]
    rtp = profile_list() | {r"Policies\Microsoft\Windows Defender\Real-Time Protection": [
        ("DisableRealtimeMonitoring", "dword:0x00000001")]}
    mn02 = scan(build_tree(tmp_path / "rtp", software=rtp), only_defender)["MN-02"]
    assert mn02.status == "fail" and "DisableRealtimeMonitoring=1" in mn02.message["ja"]


def test_nothing_accepted_on_windows_is_fail_none(tmp_path: Path) -> None:
    mn02 = scan(build_tree(tmp_path), with_policy(monitoring={"accepted_tools": ["auditd", "crowdstrike"]}))["MN-02"]
    assert mn02.status == "fail" and "No intrusion or integrity monitoring" in mn02.message["en"]


# -- parsers and judges under hypothesis -----------------------------------------------------------------


@given(st.one_of(st.text(max_size=200), st.binary(max_size=40), st.integers(min_value=0, max_value=2**32 - 1),
                 st.lists(st.text(max_size=20), max_size=3)))
def test_subscription_parser_never_crashes_or_leaks(data: Any) -> None:
    code = RegType.REG_SZ if isinstance(data, str) else RegType.REG_BINARY
    sub = parse_subscription(RegValue(name="1", type=code, data=data))
    if sub["problem"] is None:
        assert sub["server"] is not None and sub["server"].startswith(("http://", "https://"))
        assert "@" not in sub["server"] and "?" not in sub["server"] and "#" not in sub["server"]


_SERVICE_NAMES = ("WinRM", "Sysmon64", "SysmonDrv", "WazuhSvc")
_start = st.one_of(st.none(), st.integers(min_value=-1, max_value=2**32), st.text(max_size=4), st.binary(max_size=4))
_answer = st.one_of(
    st.just({"status": "missing"}),
    st.just({"status": "error", "key": "k", "error": {"kind": "hive_corrupted", "message": "damaged"}}),
    st.builds(lambda s: {"status": "ok", "key": "k", "values": {} if s is None else {"Start": {"value": s}}}, _start))


@given(st.fixed_dictionaries({n: _answer for n in _SERVICE_NAMES}),
       st.sampled_from([{"status": "missing"}, {"status": "error", "key": "p", "error": {"kind": "hive_missing"}}]))
def test_judges_pass_only_on_real_start_types(services: dict[str, Any], policy_answer: dict[str, Any]) -> None:
    facts = FactSet({"win_monitoring": {"wef": {"policy": policy_answer, "subscriptions": []}, "services": services,
                                        "defender_policy": policy_answer, "defender_rtp_policy": policy_answer}},
                    {})

    def auto(name: str) -> bool:
        a = services[name]
        v = (a.get("values") or {}).get("Start", {}).get("value")
        return a["status"] == "ok" and isinstance(v, int) and not isinstance(v, bool) and v in (0, 1, 2)

    def registered(name: str) -> bool:
        a = services[name]
        v = (a.get("values") or {}).get("Start", {}).get("value")
        return a["status"] == "ok" and isinstance(v, int) and v in (0, 1, 2, 3)

    policy = with_policy(monitoring={"accepted_tools": ["sysmon", "wazuh"]})
    mn02 = mn02_windows(facts, policy)
    if mn02.status.value == "pass":
        assert auto("WazuhSvc") or (auto("Sysmon64") and registered("SysmonDrv"))
    mn01 = mn01_windows(facts, policy)
    if mn01.status.value == "pass":
        assert auto("WazuhSvc")  # no WEF policy: only an agent can pass


def test_checks_list_shows_windows_for_mn01_mn02(run_cli: Any) -> None:
    rc, _, out, _ = run_cli("checks", "list", "--json")
    rows = {r["id"]: r["platforms"] for r in json.loads(out)}
    assert rc == 0 and rows["MN-01"] == ["linux", "windows"] and rows["MN-02"] == ["linux", "windows"]
    assert rows["MN-03"] == ["linux", "windows"]  # Task Scheduler (checks.windows_more)


def test_data_file_names_service_keys() -> None:
    """Every name in windows_services.yaml is a service key name (no path, no blanks at the ends)."""
    from collectors.windows.monitoring import service_names

    for name in service_names():
        assert name == name.strip() and "\\" not in name and "/" not in name, name


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=9000))
def test_garbage_hives_never_pass_mn01_mn02(noise: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        config = Path(d) / "Windows/System32/config"
        config.mkdir(parents=True)
        (config / "SYSTEM").write_bytes(b"regf" + noise)
        (config / "SOFTWARE").write_bytes(noise)
        found = scan(Path(d))
    for f in found.values():
        assert f.status == "error", (f.check, f.status, f.message["en"])
