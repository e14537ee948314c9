"""Windows LG-03 (audit policy), PM-02 (Administrators), PM-04 (dormant accounts) and the live-output parsers
(auditpol CSV, secedit INF), end to end on images built from the real corpus hives (tests/windows_image.py).

What the corpus hives hold (SOURCES.md, and read here): the SAM's Administrators alias lists Administrator
(RID 500, disabled) and Preston (RID 1000, enabled, last logon 2014-09-30); the SECURITY hive's PolAdtEv
decodes to Windows 10's documented default audit policy (no File System auditing).
"""

from __future__ import annotations

import io
import json
import struct
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config.policy import Policy, load_policy
from agent.runner import collect_target, evaluate_target
from checks.base import FactSet
from checks.windows import ia02_windows, ia03_windows
from checks.windows_more import lg03_windows, pm02_windows, pm04_windows
from collectors.windows.accounts import ACCOUNTS
from collectors.windows.audit import AUDIT_POLICY, full_guid, parse_auditpol_csv, parse_poladtev
from collectors.windows.groups import LOCAL_ADMINS, parse_alias_c, parse_sid
from collectors.windows.secedit import parse_secedit, secedit_domain
from tests.conftest import finding, require_corpus
from tests.windows_image import SAM, SECURITY, build_tree, corpus_hive, profile_list, set_values

COLLECTORS = [ACCOUNTS, AUDIT_POLICY, LOCAL_ADMINS]
DOMAIN = "S-1-5-21-1760460187-1592185332-161725925"
LOGON, SPECIAL, FILES = full_guid("0CCE9215"), full_guid("0CCE921B"), full_guid("0CCE921D")


def image(root: Path, *, security: bool = True, software: bool = False) -> Path:
    build_tree(root, ntuser=False, software=profile_list() if software else None)
    if security:
        (root / "Windows/System32/config/SECURITY").write_bytes(corpus_hive(SECURITY))
    return root


def facts_of(root: Path) -> dict[str, Any]:
    tf = collect_target(f"rootfs:{root}", COLLECTORS)
    assert tf.system == "windows"
    return {k: r.data for k, r in tf.facts.items() if r.error is None}


def judge(root: Path, policy: Policy | None = None, checks: tuple[str, ...] = ("LG-03", "PM-02", "PM-04")) -> dict[str, Any]:
    from agent.registry import checks as registered

    every = registered()
    tf = collect_target(f"rootfs:{root}", COLLECTORS)
    return {f.check: f for f in evaluate_target(tf, [every[c] for c in checks], policy or load_policy())}


def with_policy(**accounts: Any) -> Policy:
    return load_policy(overrides={"accounts": accounts})


def corpus_poladtev() -> bytes:
    from Registry import Registry

    hive = Registry.Registry(io.BytesIO(corpus_hive(SECURITY)))
    raw: bytes = hive.open(r"Policy\PolAdtEv").value("(default)").raw_data()
    return raw


def hexbytes(raw: bytes) -> str:
    return ",".join(f"{b:02x}" for b in raw)


# -- PolAdtEv ----------------------------------------------------------------------------------------------


def test_corpus_poladtev_decodes_to_the_windows_10_default_audit_policy() -> None:
    pol = parse_poladtev(corpus_poladtev())
    assert pol["layout"] == "Windows 10 1607+ / Server 2016+ (59 subcategories)"
    assert len(pol["settings"]) == 59 and pol["unnamed"] == []
    audited = {s["name"]: s["value"] for s in pol["settings"].values() if s["value"]}
    # Microsoft's documented defaults of a Windows 10 workstation ("Advanced security audit policy settings"):
    # an independent check of the subcategory order the data file gives.
    assert audited == {"Security State Change": 1, "System Integrity": 3, "Other System Events": 3,
                       "Logon": 3, "Logoff": 1, "Account Lockout": 1, "Special Logon": 1,
                       "Network Policy Server": 3, "Audit Policy Change": 1, "Authentication Policy Change": 1,
                       "User Account Management": 1, "Security Group Management": 1}
    assert pol["settings"][FILES]["category"] == "Object Access" and not pol["settings"][FILES]["success"]
    assert pol["settings"][LOGON]["success"] and pol["settings"][LOGON]["failure"]


def _with_setting(raw: bytes, index: int, value: int) -> bytes:
    out = bytearray(raw)
    struct.pack_into("<H", out, 12 + 2 * index, value)
    return bytes(out)


def test_poladtev_shapes_that_do_not_fit_are_errors() -> None:
    raw = corpus_poladtev()
    for bad in (b"", raw[:11], raw[:-1], raw + b"\x00\x00", b"\x00\x02" + raw[2:],
                raw[:8] + struct.pack("<I", 0x86) + raw[12:],  # counts table moved
                raw[:-2] + struct.pack("<H", 5),  # counts no longer sum to the values
                _with_setting(raw, 16, 4)):  # File System = 4: not a setting
        with pytest.raises(ValueError):
            parse_poladtev(bad)


def test_an_unknown_layout_is_not_guessed() -> None:
    raw = corpus_poladtev()
    # Move one subcategory from Logon/Logoff to System: same size, counts (6, 10, ...) of no known Windows.
    swapped = raw[:0x84] + struct.pack("<9H", 6, 10, 14, 3, 6, 6, 6, 4, 4)
    with pytest.raises(ValueError, match="unknown layout"):
        parse_poladtev(swapped)


def test_windows_11_layout_names_only_the_established_positions() -> None:
    counts = (5, 12, 14, 3, 6, 6, 6, 4, 4)
    values = [0] * 60
    values[5], values[9], values[17] = 3, 1, 2  # Logon, Special Logon, File System
    body = struct.pack("<60H", *values) + struct.pack("<H", 0)
    raw = struct.pack("<HHII", 0x100, 0, 9, 12 + len(body)) + body + struct.pack("<9H", *counts)
    pol = parse_poladtev(raw)
    assert pol["layout"] == "Windows 11 (60 subcategories)"
    assert (pol["settings"][LOGON]["value"], pol["settings"][SPECIAL]["value"], pol["settings"][FILES]["value"]) == (3, 1, 2)
    assert len(pol["settings"]) + len(pol["unnamed"]) == 60


@given(st.binary(max_size=300))
def test_poladtev_parser_never_crashes(raw: bytes) -> None:
    try:
        pol = parse_poladtev(raw)
    except ValueError:
        return
    assert all(0 <= s["value"] <= 3 for s in pol["settings"].values())


@given(st.lists(st.tuples(st.integers(0, 149), st.integers(0, 255)), min_size=1, max_size=8))
def test_damaged_corpus_poladtev_is_an_error_or_a_faithful_decode(flips: list[tuple[int, int]]) -> None:
    raw = bytearray(corpus_poladtev())
    for at, byte in flips:
        raw[at] = byte
    try:
        pol = parse_poladtev(bytes(raw))
    except ValueError:
        return
    counts = struct.unpack_from("<9H", raw, 0x84)
    assert sum(counts) == len(pol["settings"]) + len(pol["unnamed"])
    for s in pol["settings"].values():
        assert s["value"] in (0, 1, 2, 3)


# -- auditpol CSV ------------------------------------------------------------------------------------------

BACKUP = """Machine Name,Policy Target,Subcategory,Subcategory GUID,Inclusion Setting,Exclusion Setting,Setting Value
PC1,System,ログオンの監査,{0cce9215-69ae-11d9-bed3-505054503030},成功および失敗,,3
PC1,System,特殊なログオンの監査,{0cce921b-69ae-11d9-bed3-505054503030},成功,,1
PC1,System,ファイル システムの監査,{0cce921d-69ae-11d9-bed3-505054503030},監査なし,,0
,,Option:CrashOnAuditFail,,Disabled,,0
"""


def test_auditpol_csv_of_the_corpus() -> None:
    pol = parse_auditpol_csv(require_corpus("windows", "inspec__fixtures_cmd_auditpol.csv").read_bytes())
    assert pol["settings"] == {full_guid("0CCE9235"): {
        "guid": full_guid("0CCE9235"), "name": "User Account Management", "category": "Account Management",
        "success": True, "failure": False, "value": 1}}


def test_auditpol_backup_uses_the_numbers_not_the_translated_words() -> None:
    for raw in (BACKUP, BACKUP.encode("utf-8-sig"), b"\xff\xfe" + BACKUP.encode("utf-16-le")):
        pol = parse_auditpol_csv(raw)
        assert {s["name"]: s["value"] for s in pol["settings"].values()} == {
            "Logon": 3, "Special Logon": 1, "File System": 0}


@pytest.mark.parametrize("bad", ["", "a,b,c\n1,2,3\n", BACKUP.replace(",,3", ",,7"),
                                 BACKUP.replace("{0cce9215-69ae-11d9-bed3-505054503030}", "{junk}"),
                                 BACKUP.replace(",,3", ",,").replace("成功および失敗", "全部"),
                                 BACKUP.splitlines()[0] + "\n"])
def test_auditpol_csv_garbage_is_an_error(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_auditpol_csv(bad)


@given(st.text(max_size=400))
def test_auditpol_parser_never_crashes_and_only_understands_settings(text: str) -> None:
    try:
        pol = parse_auditpol_csv(text)
    except ValueError:
        return
    assert pol["settings"] and all(0 <= s["value"] <= 3 for s in pol["settings"].values())


def test_live_auditpol_facts_are_judged_like_the_image() -> None:
    pol = parse_auditpol_csv(BACKUP)
    facts = FactSet({"win_audit_policy": {"policy": dict(pol), "error": None}}, {})
    v = lg03_windows(facts, load_policy())
    assert v.status == "fail" and v.evidence["required"] == {"Logon": "Success and Failure",
                                                             "Special Logon": "Success", "File System": "No Auditing"}


# -- secedit INF -------------------------------------------------------------------------------------------


def corpus_secedit() -> str:
    return require_corpus("windows", "inspec__fixtures_cmd_secedit-export.txt").read_text()


def full_export(**values: str) -> str:
    """The corpus fragment completed with the keys a real export also has (and ``values`` replacing any)."""
    text = corpus_secedit()
    for key in ("LockoutDuration", "MaximumPasswordAge"):
        if key in values:
            text = "".join(line for line in text.splitlines(keepends=True) if not line.startswith(key))
    lines = {"MinimumPasswordAge": "0", "MinimumPasswordLength": "12", "PasswordComplexity": "1",
             "PasswordHistorySize": "24", "LockoutBadCount": "5", "ResetLockoutCount": "15", **values}
    return text.replace("[System Access]\n", "[Unicode]\nUnicode=yes\n[System Access]\n" +
                        "".join(f"{k} = {v}\n" for k, v in lines.items()))


def test_secedit_of_the_corpus_is_read_and_says_what_it_lacks() -> None:
    export = parse_secedit(require_corpus("windows", "inspec__fixtures_cmd_secedit-export.txt").read_bytes())
    assert export["sections"] == ["System Access", "Registry Values", "Privilege Rights"]
    assert export["system_access"]["LockoutDuration"] == "-1"
    assert export["system_access"]["NewGuestName"] == '"Guest"'
    with pytest.raises(ValueError, match="MinimumPasswordLength"):
        secedit_domain(export)  # the fixture is a fragment: never a default that could pass


def test_secedit_utf16_export_normalizes_like_the_sam() -> None:
    raw = b"\xff\xfe" + full_export().replace("\n", "\r\n").encode("utf-16-le")
    dom = secedit_domain(parse_secedit(raw))
    assert dom == {"min_password_length": 12, "password_history_length": 24, "complexity": True,
                   "lockout_threshold": 5, "lockout_duration_seconds": None,  # -1: until an administrator unlocks
                   "lockout_window_seconds": 900, "max_password_age_days": 42}
    assert secedit_domain(parse_secedit(full_export(LockoutDuration="30")))["lockout_duration_seconds"] == 1800
    # The IA-02/IA-03 judges read it as they read the SAM's domain F value.
    facts = FactSet({"win_accounts": {"domain": dict(dom), "domain_error": None}}, {})
    pol = load_policy()
    assert ia02_windows(facts, pol).status == "pass" and ia03_windows(facts, pol).status == "pass"
    weak = secedit_domain(parse_secedit(full_export(MinimumPasswordLength="6", LockoutBadCount="0")))
    weak_facts = FactSet({"win_accounts": {"domain": dict(weak), "domain_error": None}}, {})
    assert ia02_windows(weak_facts, pol).status == "fail" and ia03_windows(weak_facts, pol).status == "fail"


@pytest.mark.parametrize("bad", [{"MinimumPasswordLength": "twelve"}, {"PasswordComplexity": "2"},
                                 {"LockoutBadCount": ""}, {"MinimumPasswordLength": "999"},
                                 {"LockoutDuration": "-1", "lockoutduration": "30"}])
def test_secedit_values_that_do_not_fit_are_errors(bad: dict[str, str]) -> None:
    text = full_export(**bad)
    with pytest.raises(ValueError):
        secedit_domain(parse_secedit(text))


@given(st.binary(max_size=300))
def test_secedit_parser_never_crashes(raw: bytes) -> None:
    try:
        dom = secedit_domain(parse_secedit(raw))
    except ValueError:
        return
    assert 0 <= dom["min_password_length"] <= 128


# -- Administrators (SAM alias C) --------------------------------------------------------------------------


def corpus_alias_c() -> bytes:
    from Registry import Registry

    hive = Registry.Registry(io.BytesIO(corpus_hive(SAM)))
    raw: bytes = hive.open(r"SAM\Domains\Builtin\Aliases\00000220").value("C").raw_data()
    return raw


def alias_with(extra_sids: list[bytes]) -> bytes:
    """The corpus Administrators C value with more members appended (offsets and counts kept right)."""
    raw = bytearray(corpus_alias_c())
    offset, length, count = struct.unpack_from("<III", raw, 0x28)
    end = 0x34 + offset + length
    added = b"".join(extra_sids)
    out = raw[:end] + added + raw[end:]
    struct.pack_into("<III", out, 0x28, offset, length + len(added), count + len(extra_sids))
    return bytes(out)


def sid_bytes(sid: str) -> bytes:
    parts = [int(p) for p in sid.split("-")[2:]]
    return bytes([1, len(parts) - 1]) + parts[0].to_bytes(6, "big") + struct.pack(f"<{len(parts) - 1}I", *parts[1:])


def test_corpus_administrators_are_administrator_and_preston() -> None:
    assert parse_alias_c(corpus_alias_c()) == [f"{DOMAIN}-500", f"{DOMAIN}-1000"]
    assert parse_sid(sid_bytes("S-1-5-32-544")) == ("S-1-5-32-544", 16)


@given(st.binary(max_size=600))
def test_alias_parser_never_crashes(raw: bytes) -> None:
    try:
        sids = parse_alias_c(raw)
    except ValueError:
        return
    assert all(s.startswith("S-1-") for s in sids)


def test_damaged_alias_values_are_errors() -> None:
    raw = corpus_alias_c()
    for bad in (raw[:0x30], raw[:-4], b"\x21" + raw[1:],  # another alias's C value
                raw[:0x30] + struct.pack("<I", 3) + raw[0x34:]):  # three members claimed, two stored
        with pytest.raises(ValueError):
            parse_alias_c(bad)


def test_pm02_on_the_corpus_sam(tmp_path: Path) -> None:
    root = image(tmp_path)
    pm = judge(root, checks=("PM-02",))["PM-02"]
    assert pm.status == "manual" and "Preston" in pm.message["en"] and "Administrator" not in pm.message["en"]
    assert pm.evidence["not_counted"] == {"Administrator": "disabled"}
    assert judge(root, with_policy(approved_admins=["preston"]), ("PM-02",))["PM-02"].status == "pass"
    fail = judge(root, with_policy(approved_admins=["alice"]), ("PM-02",))["PM-02"]
    assert fail.status == "fail" and "Preston" in fail.message["ja"]


@pytest.mark.needs_service  # hivexsh writes the changed alias into a copy of the corpus SAM
def test_pm02_domain_members_are_sids_and_everyone_fails(tmp_path: Path) -> None:
    domain_admins = "S-1-5-21-111-222-333-512"
    root = image(tmp_path / "a")
    set_values(root / "Windows/System32/config/SAM", r"SAM\Domains\Builtin\Aliases\00000220",
               [("C", "hex:3:" + hexbytes(alias_with([sid_bytes(domain_admins)])))])
    pm = judge(root, with_policy(approved_admins=["Preston"]), ("PM-02",))["PM-02"]
    assert pm.status == "fail" and pm.message["en"].endswith(domain_admins)
    ok = judge(root, with_policy(approved_admins=["Preston", domain_admins]), ("PM-02",))["PM-02"]
    assert ok.status == "pass"
    root2 = image(tmp_path / "b")
    set_values(root2 / "Windows/System32/config/SAM", r"SAM\Domains\Builtin\Aliases\00000220",
               [("C", "hex:3:" + hexbytes(alias_with([sid_bytes("S-1-5-11")])))])
    every = judge(root2, with_policy(approved_admins=["Preston"]), ("PM-02",))["PM-02"]
    assert every.status == "fail" and "S-1-5-11" in every.message["en"]
    root3 = image(tmp_path / "c")
    set_values(root3 / "Windows/System32/config/SAM", r"SAM\Domains\Builtin\Aliases\00000220",
               [("C", "hex:3:" + hexbytes(corpus_alias_c()[:-7]))])
    broken = judge(root3, with_policy(approved_admins=["Preston"]), ("PM-02",))["PM-02"]
    assert broken.status == "error" and "Administrators" in broken.message["en"]


# -- PM-04 -------------------------------------------------------------------------------------------------


def test_pm04_on_the_corpus_sam_judges_at_collection_time(tmp_path: Path) -> None:
    facts = facts_of(image(tmp_path))
    accounts = {a["name"]: a for a in facts["win_accounts"]["accounts"]}
    assert accounts["Preston"]["last_logon"].startswith("2014-09-30") and not accounts["Preston"]["disabled"]
    pol = load_policy()
    v = pm04_windows(FactSet(facts, {}), pol)
    assert v.status == "fail" and [p.params["name"] for p in v.params["accounts"]] == ["Preston"]
    # The same facts collected two weeks after that logon: the judge uses the time in the facts, not the clock.
    then = dict(facts, win_accounts=dict(facts["win_accounts"], collected_at=1413331200))  # 2014-10-15
    recent = pm04_windows(FactSet(then, {}), pol)
    assert recent.status == "pass" and recent.params == {"count": 1, "days": 90}
    exempt = pm04_windows(FactSet(facts, {}), with_policy(dormant_exempt=["preston"]))
    assert exempt.status == "pass" and exempt.evidence["accounts"]["Preston"].startswith("exempt")
    old_bundle = dict(facts, win_accounts={k: v for k, v in facts["win_accounts"].items() if k != "collected_at"})
    assert pm04_windows(FactSet(old_bundle, {}), pol).status == "error"


def test_pm04_never_logged_on_accounts_count_from_their_password_date(tmp_path: Path) -> None:
    facts = facts_of(image(tmp_path))
    acc = json.loads(json.dumps(facts["win_accounts"]))
    preston = next(a for a in acc["accounts"] if a["name"] == "Preston")
    preston["last_logon"] = None
    preston["password_last_set"] = "2014-10-01T00:00:00Z"
    acc["collected_at"] = 1413331200  # 2014-10-15
    assert pm04_windows(FactSet({"win_accounts": acc}, {}), load_policy()).status == "pass"
    acc["collected_at"] = 1450000000  # 2015-12-13
    v = pm04_windows(FactSet({"win_accounts": acc}, {}), load_policy())
    assert v.status == "fail" and v.params["accounts"][0].key == "dormant_never"
    assert v.evidence["accounts"]["Preston"].startswith("never logged on; password set 2014-10-01")
    preston["password_last_set"] = None
    assert pm04_windows(FactSet({"win_accounts": acc}, {}), load_policy()).status == "fail"


# -- LG-03 on images ---------------------------------------------------------------------------------------


def test_lg03_on_the_corpus_security_hive(tmp_path: Path) -> None:
    lg = judge(image(tmp_path), checks=("LG-03",))["LG-03"]
    assert lg.status == "fail" and lg.message["en"] == "The audit policy does not record: File System successes and failures"
    assert "File System の成功と失敗" in lg.message["ja"]
    assert lg.evidence["required"] == {"Logon": "Success and Failure", "Special Logon": "Success",
                                       "File System": "No Auditing"}


def test_lg03_without_a_security_hive_is_an_error(tmp_path: Path) -> None:
    lg = judge(image(tmp_path, security=False), checks=("LG-03",))["LG-03"]
    assert lg.status == "error" and "SECURITY hive not in the image" in lg.message["en"]


@pytest.mark.needs_service  # hivexsh writes the changed PolAdtEv into a copy of the corpus SECURITY hive
def test_lg03_file_auditing_on_asks_for_the_folders_sacl(tmp_path: Path) -> None:
    root = image(tmp_path / "on")
    raw = _with_setting(corpus_poladtev(), 16, 3)  # File System: success and failure
    set_values(root / "Windows/System32/config/SECURITY", r"Policy\PolAdtEv", [("@", "hex:0:" + hexbytes(raw))])
    lg = judge(root, load_policy(overrides={"data_paths": [r"D:\顧客"]}), ("LG-03",))["LG-03"]
    assert lg.status == "manual" and r"D:\顧客" in lg.message["ja"] and "SACL" in lg.message["en"]
    half = image(tmp_path / "half")
    set_values(half / "Windows/System32/config/SECURITY", r"Policy\PolAdtEv",
               [("@", "hex:0:" + hexbytes(_with_setting(_with_setting(corpus_poladtev(), 16, 1), 5, 1)))])
    lg = judge(half, checks=("LG-03",))["LG-03"]
    assert lg.status == "fail" and lg.message["en"].endswith("Logon failures; File System failures")
    junk = image(tmp_path / "junk")
    set_values(junk / "Windows/System32/config/SECURITY", r"Policy\PolAdtEv", [("@", "hex:0:" + hexbytes(b"\x01" * 40))])
    assert judge(junk, checks=("LG-03",))["LG-03"].status == "error"


# -- whole images ------------------------------------------------------------------------------------------


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=6000))
def test_garbage_hives_never_pass(noise: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        config = Path(d) / "Windows/System32/config"
        config.mkdir(parents=True)
        for name in ("SYSTEM", "SAM", "SECURITY"):
            (config / name).write_bytes(b"regf" + noise)
        found = judge(Path(d))
    for f in found.values():
        assert f.status == "error", (f.check, f.status, f.message["en"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 262143), st.integers(0, 255)), min_size=1, max_size=40))
def test_damaged_sam_and_security_never_crash_a_judge(flips: list[tuple[int, int]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = image(Path(d))
        for name in ("SAM", "SECURITY"):
            path = root / "Windows/System32/config" / name
            data = bytearray(path.read_bytes())
            for offset, byte in flips:
                if offset < len(data):
                    data[offset] = byte
            path.write_bytes(bytes(data))
        found = judge(root)
    for f in found.values():
        assert "internal error" not in f.message["en"] and "crashed" not in f.message["en"], f.message


@pytest.mark.needs_service  # hivexsh writes the SOFTWARE hive
def test_full_cli_scan_judges_lg03_pm02_pm04_on_windows(tmp_path: Path, run_cli: Any) -> None:
    root = image(tmp_path / "img", software=True)
    rc, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--lang", "en")
    assert rc == 1 and doc is not None
    assert finding(doc, "LG-03")["status"] == "fail"
    assert finding(doc, "PM-02")["status"] == "manual"
    assert finding(doc, "PM-04")["status"] == "fail"
    assert "net localgroup" in finding(doc, "PM-02")["remediation"]["en"]


def test_checks_list_shows_windows_for_the_new_judges(run_cli: Any) -> None:
    rc, _, out, _ = run_cli("checks", "list", "--json")
    rows = {r["id"]: r["platforms"] for r in json.loads(out)}
    assert rc == 0
    for cid in ("LG-03", "PM-02", "PM-04", "MN-03"):
        assert rows[cid][:2] == ["linux", "windows"], cid  # PM-02 judges macOS too (darwin after them)
    assert rows["TX-01"][:3] == ["wifi", "linux", "windows"]


def test_pm02_an_unreadable_member_account_is_an_error_never_a_pass(tmp_path: Path) -> None:
    facts = json.loads(json.dumps(facts_of(image(tmp_path))))
    preston = next(a for a in facts["win_accounts"]["accounts"] if a["name"] == "Preston")
    preston["error"] = {"kind": "hive_corrupted", "message": "F value is 3 bytes"}
    v = pm02_windows(FactSet(facts, {}), with_policy(approved_admins=["nobody"]))
    assert v.status == "error" and "Preston" in str(v.params["reason_en"].params["members"])
    # A member RID with no account at all is a deleted account's leftover SID: it cannot log on.
    preston.pop("error")
    preston["rid"] = 1001
    gone = pm02_windows(FactSet(facts, {}), with_policy(approved_admins=["nobody"]))
    assert gone.status == "pass" and gone.message == "win_pass_none"
    assert gone.evidence["not_counted"][f"{DOMAIN}-1000"] == "no such account (deleted)"


# -- TX-01: saved Wi-Fi profiles ---------------------------------------------------------------------------
# No Windows machine exists here to save a profile, so the files are written in the layout and schema of
# Microsoft's WLAN_profile documentation (the lowest boundary: the XML file WLAN AutoConfig writes).

SECRET = "01000000D08C9DDF0115D1118C7A00C04FC297EB0100000033"


def wlan_profile(name: str, auth: str, enc: str, *, mode: str = "auto", extra: str = "") -> str:
    return f"""<?xml version="1.0"?>{extra}
<WLANProfile xmlns="http://www.microsoft.com/networking/WLAN/profile/v1">
\t<name>{name}</name>
\t<SSIDConfig>
\t\t<SSID>
\t\t\t<hex>{name.encode().hex().upper()}</hex>
\t\t\t<name>{name}</name>
\t\t</SSID>
\t</SSIDConfig>
\t<connectionType>ESS</connectionType>
\t<connectionMode>{mode}</connectionMode>
\t<MSM>
\t\t<security>
\t\t\t<authEncryption>
\t\t\t\t<authentication>{auth}</authentication>
\t\t\t\t<encryption>{enc}</encryption>
\t\t\t\t<useOneX>false</useOneX>
\t\t\t</authEncryption>
\t\t\t<sharedKey>
\t\t\t\t<keyType>passPhrase</keyType>
\t\t\t\t<protected>true</protected>
\t\t\t\t<keyMaterial>{SECRET}</keyMaterial>
\t\t\t</sharedKey>
\t\t</security>
\t</MSM>
</WLANProfile>
"""


def wifi_image(root: Path, profiles: dict[str, str | bytes]) -> Path:
    build_tree(root, ntuser=False, sam=False)
    folder = root / "ProgramData/Microsoft/Wlansvc/Profiles/Interfaces/{8C5D1F36-1D2A-4C89-9A3B-6F1C0E2D4B7A}"
    folder.mkdir(parents=True)
    for i, (_, xml) in enumerate(sorted(profiles.items())):
        (folder / f"{{0000000{i}-0000-0000-0000-000000000000}}.xml").write_bytes(
            xml.encode() if isinstance(xml, str) else xml)
    return root


def tx01(root: Path, **wifi: Any) -> Any:
    from agent.registry import checks as registered
    from collectors.windows.wlan import WIFI_PROFILES

    tf = collect_target(f"rootfs:{root}", [WIFI_PROFILES])
    [f] = evaluate_target(tf, [registered()["TX-01"]], load_policy(overrides={"wifi": wifi} if wifi else None))
    return f


def test_wifi_profiles_are_judged_and_the_key_never_kept(tmp_path: Path) -> None:
    from collectors.windows.wlan import WIFI_PROFILES

    root = wifi_image(tmp_path, {"Office": wlan_profile("Office", "WPA2PSK", "AES"),
                                 "Cafe": wlan_profile("Cafe", "open", "none")})
    tf = collect_target(f"rootfs:{root}", [WIFI_PROFILES])
    assert SECRET not in json.dumps({k: r.data for k, r in tf.facts.items()})
    found = tx01(root)
    assert found.status == "fail" and found.message["en"] == (
        "Wi-Fi links with weak or no encryption: Cafe (open/none, auto): open (no encryption)")
    assert SECRET not in json.dumps(found.evidence) and "Cafe" in found.message["ja"]
    assert "netsh wlan delete profile" in found.remediation["en"]
    assert tx01(root, ssids=["Office"]).status == "pass"
    na = tx01(root, ssids=["Elsewhere"])
    assert na.status == "not_applicable" and "Elsewhere" in na.message["en"]


@pytest.mark.parametrize(("auth", "enc", "status", "words"), [
    ("WPA2PSK", "TKIP", "fail", "TKIP allowed"), ("WPAPSK", "AES", "fail", "WPA1 allowed"),
    ("open", "WEP", "fail", "WEP"), ("shared", "WEP", "fail", "WEP"), ("WPA3SAE", "AES", "pass", "Office"),
    ("WPA2", "AES", "pass", "Office"), ("FancyNewAuth", "AES", "error", "could not be read"),
    ("WPA2PSK", "ROT13", "error", "could not be read")])
def test_wifi_profile_security(tmp_path: Path, auth: str, enc: str, status: str, words: str) -> None:
    f = tx01(wifi_image(tmp_path, {"Office": wlan_profile("Office", auth, enc)}))
    assert f.status == status and words in f.message["en"], f.message


def test_wifi_profiles_with_a_dtd_are_refused_never_parsed(tmp_path: Path) -> None:
    bomb = '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
    root = wifi_image(tmp_path, {"Office": wlan_profile("Office", "WPA2PSK", "AES"),
                                 "Bomb": wlan_profile("Bomb", "WPA2PSK", "AES", extra=bomb)})
    f = tx01(root)
    assert f.status == "error" and "DTD" in f.message["en"]


def test_wifi_profile_in_utf16_and_no_profiles_at_all(tmp_path: Path) -> None:
    xml = wlan_profile("Office", "WPA2PSK", "AES").replace('<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>')
    assert tx01(wifi_image(tmp_path / "a", {"Office": b"\xff\xfe" + xml.encode("utf-16-le")})).status == "pass"
    none = tx01(build_tree(tmp_path / "b", ntuser=False, sam=False))
    assert none.status == "not_applicable"


@given(st.binary(max_size=400))
def test_wifi_profile_parser_never_crashes(raw: bytes) -> None:
    from collectors.windows.wlan import parse_profile

    try:
        p = parse_profile(raw)
    except ValueError:
        return
    assert set(p) >= {"authentication", "encryption"}


# -- MN-03: Task Scheduler -----------------------------------------------------------------------------
# Task definitions written in the Task Scheduler schema (as schtasks /create writes them, UTF-16 with a BOM).

REPORTS = r"C:\ProgramData\mamoru\reports"


def task_xml(*, enabled: str = "true", trigger: str = "true", command: str = r"C:\Program Files\mamoru\mamoru.exe",
             arguments: str = rf"scan --target local --out {REPORTS}") -> bytes:
    xml = f"""<?xml version="1.0" encoding="UTF-16"?>
<Task version="1.2" xmlns="http://schemas.microsoft.com/windows/2004/02/mit/task">
  <RegistrationInfo><URI>\\mamoru\\daily</URI></RegistrationInfo>
  <Triggers>
    <CalendarTrigger>
      <StartBoundary>2026-01-01T03:00:00</StartBoundary>
      <Enabled>{trigger}</Enabled>
      <ScheduleByDay><DaysInterval>1</DaysInterval></ScheduleByDay>
    </CalendarTrigger>
  </Triggers>
  <Settings><Enabled>{enabled}</Enabled></Settings>
  <Actions Context="Author">
    <Exec><Command>{command}</Command><Arguments>{arguments}</Arguments></Exec>
  </Actions>
</Task>
"""
    return b"\xff\xfe" + xml.replace("\n", "\r\n").encode("utf-16-le")


def task_image(root: Path, task: bytes | None, report_age_days: float | None) -> Path:
    import datetime as dt
    import time

    build_tree(root, ntuser=False, sam=False)
    tasks = root / "Windows/System32/Tasks/mamoru"
    tasks.mkdir(parents=True)
    (root / "Windows/System32/Tasks/GoogleUpdateTaskMachineUA").write_bytes(
        task_xml(command=r"C:\Program Files\Google\Update\GoogleUpdate.exe", arguments="/ua /installsource scheduler"))
    if task is not None:
        (tasks / "daily").write_bytes(task)
    reports = root / "ProgramData/mamoru/reports"
    reports.mkdir(parents=True)
    if report_age_days is not None:
        finished = dt.datetime.fromtimestamp(time.time() - report_age_days * 86400, dt.UTC).isoformat()
        (reports / "scan-1.json").write_text(json.dumps({"run": {"finished": finished}}))
    return root


def mn03(root: Path, report_dir: str | None = REPORTS) -> Any:
    from agent.registry import checks as registered
    from collectors.windows.tasks import WINDOWS_SCHEDULE

    policy = load_policy(overrides={"schedule": {"report_dir": report_dir}} if report_dir else None)
    tf = collect_target(f"rootfs:{root}", [WINDOWS_SCHEDULE], policy=policy)
    [f] = evaluate_target(tf, [registered()["MN-03"]], policy)
    return f


def test_mn03_scheduled_task_and_a_recent_report_pass(tmp_path: Path) -> None:
    f = mn03(task_image(tmp_path, task_xml(), 1))
    assert f.status == "pass" and r"Task Scheduler \mamoru\daily" in f.message["en"], f.message
    assert "タスク スケジューラ" in f.message["ja"]


@pytest.mark.parametrize(("task", "age", "status", "words"), [
    (task_xml(), 30, "fail", "30 days old"),
    (task_xml(), None, "fail", "holds no report"),
    (task_xml(enabled="false"), 1, "fail", "No enabled Task Scheduler task"),
    (task_xml(trigger="false"), 1, "fail", "No enabled Task Scheduler task"),
    (None, 1, "fail", "No enabled Task Scheduler task"),
    (b"<!DOCTYPE x [<!ENTITY a 'mamoru scan'>]><Task>&a;</Task>", 1, "error", "DTD"),
])
def test_mn03_windows_failures(tmp_path: Path, task: bytes | None, age: float | None, status: str, words: str) -> None:
    f = mn03(task_image(tmp_path, task, age))
    assert f.status == status and words in f.message["en"], f.message


def test_mn03_a_linux_report_dir_is_not_judged_on_windows(tmp_path: Path) -> None:
    f = mn03(task_image(tmp_path, task_xml(), 1), report_dir=None)
    assert f.status == "error" and "not a Windows path" in f.message["en"]


@given(st.binary(max_size=400))
def test_task_parser_never_crashes(raw: bytes) -> None:
    from collectors.windows.tasks import parse_task

    try:
        t = parse_task(raw)
    except ValueError:
        return
    assert isinstance(t["enabled"], bool)
