"""AV-01 … AV-05 judges, and the antivirus, clamav and updates collectors on directory targets."""

from __future__ import annotations

import email.utils
import gzip
import lzma
import random
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config.policy import load_policy
from agent.targets.local import LocalTarget
from agent.targets.rootfs import RootfsTarget
from checks import malware
from checks.base import Check, FactSet, Outcome
from collectors.clamav import COLLECTOR as CLAMAV
from collectors.clamav import eicar, parse_header
from collectors.updates import COLLECTOR as UPDATES
from collectors.updates import ListProblem, _decompress, compare_versions, read_index
from tests.clamav_helpers import build_daily
from tests.conftest import finding, require, require_tool

Cli = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
MakeRootfs = Callable[[dict[str, str | bytes]], Path]
NOW = time.time()


def judge(check: Check, facts: dict[str, Any], errors: dict[str, str] | None = None,
          **overrides: Any) -> Outcome:
    return check.evaluate(FactSet(facts, errors or {}), load_policy(overrides=overrides or None))


def procs(*names: str, restricted: bool = False) -> dict[str, Any]:
    return {"processes": [{"pid": 100 + i, "comm": n, "exe": f"/usr/sbin/{n}", "cmdline": [f"/usr/sbin/{n}"]}
                          for i, n in enumerate(names)], "restricted": restricted}


def clamav_facts(*, include: list[str] | None = None, daily: list[dict[str, Any]] | None = None,
                 engine: dict[str, Any] | None = None, problem: dict[str, Any] | None = None) -> dict[str, Any]:
    conf = "/etc/clamav/clamd.conf"
    settings: dict[str, Any] = {"DatabaseDirectory": "/var/lib/clamav"}
    if include:
        settings["OnAccessIncludePath"] = include
    return {"collected_at": NOW, "installed": {"clamd": "/usr/sbin/clamd"},
            "daemons": [{"pid": 100, "comm": "clamd", "config": conf}],
            "configs": {conf: {"settings": settings, "problem": problem}},
            "databases": [{"dir": "/var/lib/clamav", "exists": True, "files": daily or [], "problem": None}],
            "engine": engine}


# --- AV-01 -------------------------------------------------------------------

def test_av01_pass_fail_and_unknown() -> None:
    inst = {"antivirus": {"installed": {"clamav": ["/usr/sbin/clamd"]}}}
    assert judge(malware.AV_01, {**inst, "processes": procs("clamd", "freshclam")}).status == "pass"
    out = judge(malware.AV_01, {**inst, "processes": procs("freshclam")})
    assert out.status == "fail" and "not running" in out.message.en
    assert judge(malware.AV_01, {"antivirus": {"installed": {}}, "processes": procs()}).status == "fail"
    # Only the products the policy approves count.
    out = judge(malware.AV_01, {**inst, "processes": procs("clamd")}, antivirus={"approved_products": ["mdatp"]})
    assert out.status == "fail" and "ClamAV" in out.message.en
    # Installed, but the process list is unavailable or restricted: no guess.
    assert judge(malware.AV_01, inst, errors={"processes": "no /proc"}).status == "error"
    assert judge(malware.AV_01, {**inst, "processes": procs(restricted=True)}).status == "error"


def test_av01_rootfs_cannot_see_processes(make_rootfs: MakeRootfs, run_cli: Cli) -> None:
    root = make_rootfs({"/etc/os-release": "ID=debian\n", "/usr/sbin/clamd": b"\x7fELF"})
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "AV-01")
    assert doc is not None
    assert finding(doc, "AV-01")["status"] == "error"
    bare = make_rootfs({"/etc/os-release": "ID=debian\n"})
    (bare / "usr/sbin/clamd").unlink()
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{bare}", "--check", "AV-01")
    assert doc is not None
    assert finding(doc, "AV-01")["status"] == "fail"  # nothing installed needs no process list to tell


# --- AV-02 -------------------------------------------------------------------

def test_av02() -> None:
    inst = {"antivirus": {"installed": {"clamav": ["/usr/sbin/clamd"]}}}
    ok = judge(malware.AV_02, {**inst, "processes": procs("clamd", "clamonacc"),
                               "clamav": clamav_facts(include=["/srv/data"])})
    assert ok.status == "pass"
    watching_nothing = judge(malware.AV_02, {**inst, "processes": procs("clamd", "clamonacc"),
                                             "clamav": clamav_facts()})
    assert watching_nothing.status == "fail" and "watches nothing" in watching_nothing.message.en
    assert judge(malware.AV_02, {**inst, "processes": procs("clamd"), "clamav": clamav_facts(
        include=["/srv"])}).status == "fail"
    broken = judge(malware.AV_02, {**inst, "processes": procs("clamd", "clamonacc"),
                                   "clamav": clamav_facts(problem={"code": "example_line", "where": "clamd.conf:1"})})
    assert broken.status == "error"
    mdatp = judge(malware.AV_02, {"antivirus": {"installed": {"mdatp": ["/opt/microsoft/mdatp"]}},
                                  "processes": procs("wdavdaemon"), "clamav": clamav_facts()})
    assert mdatp.status == "error" and "console" in mdatp.message.en
    assert judge(malware.AV_02, {"antivirus": {"installed": {}}, "processes": procs(),
                                 "clamav": clamav_facts()}).status == "fail"


def test_av02_lists_data_paths_not_watched() -> None:
    inst = {"antivirus": {"installed": {"clamav": ["/usr/sbin/clamd"]}}}
    out = judge(malware.AV_02, {**inst, "processes": procs("clamd", "clamonacc"),
                                "clamav": clamav_facts(include=["/srv/data"])},
                data_paths=["/srv/data/tenants", "/home/share"])
    assert out.evidence["data_paths_not_watched"] == ["/home/share"]


# --- AV-03 -------------------------------------------------------------------

@pytest.fixture
def clamav_root(tmp_path: Path) -> Callable[..., Path]:
    def make(days_old: float, *, garbage: bool = False) -> Path:
        root = tmp_path / f"root{days_old}{garbage}"
        (root / "usr/sbin").mkdir(parents=True)
        (root / "usr/sbin/clamd").write_bytes(b"\x7fELF")
        (root / "etc/clamav").mkdir(parents=True)
        (root / "etc/clamav/clamd.conf").write_text("LocalSocket /run/clamav/clamd.ctl\n"
                                                   "DatabaseDirectory /var/lib/clamav\n")
        (root / "etc/os-release").write_text("ID=debian\n")
        db = root / "var/lib/clamav"
        if garbage:
            db.mkdir(parents=True)
            (db / "daily.cld").write_bytes(b"\x00" * 600)
        else:
            require_tool("sigtool", "faketime")
            build_daily(db, days_old=days_old)
        return root
    return make


def test_av03_reads_real_cvd_headers(clamav_root: Callable[..., Path], run_cli: Cli) -> None:
    fresh = clamav_root(0)
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{fresh}", "--check", "AV-03")
    assert doc is not None
    f = finding(doc, "AV-03")
    assert f["status"] == "pass", f
    assert f["evidence"]["judged"]["from"] == "daily.cud header"
    old = clamav_root(5)
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{old}", "--check", "AV-03")
    assert doc is not None
    f = finding(doc, "AV-03")
    assert f["status"] == "fail" and 4.9 < f["evidence"]["judged"]["age_days"] < 5.1, f
    # The same header as sigtool reads it.
    info = subprocess.run(["sigtool", f"--info={old}/var/lib/clamav/daily.cud"], capture_output=True, text=True)
    hdr = parse_header((old / "var/lib/clamav/daily.cud").read_bytes())
    assert f"Version: {hdr['version']}" in info.stdout
    assert f"Build time: {hdr['build_time_text'].replace('-', ':')}" in info.stdout


def test_av03_garbage_database_is_error(clamav_root: Callable[..., Path], run_cli: Cli) -> None:
    root = clamav_root(0, garbage=True)
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "AV-03")
    assert doc is not None
    f = finding(doc, "AV-03")
    assert f["status"] == "error" and "ClamAV-VDB" in f["message"]["en"], f


def test_av03_judge_cases() -> None:
    inst = {"antivirus": {"installed": {"clamav": ["/usr/sbin/clamd"]}}}
    custom_only = clamav_facts(daily=[{"name": "local.hdb", "container": False, "size": 40, "mtime": NOW}])
    assert judge(malware.AV_03, {**inst, "clamav": custom_only}).status == "fail"
    # What clamd has loaded outranks the files: an old database in memory fails even if files are new.
    daily = [{"name": "daily.cld", "container": True, "version": 27200, "build_time": NOW - 3600,
              "build_time_text": "x", "problem": None}]
    loaded_old = {"reply": "ClamAV 1.4.6/27100/x", "version": 27100, "build_time": NOW - 6 * 86400, "problem": None}
    out = judge(malware.AV_03, {**inst, "clamav": clamav_facts(daily=daily, engine=loaded_old)})
    assert out.status == "fail" and out.evidence["judged"]["version"] == 27100
    assert judge(malware.AV_03, {**inst, "clamav": clamav_facts(daily=daily)}).status == "pass"
    other = judge(malware.AV_03, {"antivirus": {"installed": {"sophos": ["/opt/sophos-spl"]}},
                                  "clamav": clamav_facts()})
    assert other.status == "error"
    assert judge(malware.AV_03, {"antivirus": {"installed": {}}, "clamav": clamav_facts()}).status == "fail"
    assert judge(malware.AV_03, inst, errors={"clamav": "boom"}).status == "error"


def test_clamav_collector_follows_running_daemon_config_only_when_live(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "usr/sbin").mkdir(parents=True)
    (root / "usr/sbin/clamd").write_bytes(b"")
    (root / "etc/clamav").mkdir(parents=True)
    (root / "etc/clamav/clamd.conf").write_text("Example\nLocalSocket /x\n")
    facts = CLAMAV.collect(RootfsTarget(f"rootfs:{root}", str(root)))
    assert facts["daemons"] == []  # a directory has no running clamd
    assert facts["configs"]["/etc/clamav/clamd.conf"]["problem"] == {"code": "example_line",
                                                                      "where": "/etc/clamav/clamd.conf:1"}


# --- AV-04 -------------------------------------------------------------------

LISTS = "/var/lib/apt/lists"
SEC = "deb.debian.org_debian-security_dists_bookworm-security"


def _release(label: str, suite: str, days_ago: float, codename: str = "bookworm-security") -> str:
    date = email.utils.formatdate(NOW - days_ago * 86400, usegmt=True)
    return (f"Origin: Debian\nLabel: {label}\nSuite: {suite}\nCodename: {codename}\nDate: {date}\n"
            "SHA256:\n 0000 0 main/binary-amd64/Packages\n")


def _status(*pkgs: tuple[str, str]) -> str:
    return "".join(f"Package: {n}\nStatus: install ok installed\nArchitecture: amd64\nVersion: {v}\n"
                   "Description: x\n a continuation line\n\n" for n, v in pkgs)


def _packages(*pkgs: tuple[str, str]) -> str:
    return "".join(f"Package: {n}\nVersion: {v}\nArchitecture: amd64\nFilename: pool/{n}.deb\n\n" for n, v in pkgs)


#: The real compressors, as apt's own helpers would have written the files: (tool, argv to compress stdin).
COMPRESSORS = {"gz": ["gzip", "-c"], "xz": ["xz", "-c"], "bz2": ["bzip2", "-c"], "lz4": ["lz4", "-c"],
               "zst": ["zstd", "-q", "-c"]}


def compress_with_tool(kind: str, data: bytes) -> bytes:
    argv = COMPRESSORS[kind]
    require_tool(argv[0])
    return subprocess.run(argv, input=data, capture_output=True, check=True).stdout


def apt_root(make_rootfs: MakeRootfs, *, pending: bool, days_ago: float = 1, compress: str = "") -> Path:
    files: dict[str, str | bytes] = {
        "/etc/os-release": "ID=debian\n",
        "/var/lib/dpkg/status": _status(("openssl", "3.0.15-1~deb12u1"), ("bash", "5.2.15-2+b7")),
        f"{LISTS}/{SEC}_InRelease": _release("Debian-Security", "oldstable-security", days_ago),
    }
    text = _packages(("openssl", "3.0.17-1~deb12u2" if pending else "3.0.15-1~deb12u1"), ("libc6", "2.36-9"))
    name = f"{LISTS}/{SEC}_main_binary-amd64_Packages"
    if compress == "gz":
        files[name + ".gz"] = gzip.compress(text.encode())
    elif compress == "xz":
        files[name + ".xz"] = lzma.compress(text.encode())
    elif compress in ("lz4", "zst"):
        files[name + "." + compress] = compress_with_tool(compress, text.encode())
    elif compress == "bad-lz4":
        files[name + ".lz4"] = b"\x04\x22\x4d\x18 not decodable here"
    elif compress == "truncated-lz4":
        files[name + ".lz4"] = compress_with_tool("lz4", text.encode())[:-9]
    elif compress == "garbage":
        files[name + ".gz"] = b"not gzip at all"
    else:
        files[name] = text
    return make_rootfs(files)


@pytest.mark.parametrize("compress", ["", "gz", "xz", "lz4", "zst"])
def test_av04_pending_and_clean(make_rootfs: MakeRootfs, compress: str, tmp_path: Path) -> None:
    root = apt_root(make_rootfs, pending=True, compress=compress)
    facts = UPDATES.collect(RootfsTarget(f"rootfs:{root}", str(root)))
    assert facts["pending"] == [{"package": "openssl", "arch": "amd64", "installed": "3.0.15-1~deb12u1",
                                 "candidate": "3.0.17-1~deb12u2", "suite": "oldstable-security"}]
    out = judge(malware.AV_04, {"updates": facts})
    assert out.status == "fail" and "openssl" in out.message.en
    shutil.rmtree(root)
    root = apt_root(make_rootfs, pending=False, compress=compress)
    facts = UPDATES.collect(RootfsTarget(f"rootfs:{root}", str(root)))
    assert judge(malware.AV_04, {"updates": facts}).status == "pass"


def test_av04_stale_lists_and_old_pending(make_rootfs: MakeRootfs) -> None:
    root = apt_root(make_rootfs, pending=False, days_ago=30)
    out = judge(malware.AV_04, {"updates": UPDATES.collect(RootfsTarget(f"rootfs:{root}", str(root)))})
    assert out.status == "fail" and "30" in out.message.en and "index" in out.message.en
    shutil.rmtree(root)
    root = apt_root(make_rootfs, pending=True, days_ago=20)
    out = judge(malware.AV_04, {"updates": UPDATES.collect(RootfsTarget(f"rootfs:{root}", str(root)))})
    assert out.status == "fail" and "pending for 20" in out.message.en
    assert judge(malware.AV_04, {"updates": UPDATES.collect(RootfsTarget(f"rootfs:{root}", str(root)))},
                 updates={"max_pending_days": 30}).status == "fail"  # still pending, age unknown


@pytest.mark.parametrize("compress", ["bad-lz4", "truncated-lz4", "garbage"])
def test_av04_undecodable_index_is_error(make_rootfs: MakeRootfs, compress: str) -> None:
    root = apt_root(make_rootfs, pending=True, compress=compress)
    out = judge(malware.AV_04, {"updates": UPDATES.collect(RootfsTarget(f"rootfs:{root}", str(root)))})
    assert out.status == "error", out


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_index_reads_as_apt_reads_it(tmp_path: Path, kind: str) -> None:
    """Every compression apt may keep lists in, decoded exactly as apt's own ``apt-helper cat-file`` does."""
    helper = "/usr/lib/apt/apt-helper"
    require(Path(helper).exists(), "apt-helper (package apt) is not installed")
    text = _packages(*[(f"pkg{i}", f"1.{i}-{i % 7}") for i in range(3000)]).encode()
    path = tmp_path / f"x_Packages.{kind}"
    path.write_bytes(compress_with_tool(kind, text))
    apt = subprocess.run([helper, "cat-file", str(path)], capture_output=True, check=True).stdout
    assert apt == text
    assert read_index(LocalTarget("local"), str(path)).encode() == apt


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_index_decompression_is_bounded(kind: str) -> None:
    """A hostile host's index may be a decompression bomb: refused past the limit, whatever the format."""
    bomb = compress_with_tool(kind, b"\0" * (4 << 20))
    assert len(bomb) < (1 << 20)
    with pytest.raises(ListProblem) as refused:
        _decompress(f"x.{kind}", bomb, 1_000_000)
    assert refused.value.problem == {"code": "too_large", "path": f"x.{kind}", "limit": 1_000_000}
    assert _decompress(f"x.{kind}", bomb, 4 << 20) == b"\0" * (4 << 20)


def test_av04_missing_lists_or_dpkg(make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({"/etc/os-release": "ID=debian\n", "/var/lib/dpkg/status": _status(("bash", "5"))})
    out = judge(malware.AV_04, {"updates": UPDATES.collect(RootfsTarget(f"rootfs:{root}", str(root)))})
    assert out.status == "error" and "apt" in out.message.en
    (root / "var/lib/dpkg/status").unlink()
    out = judge(malware.AV_04, {"updates": UPDATES.collect(RootfsTarget(f"rootfs:{root}", str(root)))})
    assert out.status == "error" and "dpkg" in out.message.en


def test_av04_no_security_suite_fails(make_rootfs: MakeRootfs) -> None:
    root = make_rootfs({"/var/lib/dpkg/status": _status(("bash", "5")),
                        f"{LISTS}/deb.debian.org_debian_dists_bookworm_InRelease": _release("Debian", "stable", 1, "bookworm"),
                        f"{LISTS}/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages": ""})
    out = judge(malware.AV_04, {"updates": UPDATES.collect(RootfsTarget(f"rootfs:{root}", str(root)))})
    assert out.status == "fail" and "security repository" in out.message.en


def test_version_order_matches_dpkg() -> None:
    require_tool("dpkg")
    pieces = ["1.0", "1.0~rc1", "1.0+b1", "1:0.9", "2.36-9+deb12u4", "2.36-9+deb12u10", "1.0a", "1.0-1~bpo1",
              "1.00", "9.2p1-2+deb12u3", "1~~", "1~", "a", "1.2.3"]
    rng = random.Random(7)
    pairs = [(rng.choice(pieces), rng.choice(pieces)) for _ in range(120)]
    for a, b in pairs:
        ours = compare_versions(a, b)
        lt = subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0
        eq = subprocess.run(["dpkg", "--compare-versions", a, "eq", b]).returncode == 0
        assert (ours < 0) == lt and (ours == 0) == eq, (a, b, ours)


@pytest.mark.needs_service
def test_pending_security_updates_match_apt() -> None:
    """On this machine, against apt itself: the same packages as `apt-get -s dist-upgrade` from -security."""
    require_tool("apt-get")
    facts = UPDATES.collect(LocalTarget())
    require(facts["problem"] is None and any(s.get("security") for s in facts["suites"]),
            "no apt security lists on this machine (run apt-get update)")
    res = subprocess.run(["apt-get", "-s", "-o", "Debug::NoLocking=1", "dist-upgrade"], capture_output=True,
                         text=True, env={"LC_ALL": "C", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, timeout=120)
    apt_security = {line.split()[1] for line in res.stdout.splitlines()
                    if line.startswith("Inst ") and "-security" in line.lower()}
    apt_all = {line.split()[1] for line in res.stdout.splitlines() if line.startswith("Inst ")}
    ours = {p["package"] for p in facts["pending"]}
    require(facts["pending_total"] == len(ours), "more pending updates than the facts list")
    # Every security upgrade apt plans is found; everything found is an upgrade apt plans (a point
    # release can carry a newer version than -security, so apt may name another origin for it).
    assert apt_security <= ours
    assert ours <= apt_all


# --- AV-05 -------------------------------------------------------------------

def test_av05_judge() -> None:
    inst = {"antivirus": {"installed": {"clamav": ["/usr/sbin/clamd"]}}}
    assert judge(malware.AV_05, inst).status == "manual"
    hit = {"engine": "clamd", "detected": True, "signature": "Win.Test.EICAR_HDB-1", "output": "", "problem": None}
    assert judge(malware.AV_05, {**inst, "clamav_eicar": hit}).status == "pass"
    miss = {**hit, "detected": False, "signature": None}
    assert judge(malware.AV_05, {**inst, "clamav_eicar": miss}).status == "fail"
    broke = {**hit, "detected": None, "problem": {"code": "scan_failed", "command": "clamdscan", "exit": 2,
                                                  "output": "connection refused"}}
    assert judge(malware.AV_05, {**inst, "clamav_eicar": broke}).status == "error"
    none = {"engine": None, "detected": None, "signature": None, "output": None, "problem": None}
    assert judge(malware.AV_05, {"antivirus": {"installed": {"sophos": ["/opt/sophos-spl"]}},
                                 "clamav_eicar": none}).status == "manual"
    assert judge(malware.AV_05, {"antivirus": {"installed": {}}, "clamav_eicar": none}).status == "fail"
    assert judge(malware.AV_05, inst, errors={"clamav_eicar": "timed out"}).status == "error"


def test_eicar_string_is_the_standard_one() -> None:
    import hashlib

    assert hashlib.md5(eicar()).hexdigest() == "44d88612fea8a8f36de82e1278abb02f"
