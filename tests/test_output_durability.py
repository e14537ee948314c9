"""The report survives its directory: hostile neighbours, unwritable outputs, and ``kill -9`` mid-write.

Everything here runs the real ``mamoru scan`` / ``verify --chain`` (in-process or as a subprocess that is
really killed with SIGKILL) and the real ``ssh-keygen`` for keys and signature checks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.cli.main import main
from reports.atomic import STALE_AFTER_S, clean_stale_temps
from reports.chain import find_previous, verify_chain
from reports.signing.publish import STEPS, TEST_PAUSE_ENV
from tests.conftest import require, require_root, require_tool, validate_report
from tests.signing_helpers import HARDENED, IDENTITY, NS, need_ssh_keygen, public_key_text, ssh_keygen_key, ssh_verify

Run = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
REPO = Path(__file__).resolve().parents[1]
SCAN = ["scan", "--target", f"rootfs:{HARDENED}", "--check", "PM-01", "--quiet"]
#: 4 KB of nesting: deeper than json.loads can recurse.
NESTED = b"[" * 2000 + b"]" * 2000


@pytest.fixture(scope="module")
def ssh_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(private key made by the real ssh-keygen, allowed_signers file trusting it)."""
    need_ssh_keygen()
    base = tmp_path_factory.mktemp("key")
    key = ssh_keygen_key(base / "id_ed25519", comment=IDENTITY)
    allowed = base / "allowed_signers"
    allowed.write_text(f'{IDENTITY} namespaces="{NS}" {public_key_text(key)}\n')
    return key, allowed


def scan_to(out: Path, *extra: str, key: Path | None = None) -> tuple[int, dict[str, Any] | None]:
    argv = [*SCAN, "--output", str(out), *extra, *(["--sign-key", str(key)] if key else [])]
    rc = main(argv)
    doc = json.loads(out.read_bytes()) if out.exists() else None
    if doc is not None:
        validate_report(doc)
    return rc, doc


def verify_dir(run_cli: Run, directory: Path, allowed: Path) -> tuple[int, str, str]:
    rc, _, out, err = run_cli("verify", "--chain", str(directory), "--allowed-signers", str(allowed))
    return rc, out, err


def temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp"))


# --- 12: what lies beside the reports ------------------------------------------------------------------


def test_deeply_nested_json_beside_the_reports_does_not_cost_the_scan(
        run_cli: Run, tmp_path: Path, ssh_key: tuple[Path, Path]) -> None:
    key, allowed = ssh_key
    scan_to(tmp_path / "r1.json", key=key)
    (tmp_path / "deep.json").write_bytes(NESTED)  # someone else's file: not a report, no .sig
    rc, _, _, err = run_cli(*SCAN, "--output", str(tmp_path / "r2.json"), "--sign-key", str(key))
    assert rc == 0, err
    doc = json.loads((tmp_path / "r2.json").read_bytes())
    assert doc["run"]["previous"]["file"] == "r1.json"
    rc, out, err = verify_dir(run_cli, tmp_path, allowed)
    assert rc == 0, err
    assert "chain OK: 2 reports" in out and "deep.json" not in out + err


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "with-sig"])
def test_a_damaged_report_that_nests_too_deeply_is_named_never_a_crash(
        run_cli: Run, tmp_path: Path, ssh_key: tuple[Path, Path], signed: bool) -> None:
    """A file that begins like a mamoru report (or has a .sig) but cannot be parsed is a damaged report."""
    key, allowed = ssh_key
    scan_to(tmp_path / "r1.json", key=key)
    evil = tmp_path / "r0.json"
    evil.write_bytes(b'{\n  "schema": "mamoru-report/1",\n  "run": ' + NESTED + b"}\n")
    if signed:
        shutil.copy(tmp_path / "r1.json.sig", tmp_path / "r0.json.sig")
    rc, _, _, err = run_cli(*SCAN, "--output", str(tmp_path / "r2.json"), "--sign-key", str(key))
    assert rc == 0, err
    assert json.loads((tmp_path / "r2.json").read_bytes())["run"]["previous"]["file"] == "r1.json"
    rc, out, err = verify_dir(run_cli, tmp_path, allowed)
    assert rc == 1, err
    assert "r0.json was altered: not valid JSON (nested too deeply)" in out
    assert "chain broken at r0.json" in err and "internal error" not in err


def test_a_large_json_file_that_is_not_a_report_is_never_read_whole(tmp_path: Path) -> None:
    """Recognised from its first bytes: 40 MB beside the reports cost a few KB, not a parse (was ~27x)."""
    assert main([*SCAN, "--output", str(tmp_path / "r1.json")]) == 0
    with (tmp_path / "export.json").open("wb") as fh:
        fh.write(b'{"rows": "' + b"x" * (40 << 20) + b'"}')
    scope = str(tmp_path.resolve())
    tracemalloc.start()
    try:
        previous, _ = find_previous(tmp_path, scope)
        result = verify_chain(tmp_path, lambda r: None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert previous is not None and previous["file"] == "r1.json"
    assert [r.name for r in result.series[scope]] == ["r1.json"] and result.problems == []
    assert peak < 4 << 20, f"peak {peak} bytes"


def test_a_report_that_cannot_be_linked_is_still_written(run_cli: Run, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Linking reads the neighbours; when that fails (here: the listing fails with EIO), the finished scan
    is written unlinked, said so, and the exit code is 3."""
    from reports import chain

    scan_to(tmp_path / "r1.json")

    def broken(directory: str | Path) -> list[Path]:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(directory))

    monkeypatch.setattr(chain, "_candidates", broken)
    rc, doc, _, err = run_cli(*SCAN, "--output", str(tmp_path / "r2.json"))
    assert rc == 3, err
    assert doc is not None and doc["run"]["previous"] is None
    assert "report written to" in err and "NOT LINKED" in err and "Input/output error" in err
    assert "not linked to the report before it" in err and "internal error" not in err
    monkeypatch.undo()
    result = verify_chain(tmp_path, lambda r: None)
    assert any("r2.json starts a new chain" in p.message for p in result.problems)


# --- 12: outputs that cannot be written are refused before the scan -------------------------------------


def test_evaluate_refuses_an_output_whose_parent_is_a_file(run_cli: Run, tmp_path: Path) -> None:
    bundle = tmp_path / "facts.bundle.json"
    rc, _, _, err = run_cli("collect", "--target", f"rootfs:{HARDENED}", "--check", "PM-01", "--quiet",
                            "--output", str(bundle))
    assert rc == 0, err
    plain = tmp_path / "plain.txt"
    plain.write_text("a file, not a directory\n")
    for argv in (["evaluate", str(bundle)], [*SCAN], ["collect", "--target", f"rootfs:{HARDENED}", "--quiet"]):
        rc, _, _, err = run_cli(*argv, "--output", str(plain / "report.json"), report=False)
        assert rc == 2, (argv, err)
        assert f"{plain} is not a directory" in err and "report written" not in err


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[None]:
    """``chattr +i``: not even root may change it (root ignores permission bits, so those prove nothing)."""
    require_root()
    require_tool("chattr")
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, timeout=30)
    require(done.returncode == 0, f"chattr +i does not work here: {done.stderr.decode(errors='replace')}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True, capture_output=True, timeout=30)


def test_an_immutable_output_directory_is_refused_before_the_scan(run_cli: Run, tmp_path: Path) -> None:
    d = tmp_path / "reports"
    d.mkdir()
    with immutable(d):
        rc, _, _, err = run_cli(*SCAN, "--output", str(d / "r1.json"))
        assert os.listdir(d) == []
    assert rc == 2, err
    assert "cannot write in the directory" in err and "Operation not permitted" in err
    assert "report written" not in err


def test_an_immutable_signature_file_is_refused_before_the_scan(run_cli: Run, tmp_path: Path,
                                                                ssh_key: tuple[Path, Path]) -> None:
    """An old OUTPUT.sig that cannot be replaced: the scan used to run, write the report and fail at the .sig
    (exit 3, the report left unsigned)."""
    out = tmp_path / "latest.json"
    scan_to(out, key=ssh_key[0])
    before = out.read_bytes()
    with immutable(Path(f"{out}.sig")):
        rc, _, _, err = run_cli(*SCAN, "--output", str(out), "--sign-key", str(ssh_key[0]))
    assert rc == 2, err
    assert "latest.json.sig is read-only" in err and out.read_bytes() == before


def test_a_read_only_mount_is_refused_before_the_scan(tmp_path: Path) -> None:
    require_root()
    require_tool("unshare", "mount")
    d = tmp_path / "reports"
    d.mkdir()
    # A private mount namespace: the read-only bind mount exists for this one command only.
    wrap = ["unshare", "-m", "--", "sh", "-c", 'mount --bind -o ro "$1" "$1" && shift && exec "$@"', "sh", str(d)]
    probe = subprocess.run([*wrap, "true"], capture_output=True, timeout=60)
    require(probe.returncode == 0, f"no read-only bind mount here: {probe.stderr.decode(errors='replace')}")
    done = subprocess.run([*wrap, sys.executable, "-m", "agent.cli.main", *SCAN, "--output", str(d / "r1.json")],
                          cwd=REPO, capture_output=True, timeout=120)
    err = done.stderr.decode(errors="replace")
    assert done.returncode == 2, err
    assert "cannot write in the directory" in err and "Read-only file system" in err
    assert os.listdir(d) == []


def test_a_real_unprivileged_user_is_refused_before_the_scan() -> None:
    """As nobody (setpriv), into a directory owned by root, mode 0755."""
    require_root()
    require_tool("setpriv")
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    env = {**os.environ, "HOME": "/nonexistent"}
    probe = subprocess.run([*as_nobody, sys.executable, "-c", "import agent.cli.main"], cwd=REPO, env=env,
                           capture_output=True, timeout=60)
    require(probe.returncode == 0, f"nobody cannot run this Python or read the tree: {probe.stderr!r}")
    d = Path(tempfile.mkdtemp(prefix="mamoru-ro-", dir="/tmp"))  # pytest's tmp_path is 0700: not traversable
    try:
        d.chmod(0o755)
        done = subprocess.run([*as_nobody, sys.executable, "-m", "agent.cli.main", *SCAN, "--output",
                               str(d / "r1.json")], cwd=REPO, env=env, capture_output=True, timeout=120)
        err = done.stderr.decode(errors="replace")
        assert done.returncode == 2, err
        assert "cannot write in the directory" in err and "Permission denied" in err
        assert os.listdir(d) == []
    finally:
        shutil.rmtree(d)


# --- 13: kill -9 while the report and its signature are written ------------------------------------------


def start_paused_scan(out: Path, key: Path, step: str, log: Path) -> subprocess.Popen[bytes]:
    """The real ``mamoru scan`` as a subprocess that stops at ``step`` of publishing (and says so)."""
    env = {**os.environ, TEST_PAUSE_ENV: step}
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "agent.cli.main", *SCAN, "--output", str(out),
                                 "--sign-key", str(key)], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=fh)
    deadline = time.monotonic() + 60
    while f"paused at {step}" not in log.read_text(errors="replace"):
        assert proc.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, "the scan never reached the step"
        time.sleep(0.02)
    return proc


def kill9(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL


def wait_until_stale(directory: Path) -> None:
    """Temp files count as abandoned only once STALE_AFTER_S old (and unlocked): wait that long."""
    newest = max((p.stat().st_mtime for p in directory.iterdir() if p.name.endswith(".tmp")), default=0.0)
    time.sleep(max(0.0, newest + STALE_AFTER_S + 0.1 - time.time()))


def assert_consistent(run_cli: Run, directory: Path, allowed: Path, reports: int) -> None:
    """verify --chain passes, no temp file is left, and the real ssh-keygen accepts every report's .sig."""
    rc, out, err = verify_dir(run_cli, directory, allowed)
    assert rc == 0, out + err
    assert f"chain OK: {reports} reports" in out
    assert temps(directory) == []
    for report in directory.glob("*.json"):
        code, said = ssh_verify(allowed, Path(f"{report}.sig"), report.read_bytes())
        assert code == 0, said


#: What a kill at each step leaves: (report there, its .sig there).
AFTER_KILL = {"linked": (False, False), "report-staged": (False, False), "sig-staged": (False, False),
              "sig-renamed": (False, True), "report-renamed": (True, True)}


@pytest.mark.parametrize("step", STEPS)
def test_kill_9_at_each_step_of_publishing_leaves_a_consistent_series(
        run_cli: Run, tmp_path: Path, ssh_key: tuple[Path, Path], step: str) -> None:
    key, allowed = ssh_key
    d = tmp_path / "reports"
    d.mkdir()
    assert scan_to(d / "r1.json", key=key)[0] == 0
    kill9(start_paused_scan(d / "r2.json", key, step, tmp_path / "scan.log"))
    has_report, has_sig = AFTER_KILL[step]
    assert ((d / "r2.json").exists(), (d / "r2.json.sig").exists()) == (has_report, has_sig)
    assert bool(temps(d)) == (step in ("report-staged", "sig-staged", "sig-renamed"))
    wait_until_stale(d)
    rc, doc = scan_to(d / "r3.json", key=key)
    assert rc == 0 and doc is not None
    assert doc["run"]["previous"]["file"] == ("r2.json" if has_report else "r1.json")
    assert_consistent(run_cli, d, allowed, 3 if has_report else 2)


def test_kill_9_between_the_renames_over_the_same_path_is_detected(
        run_cli: Run, tmp_path: Path, ssh_key: tuple[Path, Path]) -> None:
    """Overwriting one path: killed between the .sig and the report rename, the old report sits beside the
    new .sig, and verify --chain says the signature does not hold (never a silent pass)."""
    key, allowed = ssh_key
    d = tmp_path / "reports"
    d.mkdir()
    scan_to(d / "latest.json", key=key)
    kill9(start_paused_scan(d / "latest.json", key, "sig-renamed", tmp_path / "scan.log"))
    rc, out, err = verify_dir(run_cli, d, allowed)
    assert rc == 1 and "chain broken at latest.json" in err, out + err


def test_a_signed_scan_does_not_link_onto_an_unsigned_report_of_a_signed_series(
        run_cli: Run, tmp_path: Path, ssh_key: tuple[Path, Path]) -> None:
    """The state the old order left after a kill between the report and its .sig: the next signed report
    used to link onto the unsigned one, for good."""
    key, allowed = ssh_key
    for n in (1, 2):
        scan_to(tmp_path / f"r{n}.json", key=key)
    (tmp_path / "r2.json.sig").unlink()
    rc, doc, _, err = run_cli(*SCAN, "--output", str(tmp_path / "r3.json"), "--sign-key", str(key))
    assert rc == 0 and doc is not None, err
    assert doc["run"]["previous"]["file"] == "r1.json"
    assert "r2.json (run " in err and "has no signature although this series is signed" in err
    rc, doc, _, err = run_cli(*SCAN, "--output", str(tmp_path / "r4.json"), "--sign-key", str(key))
    assert doc is not None and doc["run"]["previous"]["file"] == "r3.json"
    assert "no signature" not in err and "newest reports" not in err  # said once, not at every scan
    rc, out, err = verify_dir(run_cli, tmp_path, allowed)
    assert rc == 1 and "r2.json: no signature file" in out  # the unsigned report stays visible


LOOP = """
import sys, time
from pathlib import Path
from agent.runner import now_iso
from reports.model import Report, RunInfo
from reports.signing.keys import load_signing_key
from reports.signing.publish import publish

directory, key = Path(sys.argv[1]), load_signing_key(sys.argv[2])
while True:
    stamp = time.time_ns()
    run = RunInfo(id=f"run-{stamp}", started=now_iso(), finished=now_iso(), scope="loop",
                  tool={"name": "mamoru", "version": "test"}, policy={}, operator={})
    publish(Report(run=run, targets=[], findings=[]), directory / f"r-{stamp}.json", key)
"""


def test_kill_9_at_random_moments_of_a_publishing_loop(run_cli: Run, tmp_path: Path,
                                                       ssh_key: tuple[Path, Path]) -> None:
    """The real publish path in a loop, killed with SIGKILL wherever it happens to be, 15 times."""
    key, allowed = ssh_key
    d = tmp_path / "reports"
    d.mkdir()
    rnd = random.Random(13)
    for _ in range(15):
        proc = subprocess.Popen([sys.executable, "-c", LOOP, str(d), str(key)], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rnd.uniform(0.3, 0.8))
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        kill9(proc)
    wait_until_stale(d)
    rc, doc = scan_to(d / "z-final.json", "--scope", "loop", key=key)
    assert rc == 0 and doc is not None and doc["run"]["previous"] is not None
    assert_consistent(run_cli, d, allowed, len(list(d.glob("*.json"))))


def test_only_abandoned_temp_files_of_ours_are_removed(tmp_path: Path) -> None:
    old = time.time() - 60

    def temp(name: str, *, age: float = old) -> Path:
        p = tmp_path / name
        p.write_bytes(b"partial")
        os.utime(p, (age, age))
        return p

    abandoned = [temp(".r1.json.abcd1234.tmp"), temp(".r1.json.sig.k2j4_x9z.tmp"),
                 temp("..mamoru-series-index.q1w2e3r4.tmp")]
    young = temp(".r2.json.young123.tmp", age=time.time())
    foreign = [temp(".notes.txt.abcd1234.tmp"), temp("r3.json.abcd1234.tmp"), temp(".r4.json.tmp")]
    locked = temp(".r5.json.locked12.tmp")
    others = temp(".r6.json.nobody12.tmp")
    os.chown(others, 65534, 65534) if os.geteuid() == 0 else None
    fd = os.open(locked, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a writer still at work
        removed = clean_stale_temps(tmp_path, names=(".mamoru-series-index",))
    finally:
        os.close(fd)
    assert sorted(removed) == sorted(p.name for p in abandoned)
    kept = [young, *foreign, locked] + ([others] if os.geteuid() == 0 else [])
    assert all(p.exists() for p in kept) and not any(p.exists() for p in abandoned)


# --- 9: names and run ids from the directory reach the terminal escaped ---------------------------------


def test_the_predecessor_name_and_run_id_are_shown_escaped(run_cli: Run, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    first = tmp_path / "evil\x1b]0;owned\x07.json"
    scan_to(first)
    capsys.readouterr()
    doc = json.loads(first.read_bytes())
    doc["run"]["id"] = "run\x1b[2J\x07"
    first.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n")  # unsigned series: still a report
    rc, report, _, err = run_cli(*SCAN, "--output", str(tmp_path / "r2.json"))
    assert rc == 0 and report is not None, err
    assert report["run"]["previous"]["run_id"] == "run\x1b[2J\x07"  # the report keeps the exact value
    assert "\x1b" not in err and "\x07" not in err
    assert "follows evil\\x1b]0;owned\\x07.json (run run\\x1b[2J\\x07," in err


def test_a_failed_finding_still_exits_1_when_the_report_cannot_be_linked(run_cli: Run, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """1 ("a finding failed") wins over 3 here as everywhere: an unlinked report must not hide a failure."""
    from reports import chain

    def broken(directory: str | Path) -> list[Path]:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(directory))

    monkeypatch.setattr(chain, "_candidates", broken)
    weak = Path(__file__).resolve().parent / "fixtures" / "rootfs" / "weak"
    rc, doc, _, err = run_cli("scan", "--target", f"rootfs:{weak}", "--check", "IA-04", "--quiet",
                              "--output", str(tmp_path / "r.json"))
    assert doc is not None and any(f["status"] == "fail" for f in doc["findings"])
    assert rc == 1, err
    assert "not linked to the report before it" in err
