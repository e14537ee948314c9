"""Many targets in one run, against real sshd instances: every outcome reported, none spoiling the others."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from agent.fleet import Job, ProgressBar, collect_fleet
from agent.targets.base import Target
from collectors.base import Collector, Facts
from tests.conftest import finding
from tests.sshd_helpers import LoginUser, SshdLab

pytestmark = [pytest.mark.needs_service, pytest.mark.needs_root]
ROOT = Path(__file__).resolve().parents[1]
RunCli = Callable[..., tuple[int, Any, str, str]]


def test_every_failure_mode_in_one_run(lab: SshdLab, run_cli: RunCli) -> None:
    healthy = lab.sshd()
    asks_password = lab.sshd(users=[LoginUser("mm5pw", 45202, "ALL=(ALL) ALL")])
    stranger = lab.sshd(trust=False)
    moved = lab.sshd()
    moved.new_host_key()
    tarpit = lab.silent()
    from tests.sshd_helpers import free_port

    closed = free_port()
    inv = lab.root / "office.yaml"
    inv.write_text(f"""\
defaults:
  user: root
  identity_file: {lab.client_key}
targets:
  - name: fileserver
    address: 127.0.0.1
    port: {healthy.port}
    tags: {{role: file-server}}
    policy:
      logging: {{retention_days: 730}}
  - name: reception-pc
    address: 127.0.0.1
    port: {healthy.port}
  - name: wrong-key
    address: 127.0.0.1
    port: {healthy.port}
    identity_file: {lab.wrong_key}
  - name: sudo-password
    address: 127.0.0.1
    port: {asks_password.port}
    user: mm5pw
    sudo: true
  - name: stranger
    address: 127.0.0.1
    port: {stranger.port}
  - name: reinstalled
    address: 127.0.0.1
    port: {moved.port}
  - name: tarpit
    address: 127.0.0.1
    port: {tarpit.port}
    connect_timeout: 1.5
  - name: switched-off
    address: 127.0.0.1
    port: {closed}
""")
    t0 = time.monotonic()
    rc, doc, _, err = run_cli("scan", "--inventory", str(inv), "--known-hosts", str(lab.known_hosts),
                              "--workers", "8", "--quiet")
    assert time.monotonic() - t0 < 30
    assert rc == 1, err  # this machine fails some checks; the unreachable ones are errors, not failures
    targets = {t["id"]: t for t in doc["targets"]}
    assert [t["id"] for t in doc["targets"]] == ["fileserver", "reception-pc", "wrong-key", "sudo-password",
                                                 "stranger", "reinstalled", "tarpit", "switched-off",
                                                 "organisation"]  # asked once for the whole fleet (issue 13)
    expected = {"organisation": ("ok", None), "fileserver": ("ok", None), "reception-pc": ("ok", None), "wrong-key": ("error", "auth_failed"),
                "sudo-password": ("error", "sudo_refused"), "stranger": ("error", "host_key_unknown"),
                "reinstalled": ("error", "host_key_changed"), "tarpit": ("error", "timeout"),
                "switched-off": ("error", "unreachable")}
    assert {k: (v["status"], v["reason"]) for k, v in targets.items()} == expected
    assert targets["stranger"]["error"] and stranger.fingerprint() in targets["stranger"]["error"]
    assert moved.fingerprint() in targets["reinstalled"]["error"]
    assert targets["fileserver"]["tags"] == {"role": "file-server"}
    # The two healthy entries are the same machine: the same verdicts, except where the override applies.
    healthy_findings = {t: {f["check"]: f for f in doc["findings"] if f["target"] == t}
                        for t in ("fileserver", "reception-pc")}
    assert healthy_findings["fileserver"].keys() == healthy_findings["reception-pc"].keys()
    assert any(f["status"] != "error" for f in healthy_findings["fileserver"].values())
    lg = finding(doc, "LG-02", "fileserver")
    assert lg["expected"]["retention_days"] == ">= 730"
    assert finding(doc, "LG-02", "reception-pc")["expected"]["retention_days"] == ">= 365"
    for t in expected:
        if expected[t][0] == "error":
            assert {f["status"] for f in doc["findings"] if f["target"] == t} == {"error"}


def test_ssh_scan_of_this_machine_matches_the_local_scan(lab: SshdLab, run_cli: RunCli) -> None:
    server = lab.sshd()
    spec = server.spec("root")
    rc, doc, _, err = run_cli("scan", "--target", "local", "--target", spec, *lab.cli(), "--quiet",
                              "--no-organisation")
    assert rc in (0, 1), err
    by_target: dict[str, dict[str, str]] = {}
    for f in doc["findings"]:
        by_target.setdefault(f["target"], {})[f["check"]] = f["status"]
    assert set(by_target) == {"local", spec}
    assert by_target[spec] == by_target["local"]
    assert [t["status"] for t in doc["targets"]] == ["ok", "ok"] or doc["targets"][0]["status"] == \
        doc["targets"][1]["status"]


class _FirstRead(Collector):
    id: ClassVar[str] = "mm5_first"
    timeout: ClassVar[float] = 30.0

    def collect(self, target: Target) -> Facts:
        return {"bytes": len(target.read_file("/etc/passwd"))}


class _SlowOnVictim(Collector):
    """Runs a long command on one host only, and tells the test when it is running there."""

    id: ClassVar[str] = "mm5_slow"
    timeout: ClassVar[float] = 60.0
    victim = ""
    started = threading.Event()

    def collect(self, target: Target) -> Facts:
        if target.id == self.victim:
            type(self).started.set()
            res = target.run(["sleep", "40"], timeout=50)
        else:
            res = target.run(["true"])
        return {"rc": res.returncode}


def test_host_killed_mid_scan_is_partial_and_spares_the_others(lab: SshdLab) -> None:
    victim, other = lab.sshd(), lab.sshd()
    _SlowOnVictim.victim = victim.spec("root")
    _SlowOnVictim.started.clear()

    def killer() -> None:
        if _SlowOnVictim.started.wait(30):
            time.sleep(0.5)  # the command is running remotely by now
            victim.kill_all()

    threading.Thread(target=killer, daemon=True).start()
    t0 = time.monotonic()
    run = collect_fleet([Job(spec=victim.spec("root"), id="victim", options=lab.options()),
                         Job(spec=other.spec("root"), id="other", options=lab.options())],
                        [_FirstRead(), _SlowOnVictim()], workers=2)
    assert time.monotonic() - t0 < 20  # not the 40 s of the command, nor its timeout
    v, o = run.facts
    assert (v.id, v.status, v.reason) == ("victim", "partial", "connection_lost")
    assert v.facts["mm5_first"].error is None and v.facts["mm5_first"].data["bytes"] > 0
    assert v.facts["mm5_slow"].error is not None
    assert (o.status, o.reason, o.error) == ("ok", None, None)
    assert all(r.error is None for r in o.facts.values())


def test_scanner_processes_give_the_same_answers(lab: SshdLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spread over two scanner processes (as on a big fleet): same facts, order, ids, tags and events."""
    servers = [lab.sshd() for _ in range(3)]
    jobs = [Job(spec=s.spec("root"), id=f"host{n}", options=lab.options(), tags={"n": str(n)})
            for n, s in enumerate(servers)]
    jobs.insert(1, Job(spec=lab.silent().spec(), id="tarpit", options=lab.options(connect_timeout=1.0)))
    events: list[tuple[str, str]] = []

    class Record:
        def target_started(self, target_id: str) -> None:
            events.append(("started", target_id))

        def target_finished(self, target_id: str, status: str) -> None:
            events.append((status, target_id))

    monkeypatch.setenv("MAMORU_PROCESSES", "2")
    monkeypatch.chdir(ROOT)
    run = collect_fleet(jobs, [_FirstRead()], workers=4, observer=Record())
    assert [(f.id, f.status, f.reason) for f in run.facts] == [
        ("host0", "ok", None), ("tarpit", "error", "timeout"), ("host1", "ok", None), ("host2", "ok", None)]
    assert [f.tags for f in run.facts] == [{"n": "0"}, {}, {"n": "1"}, {"n": "2"}]
    assert all(f.facts["mm5_first"].data["bytes"] > 0 for f in run.facts if f.status == "ok")
    assert sorted(events) == sorted([("started", j.label) for j in jobs] + [
        ("ok", "host0"), ("error", "tarpit"), ("ok", "host1"), ("ok", "host2")])


def test_the_pool_is_bounded(lab: SshdLab) -> None:
    tarpits = [lab.silent() for _ in range(5)]
    running, peak = [0], [0]
    lock = threading.Lock()

    class Watch:
        def target_started(self, target_id: str) -> None:
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])

        def target_finished(self, target_id: str, status: str) -> None:
            with lock:
                running[0] -= 1

    run = collect_fleet([Job(spec=t.spec(), options=lab.options(connect_timeout=0.5)) for t in tarpits],
                        [_FirstRead()], workers=2, observer=Watch())
    assert peak[0] == 2
    assert [f.reason for f in run.facts] == ["timeout"] * 5


def test_progress_bar_counts_done_failed_remaining() -> None:
    out = io.StringIO()
    with ProgressBar(3, file=out, force=True) as bar:
        bar.target_started("a")
        bar.target_started("b")
        bar.target_finished("a", "ok")
        bar.target_finished("b", "error")
        bar.progress.refresh()
    text = out.getvalue()
    assert "done 1 · failed 1 · remaining 1" in text
    assert "2/3" in text


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("processes", ["1", "2"])
def test_ctrl_c_writes_the_partial_report(lab: SshdLab, tmp_path: Path, processes: str) -> None:
    healthy = lab.sshd()
    tarpits = [lab.silent() for _ in range(3)]
    inv = tmp_path / "inv.yaml"
    entries = "".join(f"  - {{name: hung-{i}, address: 127.0.0.1, port: {t.port}, connect_timeout: 60}}\n"
                      for i, t in enumerate(tarpits))
    inv.write_text(f"defaults: {{user: root, identity_file: {lab.client_key}}}\ntargets:\n"
                   f"  - {{name: healthy, address: 127.0.0.1, port: {healthy.port}}}\n{entries}")
    out = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli.main", "scan", "--inventory", str(inv),
                             "--known-hosts", str(lab.known_hosts), "--check", "PM-01", "--workers", "2",
                             "--output", str(out), "--quiet"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "MAMORU_PROCESSES": processes},
                            # Ctrl-C as at a terminal, also when pytest itself was started in the background
                            # (``cmd &`` in a script starts it with SIGINT ignored, and a child inherits that)
                            preexec_fn=_sigint_default)
    import psutil

    scanners: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the healthy target has been scanned and let go
            log = healthy.log.read_text()
            if "Accepted publickey" in log and any(w in log for w in ("Disconnected from", "Connection reset",
                                                                       "Connection closed", "Close session")):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"the healthy target was not scanned: {healthy.log.read_text()}")
        time.sleep(1.0)  # its facts reach the parent; the hung ones wait out a 60 s connect timeout
        scanners = psutil.Process(proc.pid).children(recursive=True)
        assert len(scanners) == (1 if processes == "2" else 0)  # this process scans too
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 3, err
    assert "interrupted" in err
    doc = json.loads(out.read_text())
    assert doc["run"]["partial"] is True
    states = {t["id"]: (t["status"], t["reason"]) for t in doc["targets"]}
    assert states == {"healthy": ("ok", None), "hung-0": ("error", "interrupted"),
                      "hung-1": ("error", "interrupted"), "hung-2": ("error", "interrupted")}
    assert finding(doc, "PM-01", "healthy")["status"] == "pass"
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    time.sleep(0.5)
    assert not [p for p in scanners if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]  # none left
