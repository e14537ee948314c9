"""Windows live, part 2: TX-02 listening services, LG-02's oldest Security record, the Wi-Fi network in use now,
and Windows files (Task Scheduler, WLAN profiles) read through a live target (issue 11).

No Windows exists here. The PowerShell batch is a REAL subprocess (the runner the PC itself uses) given the
replaying stand-in ``tests/windows_ps_standin.py``, which checks that stdin is the shipped driver and parts and
answers from ``tests/fixtures/windows_live/*.json`` (documented outputs; sources in that folder's README and
each fixture's ``_sources``). Files of the "live PC" are a real directory laid out as its system volume. Over
SSH, everything is real but the Windows shell and ``powershell.exe`` (stand-ins), and the SFTP server's view of
``/C:/``: a real ``sftp-server`` chrooted, in a user and mount namespace of its own, into a tmpfs where the
test's volume is bind-mounted at ``/C:`` (nothing is written outside the test's temporary folders).
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import agent.targets.ps
from agent.config.policy import Policy, load_policy
from agent.runner import TargetFacts, collect_target, evaluate_target
from agent.targets.base import PlatformInfo
from agent.targets.local import powershell_batch
from agent.targets.powershell import PowerShellBatch
from agent.targets.registry import RegistryReader
from agent.targets.registry_powershell import PowerShellRegistry
from agent.targets.rootfs import RootfsTarget
from agent.targets.ssh import SSHTarget
from agent.targets.ssh_windows import classify
from agent.targets.windows_paths import local_path, sftp_path, system_drive
from collectors.base import Collector
from collectors.listening import COLLECTOR as LISTENING
from collectors.windows.settings import EVENTLOG
from collectors.windows.tasks import WINDOWS_SCHEDULE
from collectors.windows.wlan import WIFI_PROFILES
from reports.model import Finding
from tests.sshd_helpers import SFTP_SERVER, LoginUser, Sshd, SshdLab
from tests.test_windows_offline_more import REPORTS, SECRET, task_xml, wlan_profile
from tests.windows_collect import collect_windows

HERE = Path(__file__).resolve().parent
STANDIN = HERE / "windows_ps_standin.py"
FIXTURES = HERE / "fixtures" / "windows_live"
SCRIPTS = Path(agent.targets.ps.__file__).resolve().parent
STANDIN_ARGV = [sys.executable, str(STANDIN), "powershell", "-NoProfile", "-NonInteractive", "-Command", "-"]
COLLECTORS: list[Collector] = [LISTENING, EVENTLOG, WIFI_PROFILES, WINDOWS_SCHEDULE]
CHECKS = ("TX-02", "LG-02", "TX-01", "MN-03")
WIFI_FOLDER = "ProgramData/Microsoft/Wlansvc/Profiles/Interfaces/{8C5D1F36-1D2A-4C89-9A3B-6F1C0E2D4B7A}"
SECURITY_LOG = r"HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Security"
KEEP = 0xFFFFFFFF


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text("utf-8"))
    return data


def volume(root: Path, profiles: dict[str, str] | None = None, *, task: bool = False) -> Path:
    """A live PC's system volume: its saved Wi-Fi profiles (Microsoft's WLAN_profile schema) and tasks."""
    root.mkdir(parents=True, exist_ok=True)
    if profiles:
        folder = root / WIFI_FOLDER
        folder.mkdir(parents=True)
        for i, (_, xml) in enumerate(sorted(profiles.items())):
            (folder / f"{{0000000{i}-0000-0000-0000-000000000000}}.xml").write_bytes(xml.encode("utf-8"))
    tasks = root / "Windows/System32/Tasks"
    tasks.mkdir(parents=True)
    if task:
        (tasks / "mamoru").mkdir()
        (tasks / "mamoru" / "daily").write_bytes(task_xml())
        reports = root / "ProgramData/mamoru/reports"
        reports.mkdir(parents=True)
        import datetime as dt

        finished = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=20)).isoformat()
        (reports / "scan-1.json").write_text(json.dumps({"run": {"finished": finished}}))
    for p in [root, *root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return root


class LivePC(RootfsTarget):
    """A running Windows PC as mamoru's collectors see it: the PowerShell batch (registry included) and the
    files of its system volume (a real directory, read through the filesystem target code)."""

    kind = "replay"

    def __init__(self, root: Path, batch: PowerShellBatch) -> None:
        super().__init__("replay:pc01", str(root))
        self.batch = batch

    def platform(self) -> PlatformInfo:
        return PlatformInfo(system="windows", hostname="PC01")

    def powershell(self) -> PowerShellBatch:
        return self.batch

    def registry(self) -> RegistryReader:
        return self.shared("windows-registry", lambda: PowerShellRegistry(self.batch))


@pytest.fixture
def replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], PowerShellBatch]:
    monkeypatch.setenv("MAMORU_PS_SCRIPTS", str(SCRIPTS))
    monkeypatch.setenv("MAMORU_PS_LOG", str(tmp_path / "powershell.log"))
    counter = [0]

    def make(data: dict[str, Any]) -> PowerShellBatch:
        counter[0] += 1
        path = tmp_path / f"fixture-{counter[0]}.json"
        path.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
        monkeypatch.setenv("MAMORU_PS_FIXTURE", str(path))
        return powershell_batch(STANDIN_ARGV)

    return make


def launches(tmp_path: Path) -> int:
    log = tmp_path / "powershell.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def policy_with(**over: Any) -> Policy:
    base: dict[str, Any] = {"schedule": {"report_dir": REPORTS}, "logging": {"retention_days": 90}}
    base.update(over)
    return load_policy(overrides=base)


def judge(target: Any, policy: Policy | None = None) -> dict[str, Finding]:
    """Announce, collect concurrently (as the runner does), judge with the registered checks."""
    from agent.registry import checks as registered

    policy = policy or policy_with()
    tf = collect_windows(target, COLLECTORS, policy)
    every = registered()
    return {f.check: f for f in evaluate_target(tf, [every[c] for c in CHECKS], policy)}


def pc(tmp_path: Path, replay: Any, data: dict[str, Any], profiles: dict[str, str] | None = None) -> LivePC:
    return LivePC(volume(tmp_path / "C", profiles), replay(data))


# -- TX-02, LG-02, TX-01 on an exposed PC ---------------------------------------------------------------


def test_an_exposed_pc_fails_tx02_lg02_and_tx01_in_one_powershell(tmp_path: Path, replay: Any) -> None:
    target = pc(tmp_path, replay, fixture("exposed_telnet_open_wifi.json"),
                {"Office": wlan_profile("Office", "WPA2PSK", "AES"),
                 "FreeSpot_Cafe": wlan_profile("FreeSpot_Cafe", "open", "none", mode="manual")})
    found = judge(target)
    assert launches(tmp_path) == 1  # three new parts and the registry: one PowerShell
    tx02 = found["TX-02"]
    assert tx02.status == "fail", tx02.message
    assert "telnet 0.0.0.0:23/tcp (tlntsvr)" in tx02.message["en"]
    assert "ftp 192.168.10.21:21/tcp (svchost)" in tx02.message["en"]
    assert "tlntsvr" in tx02.message["ja"]
    assert "Stop the service in Services" in tx02.remediation["en"]  # the Windows remediation, not systemctl
    # MaxSize is 1 GB, yet the log is overwritten when full and holds 10 days: the real record decides
    lg02 = found["LG-02"]
    assert lg02.status == "fail" and lg02.evidence["oldest_record"]["age_days"] == pytest.approx(10, abs=0.1)
    assert "at most 1024 MB" in lg02.message["en"] and "90 days are required" in lg02.message["en"], lg02.message
    assert "最古の記録は 10 日前" in lg02.message["ja"]
    assert lg02.evidence["MaxSize_bytes"] == 1 << 30 and lg02.evidence["oldest_record"]["record_id"] == 9912004
    # The café's open network is in use now: TX-01 fails even when only "Office" is the organisation's SSID
    for policy in (policy_with(), policy_with(wifi={"ssids": ["Office"]})):
        tx01 = judge(pc(tmp_path / "again", replay, fixture("exposed_telnet_open_wifi.json"),
                        {"Office": wlan_profile("Office", "WPA2PSK", "AES"),
                         "FreeSpot_Cafe": wlan_profile("FreeSpot_Cafe", "open", "none", mode="manual")}),
                     policy)["TX-01"]
        assert tx01.status == "fail", tx01.message
        assert "connected now: FreeSpot_Cafe (open/none, manual)" in tx01.message["en"], tx01.message
        assert "現在接続中: FreeSpot_Cafe" in tx01.message["ja"]
        assert tx01.evidence["current"]["status"] == "connected"
        assert SECRET not in json.dumps(tx01.evidence)
        shutil.rmtree(tmp_path / "again")


def test_the_usual_windows_services_pass_tx02_and_loopback_follows_the_policy(tmp_path: Path,
                                                                              replay: Any) -> None:
    # Windows 11: RPC, SMB (System), mDNS/LLMNR, NTP; a local app on 127.0.0.1 only
    f = judge(pc(tmp_path / "a", replay, fixture("win11_protected.json")))["TX-02"]
    assert f.status == "pass" and f.evidence["endpoints_checked"] == 15, (f.message, f.evidence)
    # ja-JP: RDP (TLS) and SMB on every address, an accounting app's HTTP on 127.0.0.1:8080 only
    ja = fixture("ja_jp_passive_third_party.json")
    f = judge(pc(tmp_path / "b", replay, ja))["TX-02"]
    assert f.status == "pass", f.message
    assert f.evidence["loopback_only_ignored"] == ["http-alt 127.0.0.1:8080/tcp (会計ソフト)"]
    strict = judge(pc(tmp_path / "c", replay, ja), policy_with(plaintext_services={"include_loopback": True}))
    assert strict["TX-02"].status == "fail" and "会計ソフト" in strict["TX-02"].message["ja"]
    allowed = judge(pc(tmp_path / "d", replay, ja), policy_with(plaintext_services={"include_loopback": True,
                                                                                  "allowed_ports": ["8080/tcp"]}))
    assert allowed["TX-02"].status == "pass"


def test_tx02_only_rdp_and_smb_on_loopback_pass(tmp_path: Path, replay: Any) -> None:
    data = fixture("win11_protected.json")
    data["parts"]["listening"] = {"ok": {
        "tcp": [{"LocalAddress": "127.0.0.1", "LocalPort": 3389, "State": 2, "OwningProcess": 1336},
                {"LocalAddress": "::1", "LocalPort": 445, "State": 2, "OwningProcess": 4}],
        "udp": [], "processes": [{"Id": 1336, "ProcessName": "svchost"}, {"Id": 4, "ProcessName": "System"}]}}
    f = judge(pc(tmp_path, replay, data))["TX-02"]
    assert f.status == "pass" and f.evidence["endpoints_checked"] == 2 and f.evidence["plaintext"] == []


# -- LG-02: configured AND actual ------------------------------------------------------------------------


def _with_log(data: dict[str, Any], retention: int, max_size: int = 20 << 20, backup: int | None = None
              ) -> dict[str, Any]:
    values: dict[str, Any] = {"MaxSize": {"type": 4, "data": max_size, "enc": None},
                              "Retention": {"type": 4, "data": retention, "enc": None}}
    if backup is not None:
        values["AutoBackupLogFiles"] = {"type": 4, "data": backup, "enc": None}
    data["registry"]["keys"][SECURITY_LOG] = {"values": values}
    return data


@pytest.mark.parametrize(("retention", "days", "status", "message"), [
    (0, 200, "pass", "oldest record is 200 days old"),
    (0, 10, "fail", "only 10 days old"),
    (KEEP, 120, "pass", "oldest record is 120 days old"),
    (KEEP, 10, "manual", "was cleared"),
    (30 * 86400, 200, "fail", "keeps only 30 days"),
])
def test_lg02_holds_the_oldest_record_against_the_retention(tmp_path: Path, replay: Any, retention: int,
                                                            days: int, status: str, message: str) -> None:
    data = _with_log(fixture("win11_protected.json"), retention, backup=1)
    data["parts"]["eventlog"] = {"ok": {"LogName": "Security", "RecordId": 4242, "TimeCreated": f"@days_ago:{days}"}}
    f = judge(pc(tmp_path, replay, data))["LG-02"]
    assert f.status == status and message in f.message["en"], f.message


def test_lg02_a_security_log_that_cannot_be_read_live_is_an_error(tmp_path: Path, replay: Any) -> None:
    # Get-WinEvent without elevation: access denied (the message is Windows' own, localized: shown, not parsed)
    data = _with_log(fixture("ja_jp_passive_third_party.json"), KEEP, backup=1)
    data["parts"]["eventlog"] = {"error": "試行した操作は許可されていません。"}
    f = judge(pc(tmp_path, replay, data))["LG-02"]
    assert f.status == "error" and "試行した操作は許可されていません" in f.message["ja"], f.message
    assert f.evidence["oldest_record"]["read"] is False


# -- TX-01: the network in use now -----------------------------------------------------------------------


def test_tx01_the_connected_network_is_judged_and_no_wifi_adapter_is_said(tmp_path: Path, replay: Any) -> None:
    ja = fixture("ja_jp_passive_third_party.json")
    good = judge(pc(tmp_path / "a", replay, ja, {"事務所-5G": wlan_profile("事務所-5G", "WPA2PSK", "AES")}))["TX-01"]
    assert good.status == "pass" and "現在接続中: 事務所-5G" in good.message["ja"], good.message
    assert good.evidence["current"]["connected"][0]["adapter"] == "Wi-Fi"
    # Connected, but its saved profile is not there to judge: never a pass
    gone = judge(pc(tmp_path / "b", replay, ja, {"Other": wlan_profile("Other", "WPA2PSK", "AES")}))["TX-01"]
    assert gone.status == "error" and "事務所-5G" in gone.message["en"], gone.message
    # A desktop on Ethernet: "current" is not applicable and says why; no saved profile: not applicable
    wired = judge(pc(tmp_path / "c", replay, fixture("win11_protected.json")))["TX-01"]
    assert wired.status == "not_applicable", wired.message
    assert wired.evidence["current"] == {"status": "not_applicable", "why": "this PC has no Wi-Fi adapter"}


# -- garbage and wrong types: error, never pass ---------------------------------------------------------


@pytest.mark.parametrize("name", ["garbage.json", "wrong_types.json"])
def test_garbage_or_wrong_types_in_each_new_part_is_an_error(tmp_path: Path, replay: Any, name: str) -> None:
    # Everything else would pass: a good Wi-Fi profile, a Security log set to keep its records
    data = _with_log(fixture(name), KEEP, backup=1)
    found = judge(pc(tmp_path, replay, data, {"FreeSpot_Cafe": wlan_profile("FreeSpot_Cafe", "WPA2PSK", "AES")}))
    for cid in ("TX-02", "LG-02", "TX-01"):
        assert found[cid].status == "error", (cid, found[cid].message)


@pytest.mark.parametrize(("part", "answer"), [
    ("listening", {"tcp": [{"LocalAddress": "0.0.0.0", "LocalPort": 99999, "State": 2, "OwningProcess": 4}],
                   "udp": [], "processes": []}),
    ("listening", {"tcp": [{"LocalAddress": "not-an-ip", "LocalPort": 23, "State": 2, "OwningProcess": 4}],
                   "udp": [], "processes": []}),
    ("listening", {"tcp": [], "udp": []}),
    ("listening", [1, 2]),
    ("eventlog", {"LogName": "Security", "RecordId": 1, "TimeCreated": "yesterday"}),
    ("eventlog", {"LogName": "Security", "RecordId": 1, "TimeCreated": "2026-01-01T00:00:00"}),
    ("eventlog", {"LogName": "Security", "RecordId": True, "TimeCreated": "@days_ago:200"}),
    ("eventlog", {"LogName": "Security", "RecordId": 1, "TimeCreated": "@days_ago:-30"}),
    ("wlancurrent", {"adapters": [{"Name": "Wi-Fi", "InterfaceIndex": "17"}], "connections": []}),
    ("wlancurrent", {"adapters": {}, "connections": []}),
    ("wlancurrent", "Wi-Fi"),
])
def test_each_wrong_answer_is_an_error(tmp_path: Path, replay: Any, part: str, answer: Any) -> None:
    data = _with_log(fixture("win11_protected.json"), KEEP, backup=1)
    data["parts"][part] = {"ok": answer}
    cid = {"listening": "TX-02", "eventlog": "LG-02", "wlancurrent": "TX-01"}[part]
    f = judge(pc(tmp_path, replay, data))[cid]
    assert f.status == "error", f.message


# -- an offline image ------------------------------------------------------------------------------------


@pytest.mark.needs_service  # hivexsh writes the SOFTWARE hive
def test_an_offline_image_says_what_needs_a_running_system(tmp_path: Path) -> None:
    from agent.registry import checks as registered
    from tests.windows_image import build_tree, profile_list

    root = build_tree(tmp_path / "img", software=profile_list(), ntuser=False, sam=False)
    policy = policy_with()
    tf = collect_target(f"rootfs:{root}", COLLECTORS, policy=policy)
    assert tf.system == "windows" and all(r.error is None for r in tf.facts.values()), tf.facts
    every = registered()
    found = {f.check: f for f in evaluate_target(tf, [every[c] for c in CHECKS], policy)}
    assert found["TX-02"].status == "not_applicable" and "no running system" in found["TX-02"].message["en"]
    assert "稼働中" in found["TX-02"].message["ja"]
    assert found["LG-02"].evidence["oldest_record"]["read"] is False
    assert "not read" in found["LG-02"].evidence["oldest_record"]["why"]
    assert found["TX-01"].evidence["current"]["status"] == "not_applicable"


# -- the path mapping ------------------------------------------------------------------------------------


def test_one_mapping_from_the_system_volume_root() -> None:
    assert sftp_path("/Windows/System32/Tasks", "C:") == "/C:/Windows/System32/Tasks"
    assert sftp_path("/", "d:") == "/D:/"
    assert sftp_path("/ProgramData/./Microsoft//Wlansvc", "C:") == "/C:/ProgramData/Microsoft/Wlansvc"
    assert local_path("/Windows/System32/Tasks", "C:") == "C:\\Windows\\System32\\Tasks"
    assert local_path("/", "E:") == "E:\\"
    assert system_drive("%SystemDrive%") == "C:" and system_drive("") == "C:" and system_drive("d:") == "D:"
    for bad in ("/Windows/../../D:/x", "Windows/System32", "/C:/Windows", "/Windows\\System32"):
        with pytest.raises(ValueError):
            sftp_path(bad, "C:")


def test_the_probe_tells_the_system_drive() -> None:
    assert classify(b"Windows_NT PC01 D: $env:OS $env:COMPUTERNAME $env:SystemDrive\r\n") == ("cmd", "PC01", "D:")
    assert classify(b"%OS%\r\n%COMPUTERNAME%\r\n%SystemDrive%\r\nWindows_NT\r\nPC01\r\nC:\r\n") == \
        ("powershell", "PC01", "C:")
    assert classify(b"%OS% %COMPUTERNAME% %SystemDrive% :OS :COMPUTERNAME :SystemDrive\n") == ("posix", "", "")


# -- over a real sshd ------------------------------------------------------------------------------------

CHROOT_SFTP = """set -e
R={root}
mount -t tmpfs -o mode=755 mm5sftp "$R"
mkdir "$R/usr" "$R/{drive}" "$R/dev" "$R/etc"
: > "$R/dev/null"; mount --bind /dev/null "$R/dev/null"
echo "root:x:0:0:mamoru test:/:/bin/sh" > "$R/etc/passwd"; echo "root:x:0:" > "$R/etc/group"
ln -s usr/lib "$R/lib"; ln -s usr/lib64 "$R/lib64"; ln -s usr/bin "$R/bin"
mount --rbind /usr "$R/usr"
mount --bind {volume} "$R/{drive}"
exec {chroot} "$R" {sftp}
"""


class WindowsSftpLab:
    """A user whose "Windows" shell is the stand-in, and whose SFTP subsystem serves ``/C:/`` from a folder:
    the real sftp-server, chrooted in a user+mount namespace of its own (unprivileged: nothing is mounted
    outside it) into a tmpfs with ``usr``, ``/dev/null`` and the test's volume bind-mounted, and a passwd file
    naming the namespace's root (sftp-server looks its user up). The volume is re-created per test."""

    def __init__(self, lab: SshdLab, shell: str, uid: int) -> None:
        self.lab = lab
        root = lab.root / f"winsftp-{shell}"
        (root / "bin").mkdir(parents=True)
        standin = root / "windows_ps_standin.py"
        shutil.copy(STANDIN, standin)
        self.fixture = root / "fixture.json"
        self.log = root / "powershell.log"
        self.log.write_text("")
        self.log.chmod(0o666)
        self.volume = root / "volume"
        newroot = root / "newroot"
        newroot.mkdir()
        chroot = root / "sftp-chroot.sh"
        chroot.write_text(CHROOT_SFTP.format(root=newroot, volume=self.volume, drive="C:", sftp=SFTP_SERVER,
                                             chroot=shutil.which("chroot") or "/usr/sbin/chroot"))
        exe = root / "bin" / "powershell.exe"
        exe.write_text(f'#!/bin/sh\nexec /usr/bin/python3 {standin} powershell "$@"\n')
        login = root / "shell"
        login.write_text(f'#!/bin/sh\nif [ "$1" = "-c" ] && [ "$2" = "{SFTP_SERVER}" ]; then\n'
                         f'  exec unshare -r -m /bin/sh {chroot}\nfi\n'
                         f'MAMORU_STANDIN_SHELL={shell}; export MAMORU_STANDIN_SHELL\n'
                         f'exec /usr/bin/python3 {standin} shell "$@"\n')
        for p in (exe, login, chroot, standin):
            p.chmod(0o755)
        for p in (root, root / "bin", newroot):
            p.chmod(0o755)
        self.user = LoginUser(f"mm5wsftp{shell[:2]}", uid, shell=str(login))
        env = {"PATH": f"{root / 'bin'}:/usr/bin:/bin", "MAMORU_PS_FIXTURE": str(self.fixture),
               "MAMORU_PS_SCRIPTS": str(SCRIPTS), "MAMORU_PS_LOG": str(self.log),
               "MAMORU_STANDIN_COMPUTERNAME": "JIMUSHO-PC02"}
        self.server: Sshd = lab.sshd(users=[self.user],
                                     extra_config="SetEnv " + " ".join(f"{k}={v}" for k, v in env.items()) + "\n")

    def use(self, data: dict[str, Any], profiles: dict[str, str] | None = None, *, task: bool = False) -> None:
        self.fixture.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
        self.fixture.chmod(0o644)
        self.log.write_text("")
        if self.volume.exists():
            shutil.rmtree(self.volume)
        volume(self.volume, profiles, task=task)

    def launches(self) -> int:
        return len(self.log.read_text().splitlines())

    def spec(self) -> str:
        return self.server.spec(self.user.name)


@pytest.fixture(scope="module", params=["cmd", "powershell"])
def winsftp(request: pytest.FixtureRequest, lab: SshdLab) -> Iterator[WindowsSftpLab]:
    from tests.conftest import require_tool

    require_tool("unshare", "chroot")
    yield WindowsSftpLab(lab, request.param, 45311 if request.param == "cmd" else 45312)


def _ssh_judge(winsftp: WindowsSftpLab, policy: Policy | None = None) -> tuple[TargetFacts, dict[str, Finding]]:
    from agent.registry import checks as registered

    policy = policy or policy_with()
    tf = collect_target(winsftp.spec(), COLLECTORS, target_options=winsftp.lab.options(), policy=policy)
    assert tf.system == "windows" and tf.status == "ok", (tf.status, tf.error)
    every = registered()
    return tf, {f.check: f for f in evaluate_target(tf, [every[c] for c in CHECKS], policy)}


@pytest.mark.needs_service
@pytest.mark.needs_root
def test_the_new_parts_over_a_real_sshd(winsftp: WindowsSftpLab) -> None:
    winsftp.use(fixture("exposed_telnet_open_wifi.json"),
                {"FreeSpot_Cafe": wlan_profile("FreeSpot_Cafe", "open", "none", mode="manual")})
    tf, found = _ssh_judge(winsftp)
    assert winsftp.launches() == 1
    assert found["TX-02"].status == "fail" and "telnet 0.0.0.0:23/tcp (tlntsvr)" in found["TX-02"].message["en"]
    assert tf.facts["listening"].data["via"].startswith("ssh (")
    assert found["LG-02"].status == "fail" and found["LG-02"].evidence["oldest_record"]["record_id"] == 9912004
    assert found["TX-01"].status == "fail" and "connected now: FreeSpot_Cafe" in found["TX-01"].message["en"]
    # Garbage over SSH: the listening part's answer makes that collector an error, the others judge error
    winsftp.use(_with_log(fixture("garbage.json"), KEEP, backup=1))
    from agent.registry import checks as registered

    policy = policy_with()
    tf = collect_target(winsftp.spec(), COLLECTORS, target_options=winsftp.lab.options(), policy=policy)
    assert tf.facts["listening"].error is not None and "garbage" in tf.facts["listening"].error
    every = registered()
    garbage = {f.check: f for f in evaluate_target(tf, [every[c] for c in CHECKS], policy)}
    assert {garbage[c].status for c in ("TX-02", "LG-02", "TX-01")} == {"error"}


@pytest.mark.needs_service
@pytest.mark.needs_root
def test_windows_files_are_read_over_sftp_at_their_drive_paths(winsftp: WindowsSftpLab) -> None:
    """MN-03 and TX-01 read ``/C:/Windows/System32/Tasks`` and ``/C:/ProgramData/...`` through the real
    sftp-server: the collectors name them from the volume's root, the SSH target maps them."""
    from agent.targets import open_target

    data = fixture("ja_jp_passive_third_party.json")
    winsftp.use(data, {"事務所-5G": wlan_profile("事務所-5G", "WPA2PSK", "AES")}, task=True)
    tf, found = _ssh_judge(winsftp)
    assert found["MN-03"].status == "pass" and r"Task Scheduler \mamoru\daily" in found["MN-03"].message["en"], \
        found["MN-03"].message
    assert found["TX-01"].status == "pass" and "事務所-5G" in found["TX-01"].message["ja"], found["TX-01"].message
    profile = tf.facts["win_wifi_profiles"].data["profiles"][0]
    assert profile["path"] == "/" + WIFI_FOLDER + "/{00000000-0000-0000-0000-000000000000}.xml"
    assert SECRET not in json.dumps({k: r.data for k, r in tf.facts.items()})
    # The SFTP server really is asked for /C:/...: its own view, through the same connection
    target = open_target(winsftp.spec(), **winsftp.lab.options())
    assert isinstance(target, SSHTarget)
    try:
        assert target.remote_path("/Windows/System32/Tasks") == "/C:/Windows/System32/Tasks"
        assert target.list_dir("/Windows/System32/Tasks") == ["mamoru"]
        assert "mamoru" in target.files.list_dir("/C:/Windows/System32/Tasks")
        with pytest.raises(Exception, match="no such"):
            target.files.list_dir("/Windows/System32/Tasks")  # unmapped, the path does not exist there
    finally:
        target.close()
    # No task file there (a non-administrator cannot list Tasks on a real PC): MN-03 is never a pass
    winsftp.use(data)
    _, found = _ssh_judge(winsftp)
    assert found["MN-03"].status == "fail", found["MN-03"].message


def test_fixture_sources_are_noted() -> None:
    readme = (FIXTURES / "README.md").read_text("utf-8")
    for key in ("listening", "eventlog", "wlancurrent"):
        assert f"**{key}**" in readme
    for name in ("exposed_telnet_open_wifi.json", "win11_protected.json", "ja_jp_passive_third_party.json"):
        data = fixture(name)
        assert any("Get-NetTCPConnection" in s for s in data["_sources"])
        assert all(p in data["parts"] for p in ("listening", "eventlog", "wlancurrent"))
    garbage = fixture("garbage.json")["parts"]["eventlog"]["raw"]
    with pytest.raises(ValueError):
        json.loads(base64.b64decode(garbage))  # valid base64 of broken JSON: the frame decodes, the JSON does not
