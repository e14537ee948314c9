"""Windows PCs from an offline image: the registry seam, platform detection, collectors and judges, end to end.

Every tree is built in tmp_path from the real corpus hives (tests/windows_image.py); statuses follow from the
facts SOURCES.md lists for them.
"""

from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config.policy import load_policy
from agent.runner import collect_target, evaluate_target
from agent.targets.registry import RegQuery, RegType, decode
from agent.targets.rootfs import RootfsTarget
from collectors.windows.accounts import ACCOUNTS
from collectors.windows.sam import parse_domain_f, parse_user_f
from collectors.windows.settings import EVENTLOG, FIREWALL, SCREENLOCK, SMB
from tests.conftest import finding
from tests.windows_image import (
    CORRUPTED_SYSTEM,
    SAM,
    USER_FOLDER,
    USER_SID,
    WIN7_SYSTEM,
    WIN10_SYSTEM,
    add_keys,
    build_tree,
    corpus_hive,
    profile_list,
    set_values,
)

WINDOWS_COLLECTORS = [SCREENLOCK, FIREWALL, SMB, EVENTLOG, ACCOUNTS]
CCS = r"HKLM\SYSTEM\CurrentControlSet"


def target(root: Path) -> RootfsTarget:
    return RootfsTarget(f"rootfs:{root}", str(root))


def scan(root: Path, policy: Any = None, checks: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Collect with the Windows collectors and judge with the registered checks: {check id: finding}."""
    from agent.registry import checks as registered

    every = registered()
    chosen = [every[c] for c in (checks or ("PH-01", "AC-01", "TX-05", "LG-02", "LG-04", "IA-01", "IA-02", "IA-03"))]
    tf = collect_target(f"rootfs:{root}", WINDOWS_COLLECTORS)
    assert tf.system == "windows", tf
    return {f.check: f for f in evaluate_target(tf, chosen, policy or load_policy())}


# -- the seam and its offline backend ----------------------------------------------------------------------


def test_platform_from_the_system_hive_with_case_insensitive_names(tmp_path: Path) -> None:
    info = target(build_tree(tmp_path / "w10", lowercase=True, ntuser=False, sam=False)).platform()
    assert (info.system, info.hostname) == ("windows", "DESKTOP-2KGM189")
    info7 = target(build_tree(tmp_path / "w7", system=WIN7_SYSTEM, ntuser=False, sam=False)).platform()
    assert (info7.system, info7.hostname) == ("windows", "WKS-WIN732BITA")


@pytest.mark.needs_service  # hivexsh writes the SOFTWARE hive (or edits a copy)
def test_platform_version_from_software(tmp_path: Path) -> None:
    info = target(build_tree(tmp_path, software=profile_list())).platform()
    assert info.os_string() == "Windows 10 Pro 22H2 (build 19045)"


def test_a_linux_tree_is_not_windows(make_rootfs: Any) -> None:
    root = make_rootfs({"/etc/os-release": 'ID=debian\nNAME="Debian GNU/Linux"\n', "/etc/hostname": "deb\n"})
    assert target(root).platform().system == "linux"


def test_values_are_typed_and_missing_keys_are_answers(tmp_path: Path) -> None:
    reader = target(build_tree(tmp_path, ntuser=False)).registry()
    smb, lanman, gone, binary = reader.read([
        RegQuery(rf"{CCS}\Services\mrxsmb10", ("Start", "DependOnService", "ImagePath")),
        RegQuery(rf"{CCS}\Services\LanmanServer\Parameters", ("NullSessionPipes",)),
        RegQuery(rf"{CCS}\Services\NoSuchService", ("Start",)),
        RegQuery(rf"{CCS}\Services\LanmanServer\Parameters", ("Guid",)),
    ])
    assert smb.key == r"HKLM\SYSTEM\ControlSet001\Services\mrxsmb10"
    assert smb.fact()["values"] == {"Start": {"type": "REG_DWORD", "value": 2},
                                    "DependOnService": {"type": "REG_MULTI_SZ", "value": ["mrxsmb"]},
                                    "ImagePath": {"type": "REG_EXPAND_SZ", "value": r"system32\DRIVERS\mrxsmb10.sys"}}
    assert lanman.fact()["values"]["NullSessionPipes"] == {"type": "REG_MULTI_SZ", "value": []}
    assert gone.status == "missing" and gone.error is None
    assert binary.fact()["values"]["Guid"] == {"type": "REG_BINARY", "value": "d588dcf89edbb644be3415db95857b96"}


@pytest.mark.needs_service  # hivexsh writes the SOFTWARE hive (or edits a copy)
def test_current_control_set_comes_from_select_current(tmp_path: Path) -> None:
    root = build_tree(tmp_path, system=WIN7_SYSTEM, ntuser=False, sam=False)
    set_values(root / "Windows/System32/config/SYSTEM", "Select",
               [("Current", "dword:0x00000002"), ("Default", "dword:0x00000002"), ("Failed", "dword:0x00000000"),
                ("LastKnownGood", "dword:0x00000001")])
    [a] = target(root).registry().read([RegQuery(rf"{CCS}\Services\mrxsmb10", ("Start",))])
    assert a.key == r"HKLM\SYSTEM\ControlSet002\Services\mrxsmb10"


def test_missing_and_corrupted_hives_are_errors_of_their_own_kind(tmp_path: Path) -> None:
    reader = target(build_tree(tmp_path / "a", system=CORRUPTED_SYSTEM, ntuser=False, sam=False)).registry()
    bad, sw = reader.read([RegQuery(rf"{CCS}\Services\mrxsmb10", ("Start",)),
                           RegQuery(r"HKLM\SOFTWARE\Policies", ())])
    assert bad.status == "error" and bad.error is not None and bad.error.kind == "hive_corrupted"
    assert sw.status == "error" and sw.error is not None and sw.error.kind == "hive_missing"
    garbage = build_tree(tmp_path / "b", ntuser=False, sam=False)
    (garbage / "Windows/System32/config/SAM").write_bytes(b"regf" + b"\x00" * 5000)
    [sam] = target(garbage).registry().read([RegQuery(r"HKLM\SAM\SAM\Domains\Account", ("F",))])
    assert sam.status == "error" and sam.error is not None and sam.error.kind == "hive_corrupted"


@pytest.mark.needs_service  # hivexsh writes the SOFTWARE hive (or edits a copy)
def test_users_resolved_by_sid_through_profile_list(tmp_path: Path) -> None:
    reader = target(build_tree(tmp_path, software=profile_list())).registry()
    [user] = reader.users()  # S-1-5-18 is not a person
    assert (user.sid, user.profile, user.hive) == (USER_SID, rf"C:\Users\{USER_FOLDER}",
                                                   f"/Users/{USER_FOLDER}/NTUSER.DAT")
    [a] = reader.read([RegQuery(r"HKU\*\Control Panel\Desktop", ("ScreenSaveActive",))])
    assert a.user == user and a.key == rf"HKU\{USER_SID}\Control Panel\Desktop"
    assert a.fact()["values"] == {"ScreenSaveActive": {"type": "REG_SZ", "value": "1"}}


def test_users_without_software_are_found_by_folder_and_say_so(tmp_path: Path) -> None:
    [user] = target(build_tree(tmp_path)).registry().users()
    assert user.sid is None and user.id == f"profile:{USER_FOLDER}" and "SID unknown" in user.note


def test_decode_rejects_short_numbers() -> None:
    assert decode(RegType.REG_DWORD, b"\x01\x00\x00\x00") == 1
    assert decode(RegType.REG_SZ, "600\x00junk".encode("utf-16-le")) == "600"
    with pytest.raises(ValueError):
        decode(RegType.REG_DWORD, b"\x01\x00")


# -- judges on the corpus hives --------------------------------------------------------------------------


@pytest.mark.needs_service  # hivexsh writes the SOFTWARE hive (or edits a copy)
def test_win10_image_statuses(tmp_path: Path) -> None:
    found = scan(build_tree(tmp_path, software=profile_list()))
    ph = found["PH-01"]
    assert ph.status == "fail" and USER_SID in ph.message["en"]
    assert "no password on resume" in ph.message["en"] and "ScreenSaverIsSecure" in ph.message["ja"]
    assert "Group Policy" in ph.remediation["en"]  # the Windows remediation, not GNOME's
    assert found["TX-05"].status == "fail" and "mrxsmb10 (Start=2)" in found["TX-05"].message["en"]
    assert found["AC-01"].status == "pass"  # all three profiles EnableFirewall=1, no policy over them
    assert found["LG-02"].status == "error" and "Security.evtx" in found["LG-02"].message["en"]
    assert found["LG-04"].status == "fail" and "overwritten" in found["LG-04"].message["en"]
    assert found["IA-01"].status == "pass"  # Guest and Administrator disabled, Preston a normal account
    guest = next(a for a in found["IA-01"].evidence["accounts"] if a["name"] == "Guest")
    assert guest["disabled"] and guest["password_not_required"]
    assert found["IA-02"].status == "fail" and "length 0 < 8" in found["IA-02"].message["en"]
    assert found["IA-03"].status == "fail" and "never locked" in found["IA-03"].message["en"]


@pytest.mark.needs_service  # hivexsh writes the SOFTWARE hive (or edits a copy)
def test_win7_security_log_is_archived_when_full(tmp_path: Path) -> None:
    found = scan(build_tree(tmp_path, system=WIN7_SYSTEM, software=profile_list()), checks=("LG-02", "LG-04", "AC-01"))
    assert found["LG-02"].status == "pass" and "archived" in found["LG-02"].message["en"]
    assert found["LG-02"].evidence["MaxSize_bytes"] == 4 * 2**20
    assert found["LG-04"].status == "pass"
    assert found["AC-01"].status == "pass"


@pytest.mark.needs_service  # hivexsh writes the SOFTWARE hive (or edits a copy)
def test_security_evtx_in_the_image_turns_the_question_to_a_person(tmp_path: Path) -> None:
    root = build_tree(tmp_path, software=profile_list())
    logs = root / "Windows/System32/winevt/Logs"
    logs.mkdir(parents=True)
    (logs / "Security.evtx").write_bytes(b"ElfFile\x00")
    assert scan(root, checks=("LG-02",))["LG-02"].status == "manual"


def test_without_software_policy_dependent_checks_cannot_tell(tmp_path: Path) -> None:
    found = scan(build_tree(tmp_path))
    for cid in ("PH-01", "AC-01", "LG-02", "LG-04"):
        assert found[cid].status == "error", cid
        assert "SOFTWARE hive not in the image" in found[cid].message["en"], cid
    assert found["TX-05"].status == "fail"  # SMBv1 lives in SYSTEM only


@pytest.mark.needs_service  # hivexsh writes the SOFTWARE hive (or edits a copy)
def test_group_policy_wins_over_local_settings(tmp_path: Path) -> None:
    software = profile_list() | {
        r"Policies\Microsoft\WindowsFirewall\PublicProfile": [("EnableFirewall", "dword:0x00000000")]}
    found = scan(build_tree(tmp_path, software=software), checks=("AC-01",))
    assert found["AC-01"].status == "fail" and "public profile off (policy)" in found["AC-01"].message["en"]


@pytest.mark.needs_service  # hivexsh writes the SOFTWARE hive (or edits a copy)
def test_machine_inactivity_lock_passes_ph01(tmp_path: Path) -> None:
    software = profile_list() | {
        r"Microsoft\Windows\CurrentVersion\Policies\System": [("InactivityTimeoutSecs", "dword:0x0000012c")]}
    ph = scan(build_tree(tmp_path, software=software), checks=("PH-01",))["PH-01"]
    assert ph.status == "pass" and "300" in ph.message["en"]
    off = profile_list() | {
        r"Microsoft\Windows\CurrentVersion\Policies\System": [("InactivityTimeoutSecs", "dword:0x00000000")]}
    assert scan(build_tree(tmp_path / "off", software=off), checks=("PH-01",))["PH-01"].status == "fail"


@pytest.mark.needs_service  # hivexsh writes the SOFTWARE hive (or edits a copy)
def test_user_screen_saver_policy_passes_ph01(tmp_path: Path) -> None:
    root = build_tree(tmp_path, software=profile_list())
    add_keys(root / f"Users/{USER_FOLDER}/NTUSER.DAT", {
        r"Software\Policies\Microsoft\Windows\Control Panel\Desktop": [
            ("ScreenSaveActive", "string:1"), ("ScreenSaverIsSecure", "string:1"),
            ("ScreenSaveTimeOut", "string:300"), ("SCRNSAVE.EXE", r"string:C:\Windows\system32\scrnsave.scr")]})
    ph = scan(root, checks=("PH-01",))["PH-01"]
    assert ph.status == "pass", ph.message


@pytest.mark.needs_service  # hivexsh writes the SOFTWARE hive (or edits a copy)
def test_corrupted_system_hive_is_error_never_pass_never_a_crash(tmp_path: Path) -> None:
    found = scan(build_tree(tmp_path, system=CORRUPTED_SYSTEM, software=profile_list()))
    for cid in ("AC-01", "TX-05", "LG-02", "LG-04"):
        assert found[cid].status == "error", (cid, found[cid].message)
        assert "damaged" in found[cid].message["en"], cid
    assert all(f.status != "pass" or f.check.startswith(("IA-",)) for f in found.values())


# -- the CLI ---------------------------------------------------------------------------------------------


@pytest.mark.needs_service  # hivexsh writes the SOFTWARE hive (or edits a copy)
def test_full_cli_scan_of_a_win10_image(tmp_path: Path, run_cli: Any) -> None:
    root = build_tree(tmp_path / "img", software=profile_list())
    rc, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--lang", "en", "--no-organisation")
    assert rc == 1 and doc is not None
    [t] = doc["targets"]
    assert (t["hostname"], t["os"], t["status"]) == ("DESKTOP-2KGM189", "Windows 10 Pro 22H2 (build 19045)", "ok")
    assert finding(doc, "TX-05")["status"] == "fail"
    assert finding(doc, "PH-01")["status"] == "fail"
    assert finding(doc, "IA-01")["status"] == "pass"
    assert finding(doc, "IA-04")["status"] == "not_applicable"  # sshd: Linux only
    assert "SMB1Protocol" in finding(doc, "TX-05")["remediation"]["en"]


def test_checks_list_shows_windows_platforms(run_cli: Any) -> None:
    rc, _, out, _ = run_cli("checks", "list", "--json")
    rows = {r["id"]: r["platforms"] for r in json.loads(out)}
    assert rc == 0
    for cid in ("PH-01", "AC-01", "TX-05", "LG-02", "LG-04", "IA-01", "IA-02", "IA-03"):
        assert rows[cid][:2] == ["linux", "windows"], cid  # macOS judges add darwin after them
    assert rows["IA-04"] == ["linux"]


# -- binary values under hypothesis ----------------------------------------------------------------------


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=0xFFFFFFFF))
def test_user_f_parser_never_crashes(raw: bytes, rid: int) -> None:
    try:
        f = parse_user_f(raw, rid)
    except ValueError:
        return
    assert f["rid"] == rid and isinstance(f["disabled"], bool)


@given(st.binary(max_size=200))
def test_domain_f_parser_never_crashes(raw: bytes) -> None:
    try:
        d = parse_domain_f(raw)
    except ValueError:
        return
    assert 0 <= d["min_password_length"] <= 128 and 0 <= d["lockout_threshold"] <= 999


def test_user_f_of_the_corpus_sam() -> None:
    from Registry import Registry

    reg = Registry.Registry(io.BytesIO(corpus_hive(SAM)))
    raw = reg.open(r"SAM\Domains\Account\Users\000001F5").value("F").raw_data()
    guest = parse_user_f(raw, 501)
    assert guest["disabled"] and guest["password_not_required"] and "NORMAL" in guest["flags"]
    with pytest.raises(ValueError):
        parse_user_f(raw, 500)  # the F value of another account


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(min_value=0, max_value=262143), st.integers(min_value=0, max_value=255)),
                min_size=1, max_size=40))
def test_damaged_sam_never_crashes_a_collector_or_judge(flips: list[tuple[int, int]]) -> None:
    data = bytearray(corpus_hive(SAM))
    for offset, byte in flips:
        data[offset] = byte
    with tempfile.TemporaryDirectory() as d:
        root = build_tree(Path(d), ntuser=False, sam=False, system=WIN10_SYSTEM)
        (root / "Windows/System32/config/SAM").write_bytes(bytes(data))
        found = scan(root, checks=("IA-01", "IA-02", "IA-03"))
    for f in found.values():
        assert "internal error" not in f.message["en"] and "crashed" not in f.message["en"], f.message


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=9000))
def test_garbage_hives_are_never_a_pass(noise: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        config = root / "Windows/System32/config"
        config.mkdir(parents=True)
        for name in ("SYSTEM", "SAM", "SOFTWARE"):
            (config / name).write_bytes(b"regf" + noise if name != "SOFTWARE" else noise)
        user = root / "Users" / "alice"
        user.mkdir(parents=True)
        (user / "NTUSER.DAT").write_bytes(noise)
        found = scan(root)
    for f in found.values():
        assert f.status == "error", (f.check, f.status, f.message["en"])

