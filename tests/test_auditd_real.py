"""LG-03 against a real auditd started here, with real watch rules loaded into the kernel.

The kernel's audit state is global: the fixture refuses to run when another auditd is registered, and
restores the state afterwards (``auditctl -D``, ``auditctl -e 0``, the daemon stopped by PID) even when a
test fails. Rules files of images come from ../shared/corpus.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from collectors.audit import RuleProblem, parse_rules
from tests.conftest import CORPUS, finding, require, require_corpus, require_root, require_tool, validate_report

Run = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
MakeRootfs = Callable[[dict[str, str | bytes]], Path]
MAMORU = Path(sys.executable).with_name("mamoru")
KEY = "mamoru-test-personal-data"


def auditctl(*args: str) -> str:
    return subprocess.run(["auditctl", *args], capture_output=True, text=True, check=True).stdout


def status() -> dict[str, str]:
    return dict(line.split(" ", 1) for line in auditctl("-s").splitlines() if " " in line)


@dataclass
class Audit:
    proc: subprocess.Popen[bytes]
    base: Path
    data: Path
    other: Path
    log: Path


@pytest.fixture
def auditd() -> Iterator[Audit]:
    require_root()
    require_tool("auditd", "auditctl")
    require(status().get("pid", "0") == "0", "another auditd is registered with the kernel")
    base = Path(tempfile.mkdtemp(prefix="mamoru-audit-", dir="/tmp"))
    os.chmod(base, 0o755)
    conf = base / "conf"
    conf.mkdir(mode=0o750)
    (conf / "plugins.d").mkdir()
    log = base / "log" / "audit.log"
    log.parent.mkdir()
    (conf / "auditd.conf").write_text(
        f"log_file = {log}\nlog_format = ENRICHED\nflush = INCREMENTAL_ASYNC\nfreq = 20\nmax_log_file = 8\n"
        "num_logs = 2\nmax_log_file_action = ROTATE\nspace_left = 2\nspace_left_action = SYSLOG\n"
        "admin_space_left = 1\nadmin_space_left_action = SUSPEND\ndisk_full_action = SUSPEND\n"
        f"disk_error_action = SUSPEND\nplugin_dir = {conf}/plugins.d\nlocal_events = yes\nwrite_logs = yes\n")
    os.chmod(conf / "auditd.conf", 0o640)
    data, other = base / "customers", base / "contracts"
    data.mkdir()
    other.mkdir()
    (data / "list.csv").write_text("山田太郎\n")
    proc = subprocess.Popen(["auditd", "-n", "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=(base / "auditd.err").open("wb"), start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while status().get("pid") != str(proc.pid) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        require(status().get("pid") == str(proc.pid),
                f"auditd did not register: {(base / 'auditd.err').read_text()[-500:]}")
        auditctl("-e", "1")
        auditctl("-w", str(data), "-p", "rwa", "-k", KEY)
        yield Audit(proc=proc, base=base, data=data, other=other, log=log)
    finally:
        subprocess.run(["auditctl", "-D"], capture_output=True)
        subprocess.run(["auditctl", "-e", "0"], capture_output=True)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(base)
        assert auditctl("-l").strip() == "No rules"


def scan(audit: Audit, paths: list[Path], *prefix: str) -> dict[str, Any]:
    require(MAMORU.exists(), f"{MAMORU} missing")
    pol = audit.base / "policy.yaml"
    pol.write_text(json.dumps({"data_paths": [str(p) for p in paths]}))
    os.chmod(pol, 0o644)
    out = audit.base / f"report-{time.monotonic_ns()}.json"
    os.chmod(audit.base, 0o777)
    proc = subprocess.run([*prefix, str(MAMORU), "scan", "--check", "LG-03", "--policy", str(pol), "--quiet",
                           "--lang", "en", "--output", str(out)], capture_output=True, text=True,
                          env={**os.environ, "HOME": str(audit.base)})
    assert out.exists(), proc.stderr[-2000:]
    doc: dict[str, Any] = json.loads(out.read_text())
    validate_report(doc)
    return finding(doc, "LG-03")


@pytest.mark.needs_service
@pytest.mark.needs_root
def test_watched_data_passes_and_accesses_are_recorded(auditd: Audit) -> None:
    f = scan(auditd, [auditd.data, auditd.base / "not-on-this-host"])
    assert f["status"] == "pass", f
    assert f["evidence"]["auditd_pid"] == auditd.proc.pid
    assert f"{auditd.data} -p rwa" in f["evidence"]["watches"]
    # The rule the check relied on really records a read of a file below the watched folder.
    (auditd.data / "list.csv").read_text()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (auditd.log.exists() and KEY in auditd.log.read_text(errors="replace")):
        time.sleep(0.1)
    assert KEY in auditd.log.read_text(errors="replace")


@pytest.mark.needs_service
@pytest.mark.needs_root
def test_unwatched_or_write_only_fails(auditd: Audit) -> None:
    f = scan(auditd, [auditd.data, auditd.other])
    assert f["status"] == "fail" and f["message"]["en"].endswith(str(auditd.other)), f
    auditctl("-w", str(auditd.other), "-p", "wa", "-k", KEY)  # changes only: reads stay invisible
    f = scan(auditd, [auditd.other])
    assert f["status"] == "fail", f
    auditctl("-a", "always,exit", "-F", "arch=b64", "-S", "openat", "-F", f"dir={auditd.other}", "-F", "perm=rw",
             "-k", KEY)
    assert scan(auditd, [auditd.other])["status"] == "pass"


@pytest.mark.needs_service
@pytest.mark.needs_root
def test_auditing_off_or_no_daemon_fails(auditd: Audit) -> None:
    auditctl("-e", "0")
    f = scan(auditd, [auditd.data])
    assert f["status"] == "fail" and "disabled" in f["message"]["en"], f
    auditctl("-e", "1")
    auditd.proc.send_signal(signal.SIGTERM)
    auditd.proc.wait(timeout=10)
    f = scan(auditd, [auditd.data])  # the rules are still loaded, but nobody writes the events to disk
    assert f["status"] == "fail" and "auditd is not running" in f["message"]["en"], f


@pytest.mark.needs_service
@pytest.mark.needs_root
def test_unprivileged_scan_is_error(auditd: Audit) -> None:
    require_tool("setpriv")
    f = scan(auditd, [auditd.data], "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    assert f["status"] == "error" and "run as root" in f["message"]["en"], f


def test_not_applicable_without_data_paths(run_cli: Run) -> None:
    _, doc, _, _ = run_cli("scan", "--check", "LG-03", "--quiet", "--lang", "en")
    assert doc is not None
    f = finding(doc, "LG-03")
    assert f["status"] == "not_applicable" and "data_paths" in f["message"]["en"]


# --- images: rules files only -------------------------------------------------------------------------

def image(make_rootfs: MakeRootfs, rules: dict[str, str]) -> Path:
    files: dict[str, str | bytes] = {f"/etc/audit/rules.d/{n}": t for n, t in rules.items()}
    files.update({"/sbin/auditd": b"", "/srv/customers/list.csv": "x\n", "/etc/hostname": "img\n",
                  "/etc/systemd/system/multi-user.target.wants/auditd.service": ""})
    return make_rootfs(files)


def judge_image(run_cli: Run, root: Path, tmp_path: Path) -> dict[str, Any]:
    pol = tmp_path / "p.yaml"
    pol.write_text("data_paths: [/srv/customers]\n")
    _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "LG-03", "--policy", str(pol), "--quiet",
                           "--lang", "en")
    assert doc is not None
    return finding(doc, "LG-03")


def test_image_rules_files(run_cli: Run, make_rootfs: MakeRootfs, tmp_path: Path) -> None:
    stig = require_corpus("host-config", "audit-userspace__30-stig.rules").read_text()
    f = judge_image(run_cli, image(make_rootfs, {"30-stig.rules": stig}), tmp_path)
    assert f["status"] == "fail" and "would not be audited" in f["message"]["en"], f
    ours = "-w /srv/customers/ -p rwa -k personal-data\n"
    f = judge_image(run_cli, image(make_rootfs, {"30-stig.rules": stig, "60-data.rules": ours}), tmp_path)
    # Configured, but an image has no loaded rules: never a pass.
    assert f["status"] == "error" and "loaded rules cannot be seen" in f["message"]["en"], f
    root = image(make_rootfs, {"60-data.rules": ours})
    (root / "etc/systemd/system/multi-user.target.wants/auditd.service").unlink()
    f = judge_image(run_cli, root, tmp_path)
    assert f["status"] == "fail" and "not enabled at boot" in f["message"]["en"]
    f = judge_image(run_cli, image(make_rootfs, {"60-data.rules": "-w srv/customers -p rwa\n"}), tmp_path)
    assert f["status"] == "error" and "absolute path" in f["message"]["en"]
    f = judge_image(run_cli, image(make_rootfs, {"60-data.rules": "-w /srv/customers -p rwz\n"}), tmp_path)
    assert f["status"] == "error"


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.joinpath("host-config").glob("*rules*"))
                         or ["(corpus missing)"])
def test_corpus_rules_files_parse(name: str) -> None:
    path = require_corpus("host-config", name)
    try:
        watches, count = parse_rules(path.read_text().splitlines(), name)
    except RuleProblem as e:
        pytest.fail(f"a real rules file was refused: {e}")
    assert count > 0
    assert all(w["path"].startswith("/") for w in watches)
