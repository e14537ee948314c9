"""A Mac over SSH through a REAL sshd on loopback, with stand-in macOS tools in a chroot.

No Mac exists here, so the lowest boundary is faked and nothing above it. The test user's sessions are
confined by sshd's own ``ChrootDirectory`` to a small tree built from a recorded case
(``tests/fixtures/macos/<case>/``): a POSIX shell and the few coreutils the remote shell needs, OpenSSH's
sftp-server, the case's files at their Mac paths (``/Library/Managed Preferences/...``), and at each tool's
Mac path (``/usr/bin/fdesetup``, ``/usr/libexec/ApplicationFirewall/socketfilterfw`` ...) a stand-in shell
script that prints the recorded answer and exits with the recorded code. ``uname`` answers ``Darwin <host>``.

Why this is honest about the platform: the tree has no ``/proc``, exactly like a Mac, so the SSH target's
probe (``/proc/sys/kernel/ostype`` over SFTP first, ``uname -s -n`` only when it is absent) takes the Mac's
path unmodified; the same server's root login, outside the chroot, is still Linux. SSH, SFTP (a path with a
blank, directory listings, stat), the framed shell, stderr, exit codes and every parser after them are real.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import shutil
import stat
import subprocess
import tempfile
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.config.policy import load_policy
from agent.runner import TargetFacts, collect_target, evaluate_target
from agent.targets import open_target
from agent.targets.ssh import SSHTarget
from collectors.macos import updates as updates_module
from collectors.macos import xprotect as xprotect_module
from tests.macos_replay import Case, _bytes, file_bytes
from tests.sshd_helpers import SFTP_SERVER, LoginUser, SshdLab
from tests.test_macos_ph_av_ac import CHECKS, COLLECTORS, collect

pytestmark = [pytest.mark.needs_service, pytest.mark.needs_root]

#: What the remote shell (agent/targets/ssh_shell.py) and the SFTP subsystem need inside the tree.
PROGRAMS = ["/bin/sh", "/usr/bin/cat", "/usr/bin/head", "/usr/bin/wc", "/usr/bin/mktemp", "/usr/bin/rm",
            "/usr/bin/mkdir", "/usr/bin/timeout", SFTP_SERVER]
CASES = {"sonoma": 45411, "monterey": 45412, "garbage": 45413}


def _libraries(program: str) -> list[str]:
    """The shared libraries ``program`` loads (ldd), the loader included."""
    out = subprocess.run(["ldd", program], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        words = line.split()
        if "=>" in words and len(words) >= 3 and words[2].startswith("/"):
            found.append(words[2])
        elif words and words[0].startswith("/"):
            found.append(words[0])
    return found


def _install(src: str, root: Path, dst: str | None = None) -> None:
    target = root / (dst or src).lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(os.path.realpath(src), target)


def _standin(commands: list[tuple[tuple[str, ...], dict[str, Any]]], replay: str) -> str:
    """A tool that answers each recorded argument list with its recorded output and exit code."""
    lines = ["#!/bin/sh", 'case "$*" in']
    for argv, spec in commands:
        args = " ".join(argv[1:])
        out, err = f"{replay}/{abs(hash(argv))}.out", f"{replay}/{abs(hash(argv))}.err"
        lines.append(f"  {shlex.quote(args)}) cat {out}; cat {err} >&2; exit {int(spec.get('exit', 0))};;")
    lines += ["esac", "echo 'usage: not recorded' >&2", "exit 64", ""]
    return "\n".join(lines)


def build_mac(root: Path, case_name: str, uid: int) -> Case:
    """The chroot of one recorded Mac (see the module docstring); ``uid`` is the login's (sftp-server looks
    its user up in the tree's /etc/passwd)."""
    case = Case(case_name)
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text(f"root:x:0:0:root:/var/root:/bin/sh\nmm5mac{uid}:x:{uid}:{uid}::/:/bin/sh\n")
    (root / "etc/group").write_text(f"wheel:x:0:\nmm5mac{uid}:x:{uid}:\n")
    for program in PROGRAMS:
        _install(program, root)
        for lib in _libraries(program):
            if not (root / lib.lstrip("/")).exists():
                _install(lib, root)
    (root / "tmp").mkdir(mode=0o1777)
    (root / "tmp").chmod(0o1777)
    (root / "dev").mkdir()
    os.mknod(root / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (root / "dev/null").chmod(0o666)
    replay = root / "replay"
    replay.mkdir()
    by_tool: dict[str, list[tuple[tuple[str, ...], dict[str, Any]]]] = {}
    for argv, spec in case.commands.items():
        if spec.get("missing"):
            continue
        by_tool.setdefault(argv[0], []).append((argv, spec))
        (replay / f"{abs(hash(argv))}.out").write_bytes(_bytes(spec, "stdout"))
        (replay / f"{abs(hash(argv))}.err").write_bytes(_bytes(spec, "stderr"))
    host = case.platform.get("hostname", "mac")
    scripts = {tool: _standin(cmds, "/replay") for tool, cmds in by_tool.items()}
    scripts["/usr/bin/uname"] = ("#!/bin/sh\n"
                                 f'case "$*" in "-s -n") echo "Darwin {host}";; "-s") echo Darwin;; *) exit 1;; esac\n')
    for tool, text in scripts.items():
        path = root / tool.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o755)
    for mac_path, spec in case.files.items():
        path = root / mac_path.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(file_bytes(spec))
        path.chmod(0o644)
        when = spec.get("mtime")
        if isinstance(when, dt.datetime):
            os.utime(path, (when.timestamp(), when.timestamp()))
    for d, _, _ in os.walk(root):
        if d != str(root / "tmp"):
            os.chmod(d, 0o755)
    return case


class MacLab:
    """One sshd; each case is a login whose sessions sshd confines to that case's tree."""

    def __init__(self, lab: SshdLab) -> None:
        self.lab = lab
        # sshd refuses a chroot with a group- or world-writable component (/tmp is 1777): build under /run.
        self.base = Path(tempfile.mkdtemp(prefix="mm5-mac-", dir="/run"))
        self.base.chmod(0o755)
        self.cases: dict[str, Case] = {}
        users, config = [], ""
        for name, uid in CASES.items():
            root = self.base / name
            root.mkdir(mode=0o755)
            self.cases[name] = build_mac(root, name, uid)
            users.append(LoginUser(f"mm5mac{uid}", uid))
            config += f"Match User mm5mac{uid}\n  ChrootDirectory {root}\n"
        self.server = lab.sshd(users=users, extra_config=config)

    def spec(self, case: str) -> str:
        return self.server.spec(f"mm5mac{CASES[case]}")

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def mac(lab: SshdLab) -> Iterator[MacLab]:
    m = MacLab(lab)
    yield m
    m.close()


def test_the_mac_is_told_by_its_missing_proc_and_uname(mac: MacLab) -> None:
    target = open_target(mac.spec("sonoma"), **mac.lab.options())
    try:
        assert isinstance(target, SSHTarget) and target.shell_kind() == "posix"
        info = target.platform()
        assert (info.system, info.hostname) == ("darwin", "jimusho-mac")
    finally:
        target.close()
    linux = open_target(mac.server.spec("root"), **mac.lab.options())  # the same server, outside the chroot
    try:
        assert linux.platform().system == "linux"
    finally:
        linux.close()


def scan(mac: MacLab, case: str, monkeypatch: pytest.MonkeyPatch) -> tuple[TargetFacts, dict[str, Any]]:
    when = mac.cases[case].platform["collected_at"]
    clock = types.SimpleNamespace(time=lambda: when.timestamp())
    monkeypatch.setattr(updates_module, "time", clock)
    monkeypatch.setattr(xprotect_module, "time", clock)
    tf = collect_target(mac.spec(case), COLLECTORS, target_options=mac.lab.options())
    assert (tf.system, tf.status) == ("darwin", "ok"), (tf.system, tf.status, tf.error)
    return tf, {f.check: f for f in evaluate_target(tf, list(CHECKS.values()), load_policy())}


@pytest.mark.parametrize("case", list(CASES))
def test_ssh_gives_the_facts_the_replay_gives(mac: MacLab, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over SSH (SFTP reads and listings, the framed shell, stderr, exit codes) the facts are byte for byte
    those of the replay of the same case, so every judged status is too."""
    tf, found = scan(mac, case, monkeypatch)
    replayed, _ = collect(case, monkeypatch)
    for cid in tf.facts:
        assert tf.facts[cid].error is None, (cid, tf.facts[cid].error)
        assert json.dumps(tf.facts[cid].data, sort_keys=True) == json.dumps(replayed.facts[cid].data,
                                                                              sort_keys=True), cid
    want = {"sonoma": dict.fromkeys(CHECKS, "pass"),
            "monterey": {"PH-01": "fail", "PH-02": "fail", "AC-01": "pass", "AV-01": "fail", "AV-03": "fail",
                         "AV-04": "fail"},
            "garbage": dict.fromkeys(CHECKS, "error")}[case]
    assert {c: f.status for c, f in found.items()} == want, {c: f.message["en"] for c, f in found.items()}


def test_stderr_and_exit_codes_cross_ssh(mac: MacLab, monkeypatch: pytest.MonkeyPatch) -> None:
    tf, found = scan(mac, "monterey", monkeypatch)
    screen = tf.facts["mac_screenlock"].data
    assert screen["sysadminctl"]["value"] == {"state": "delay", "delay_seconds": 300}  # read from stderr
    assert tf.facts["mac_xprotect"].data["gatekeeper"]["exit"] == 1  # spctl: disabled answers with exit 1
    assert tf.facts["mac_xprotect"].data["status"] == {
        "source": "/usr/bin/xprotect status", "status": "missing",
        "problem": {"code": "not_found", "tool": "/usr/bin/xprotect"}}
    # "/Library/Managed Preferences" (a blank in the path) listed and read over SFTP
    assert screen["managed_byhost"][0]["value"] == {"idleTime": 1200}
    assert found["AC-01"].evidence["globalstate"]["problem"]["code"] == "tool_exit"


def test_no_proc_no_pass_for_linux_checks(mac: MacLab) -> None:
    """The Linux collectors do not run on the Mac; checks with no macOS judge are not_applicable, not passes."""
    from checks.access_control import AC_02

    tf = collect_target(mac.spec("sonoma"), COLLECTORS, target_options=mac.lab.options())
    ac02, ac01 = evaluate_target(tf, [AC_02, CHECKS["AC-01"]], load_policy())
    assert (ac02.status, ac01.status) == ("not_applicable", "pass")
    # alone, a check with nothing to say about a Mac leaves the target unjudged: an error, never a clean bill
    [alone] = evaluate_target(tf, [AC_02], load_policy())
    assert alone.status == "error"

