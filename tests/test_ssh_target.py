"""The ssh:// target against real OpenSSH servers started by the tests (127.0.0.1:24000-25999, netns mm5*).

The servers run on this very machine, so whatever the SSH target reads must be
byte for byte what the local target reads: that is the reference for the
happy path. Each failure mode (wrong key, unknown or changed host key, silent
listener, dead host, sudo wanting a password) must end in its own error with
its reason code.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.targets import open_target
from agent.targets.base import (
    CommandTimeout,
    CommandUnavailable,
    FileMissing,
    FileTooLarge,
    FileUnreadable,
    TargetUnreachable,
)
from agent.targets.local import LocalTarget
from agent.targets.ssh import SSHTarget
from agent.targets.ssh_connect import (
    AuthenticationFailed,
    ConnectionLost,
    ConnectTimeout,
    HostKeyChanged,
    HostKeyUnknown,
    SSHAddress,
    SudoRefused,
)
from collectors.textfiles import UndecodableFile, read_text
from tests.conftest import require
from tests.sshd_helpers import LoginUser, Sshd, SshdLab, keygen, netns, public_line

pytestmark = [pytest.mark.needs_service, pytest.mark.needs_root]

AUDIT = LoginUser("mm5audit", 45101, "ALL=(ALL) NOPASSWD: ALL")
ASKS_PASSWORD = LoginUser("mm5pw", 45102, "ALL=(ALL) ALL")


@pytest.fixture(scope="module")
def server(lab: SshdLab) -> Sshd:
    """This machine as it is (no extra accounts): what it serves must equal what the local target reads."""
    return lab.sshd()


@pytest.fixture(scope="module")
def sudo_server(lab: SshdLab) -> Sshd:
    """With two test accounts (only inside its mount namespace): one may sudo, one would need a password."""
    return lab.sshd(users=[AUDIT, ASKS_PASSWORD])


@pytest.fixture(scope="module")
def root_target(lab: SshdLab, server: Sshd) -> Iterator[SSHTarget]:
    t = open_target(server.spec("root"), **lab.options())
    assert isinstance(t, SSHTarget)
    yield t
    t.close()


# -- the happy path: the same answers as the local target ----------------------------------------


def test_reads_match_the_local_target(root_target: SSHTarget) -> None:
    local = LocalTarget()
    for path in ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/os-release", "/etc/hostname"):
        assert root_target.read_file(path) == local.read_file(path), path
    for path in ("/etc", "/etc/ssh", "/usr/bin"):
        assert root_target.list_dir(path) == local.list_dir(path), path
    for path in ("/etc/passwd", "/etc", "/usr/bin/env", "/no/such/path"):
        remote, here = root_target.stat(path), local.stat(path)
        if here is None:
            assert remote is None
        else:
            assert remote is not None
            assert (remote.mode, remote.uid, remote.gid, remote.size) == (here.mode, here.uid, here.gid, here.size)
            assert int(remote.mtime) == int(here.mtime)
    assert root_target.readlink("/etc/os-release") == local.readlink("/etc/os-release")
    assert root_target.platform() == local.platform()


def test_proc_files_are_read_whole(root_target: SSHTarget) -> None:
    """/proc files report size 0: they are read to the end, not taken as empty."""
    status = root_target.read_file("/proc/1/status")
    assert status.startswith(b"Name:") and b"\nPid:\t1\n" in status
    assert root_target.read_file("/proc/1/cmdline") == LocalTarget().read_file("/proc/1/cmdline")


def test_file_errors_map_to_target_errors(root_target: SSHTarget, tmp_path: Path) -> None:
    with pytest.raises(FileMissing):
        root_target.read_file("/no/such/file")
    with pytest.raises(FileMissing):
        root_target.list_dir("/no/such/dir")
    with pytest.raises(FileUnreadable):
        root_target.read_file("/etc")  # a directory
    big = tmp_path / "big"
    big.write_bytes(b"x" * 5000)
    big.chmod(0o644)
    with pytest.raises(FileTooLarge):
        root_target.read_file(str(big), max_bytes=4096)
    assert root_target.read_file(str(big), max_bytes=5000) == b"x" * 5000
    with pytest.raises(FileUnreadable, match="absolute"):
        root_target.read_file("etc/passwd")


def test_a_fifo_is_refused_without_hanging(root_target: SSHTarget, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(FileUnreadable, match="not a regular file"):
        root_target.read_file(str(fifo))
    assert time.monotonic() - t0 < 5
    assert root_target.read_file("/etc/hostname")  # the session still works


def test_large_file_over_several_chunks(root_target: SSHTarget, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    f = tmp_path / "blob"
    f.write_bytes(data)
    assert root_target.read_file(str(f)) == data


def test_non_utf8_content_and_names_survive(root_target: SSHTarget, tmp_path: Path) -> None:
    d = tmp_path / "latin1"
    d.mkdir()
    raw_name = b"caf\xe9.conf"  # Latin-1, not UTF-8
    content = b"PermitRootLogin yes # caf\xe9 \xff\xfe\n"
    (d / "plain.conf").write_bytes(b"ok\n")
    with open(os.path.join(os.fsencode(d), raw_name), "wb") as fh:
        fh.write(content)
    names = root_target.list_dir(str(d))
    assert names == LocalTarget().list_dir(str(d)) == sorted(["plain.conf", os.fsdecode(raw_name)])
    odd = next(n for n in names if n != "plain.conf")
    assert root_target.read_file(f"{d}/{odd}") == content
    with pytest.raises(UndecodableFile):
        read_text(root_target, f"{d}/{odd}")


# -- commands --------------------------------------------------------------------------------------


def test_commands_are_argv_not_shell(root_target: SSHTarget) -> None:
    tricky = "$(id -u); `id -u` | cat > /tmp/mm5-pwned '\" \\ \n *"
    res = root_target.run(["printf", "%s", tricky])
    assert res.ok and res.stdout == tricky.encode()
    assert not os.path.exists("/tmp/mm5-pwned")
    res = root_target.run(["sh", "-c", 'echo out; echo err >&2; exit 3'])
    assert (res.returncode, res.stdout, res.stderr, res.truncated) == (3, b"out\n", b"err\n", False)
    binary = bytes(range(256)) * 4
    assert root_target.run(["cat"], stdin=binary).stdout == binary
    assert root_target.run(["env"]).stdout.count(b"LC_ALL=C\n") == 1


def test_missing_command_and_timeout(root_target: SSHTarget) -> None:
    with pytest.raises(CommandUnavailable, match="not found"):
        root_target.run(["mamoru-no-such-command"])
    t0 = time.monotonic()
    with pytest.raises(CommandTimeout):
        root_target.run(["sleep", "30"], timeout=1)
    assert time.monotonic() - t0 < 10
    assert root_target.run(["echo", "still here"]).stdout == b"still here\n"


def test_100_mb_of_output_is_capped_in_bounded_memory(root_target: SSHTarget) -> None:
    tracemalloc.start()
    try:
        res = root_target.run(["head", "-c", str(100 * 1024 * 1024), "/dev/zero"], timeout=60,
                              max_output=8 * 1024 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert res.truncated and len(res.stdout) == 8 * 1024 * 1024 and res.returncode == 0
    assert peak < 40 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB for an 8 MB cap"
    assert root_target.run(["echo", "next"]).stdout == b"next\n"  # framing intact afterwards


def test_concurrent_callers_share_one_connection(root_target: SSHTarget) -> None:
    errors: list[BaseException] = []
    expected = LocalTarget().read_file("/etc/passwd")

    def work(n: int) -> None:
        try:
            for i in range(20):
                if i % 2:
                    assert root_target.run(["echo", str(n)]).stdout == f"{n}\n".encode()
                else:
                    assert root_target.read_file("/etc/passwd") == expected
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- sudo ------------------------------------------------------------------------------------------


def test_sudo_reads_as_root(lab: SshdLab, sudo_server: Sshd) -> None:
    plain = open_target(sudo_server.spec(AUDIT.name), **lab.options())
    with plain:
        with pytest.raises(FileUnreadable, match="Permission denied"):
            plain.read_file("/etc/shadow")
        assert plain.run(["id", "-u"]).stdout == f"{AUDIT.uid}\n".encode()
    elevated = open_target(sudo_server.spec(AUDIT.name), **lab.options(sudo=True))
    with elevated:
        assert b"\nmm5audit:*:" in elevated.read_file("/etc/shadow")
        assert elevated.run(["id", "-u"]).stdout == b"0\n"


def test_sudo_wanting_a_password_is_a_clear_error(lab: SshdLab, sudo_server: Sshd) -> None:
    with pytest.raises(SudoRefused, match="password") as info:
        open_target(sudo_server.spec(ASKS_PASSWORD.name), **lab.options(sudo=True))
    assert info.value.reason == "sudo_refused"


# -- refusals --------------------------------------------------------------------------------------


def test_wrong_key_is_auth_failed(lab: SshdLab, server: Sshd) -> None:
    with pytest.raises(AuthenticationFailed) as info:
        open_target(server.spec("root"), **lab.options(identity_file=str(lab.wrong_key)))
    assert info.value.reason == "auth_failed"
    fp = subprocess.run(["ssh-keygen", "-lf", str(lab.wrong_key)], capture_output=True, text=True).stdout.split()[1]
    assert fp in str(info.value)  # which key was refused, never its content
    assert "PRIVATE" not in str(info.value)


def test_unknown_host_key_is_refused_with_its_fingerprint(lab: SshdLab) -> None:
    stranger = lab.sshd(trust=False)
    before = lab.known_hosts.read_text()
    with pytest.raises(HostKeyUnknown) as info:
        open_target(stranger.spec(), **lab.options())
    assert info.value.reason == "host_key_unknown"
    assert stranger.fingerprint() in str(info.value)
    assert lab.known_hosts.read_text() == before  # nothing was added silently


def test_changed_host_key_is_refused_loudly(lab: SshdLab) -> None:
    host = lab.sshd()
    with open_target(host.spec(), **lab.options()) as t:
        assert t.read_file("/etc/hostname")
    host.new_host_key()
    for accept_new in (False, True):  # trust on first use never covers a *changed* key
        with pytest.raises(HostKeyChanged, match="HOST KEY CHANGED") as info:
            open_target(host.spec(), **lab.options(accept_new=accept_new))
        assert info.value.reason == "host_key_changed"
        assert host.fingerprint() in str(info.value)


def test_accept_new_records_the_key_as_openssh_reads_it(lab: SshdLab, tmp_path: Path) -> None:
    host = lab.sshd(trust=False)
    known = tmp_path / "kh" / "known_hosts"  # directory created as needed
    with open_target(host.spec(), **lab.options(known_hosts=str(known), accept_new=True)) as t:
        assert t.run(["true"]).ok
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    assert known.read_text().strip() == host.known_hosts_line()
    # OpenSSH's own client, strict, accepts the file we wrote.
    out = subprocess.run(["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                          "-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null",
                          "-i", str(lab.client_key), "-p", str(host.port), "root@127.0.0.1", "echo", "ok"],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout == "ok\n", out.stderr
    # Second time: known, nothing appended.
    with open_target(host.spec(), **lab.options(known_hosts=str(known), accept_new=True)):
        pass
    assert len(known.read_text().splitlines()) == 1


def test_hashed_known_hosts_entries_are_understood(lab: SshdLab, tmp_path: Path) -> None:
    host = lab.sshd(trust=False)
    known = tmp_path / "hashed"
    known.write_text(host.known_hosts_line() + "\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    assert "|1|" in known.read_text()
    with open_target(host.spec(), **lab.options(known_hosts=str(known))) as t:
        assert t.run(["true"]).ok


def test_revoked_key_is_refused(lab: SshdLab, tmp_path: Path) -> None:
    host = lab.sshd()
    known = tmp_path / "revoked"
    kind, blob = public_line(host.host_key).split()[:2]
    known.write_text(host.known_hosts_line() + f"\n@revoked * {kind} {blob}\n")
    with pytest.raises(HostKeyChanged, match="REVOKED"):
        open_target(host.spec(), **lab.options(known_hosts=str(known)))


def test_silent_listener_times_out(lab: SshdLab) -> None:
    tarpit = lab.silent()
    t0 = time.monotonic()
    with pytest.raises(ConnectTimeout) as info:
        open_target(tarpit.spec(), **lab.options(connect_timeout=1.5))
    assert info.value.reason == "timeout"
    assert time.monotonic() - t0 < 6


def test_closed_port_is_unreachable(lab: SshdLab) -> None:
    from tests.sshd_helpers import free_port

    with pytest.raises(TargetUnreachable) as info:
        open_target(f"ssh://root@127.0.0.1:{free_port()}", **lab.options())
    assert info.value.reason == "unreachable"


def test_host_killed_mid_scan_fails_fast_afterwards(lab: SshdLab) -> None:
    host = lab.sshd()
    t = open_target(host.spec(), **lab.options())
    assert isinstance(t, SSHTarget)
    assert t.read_file("/etc/hostname")
    host.kill_all()
    with pytest.raises(ConnectionLost):
        for _ in range(50):  # the first call may still be answered from buffers
            t.read_file("/etc/passwd")
            time.sleep(0.05)
    assert t.failure is not None and t.failure.reason == "connection_lost"
    t0 = time.monotonic()
    for call in (lambda: t.read_file("/etc/group"), lambda: t.run(["true"]), lambda: t.stat("/etc")):
        with pytest.raises(ConnectionLost):
            call()
    assert time.monotonic() - t0 < 1  # no per-call timeout once the host is known gone
    t.close()


# -- specs and secrets -----------------------------------------------------------------------------


def test_spec_parsing_and_password_refusal() -> None:
    a = SSHAddress.parse("ssh://audit@10.0.0.5:2222")
    assert (a.user, a.host, a.port, a.known_hosts_name) == ("audit", "10.0.0.5", 2222, "[10.0.0.5]:2222")
    b = SSHAddress.parse("ssh://audit@[::1]")
    assert (b.host, b.port, b.known_hosts_name, b.spec) == ("::1", 22, "::1", "ssh://audit@[::1]:22")
    with pytest.raises(ConfigError) as info:
        SSHAddress.parse("ssh://audit:hunter2@10.0.0.5:22")
    assert "hunter2" not in str(info.value) and "password" in str(info.value)
    for bad in ("ssh://audit@host:99999", "ssh://audit@host:22/path", "ssh://audit@host:22?sudo=1", "ssh://"):
        with pytest.raises(ConfigError):
            SSHAddress.parse(bad)


def test_jump_host_reaches_a_host_only_it_can_see(lab: SshdLab) -> None:
    """A bastion in a network namespace; the audited sshd listens on that namespace's own loopback."""
    require(subprocess.run(["ip", "netns", "list"], capture_output=True).returncode == 0, "ip netns unavailable")
    with netns("mm5jump", host_addr="10.205.5.1", ns_addr="10.205.5.2") as ns:
        inner = lab.sshd(netns=ns, listen="127.0.0.1")
        bastion = lab.sshd(netns=ns, listen="10.205.5.2")
        direct = open_target  # the inner host is not reachable from here…
        with pytest.raises(TargetUnreachable):
            direct(inner.spec(), **lab.options(connect_timeout=2))
        # …but through the bastion it is (host keys of both checked against our known_hosts).
        with open_target(inner.spec(), **lab.options(jump=bastion.spec("root"))) as t:
            assert t.run(["true"]).ok
        assert "Accepted publickey for root" in inner.log.read_text()
        inner.stop()
        bastion.stop()


def test_no_secret_reaches_the_remote_process_list(lab: SshdLab, server: Sshd) -> None:
    """What the remote side sees as command lines: fixed strings and quoted argv, never key material."""
    with open_target(server.spec("root"), **lab.options()) as t:
        ps = t.run(["ps", "-eo", "args"]).stdout.decode()
    assert re.search(r"^sh -s$", ps, re.M)  # the scripts travel on stdin…
    assert "MAMORU-FRAME" not in ps  # …never on a command line
    assert str(lab.client_key) not in ps


def test_encrypted_key_works_only_through_ssh_agent(lab: SshdLab, server: Sshd, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """mamoru never asks for a passphrase: an encrypted key is used through ssh-agent, or refused with a hint."""
    require(shutil.which("ssh-agent") is not None and shutil.which("ssh-add") is not None, "ssh-agent missing")
    locked = keygen(tmp_path / "locked", passphrase="correct horse")
    with open(server.authorized_keys, "a") as fh:
        fh.write(public_line(locked) + "\n")
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    with pytest.raises(AuthenticationFailed, match="ssh-add"):
        open_target(server.spec("root"), **lab.options(identity_file=str(locked)))
    sock = lab.root / f"agent-{os.getpid()}.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.05)
        askpass = tmp_path / "askpass"
        askpass.write_text("#!/bin/sh\necho 'correct horse'\n")
        askpass.chmod(0o700)
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock), "SSH_ASKPASS": str(askpass),
               "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0"}
        subprocess.run(["ssh-add", str(locked)], env=env, stdin=subprocess.DEVNULL, check=True,
                       capture_output=True, timeout=30)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(sock))
        with open_target(server.spec("root"), **lab.options(identity_file=str(locked))) as t:
            assert t.run(["true"]).ok
    finally:
        agent.terminate()
        agent.wait(5)


# -- the frame reader, byte by byte ----------------------------------------------------------------


class _TrickleChannel:
    """The lowest boundary of RemoteShell: a channel that hands out its bytes one at a time."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def settimeout(self, timeout: float) -> None:
        pass

    def recv(self, n: int) -> bytes:
        out, self.data = self.data[:1], self.data[1:]
        return out


def _shell_reading(data: bytes) -> object:
    from agent.targets.ssh_shell import RemoteShell

    shell = object.__new__(RemoteShell)
    shell.nonce, shell._buf, shell.chan = "abc", bytearray(), _TrickleChannel(data)  # type: ignore[attr-defined]
    return shell


def test_frames_survive_fragmentation() -> None:
    payload = b"MAMORU-FRAME abc 7 0 5 3\nhello\x00\n!"
    shell = _shell_reading(payload)
    deadline = time.monotonic() + 5
    header = shell._find_line(b"MAMORU-FRAME abc 7 ", deadline, junk_limit=0)  # type: ignore[attr-defined]
    assert header == b"MAMORU-FRAME abc 7 0 5 3"
    assert shell._read_exact(5, deadline) == b"hello"  # type: ignore[attr-defined]
    assert shell._read_exact(3, deadline) == b"\x00\n!"  # type: ignore[attr-defined]


def test_anything_but_the_expected_frame_is_a_broken_shell() -> None:
    from agent.targets.ssh_shell import ShellGone

    shell = _shell_reading(b"MAMORU-FRAME abc 6 0 0 0\n" + b"x" * 100)  # an old frame: out of step
    with pytest.raises(ShellGone):
        shell._find_line(b"MAMORU-FRAME abc 7 ", time.monotonic() + 5, junk_limit=0)  # type: ignore[attr-defined]
    shell = _shell_reading(b"")  # end of stream
    with pytest.raises(ShellGone):
        shell._find_line(b"MAMORU-FRAME abc 7 ", time.monotonic() + 5, junk_limit=0)  # type: ignore[attr-defined]
