"""The local and rootfs targets: bounded reads, chroot-like paths, no commands on a directory."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.targets import open_target
from agent.targets.base import CommandTimeout, CommandUnavailable, FileMissing, FileTooLarge, FileUnreadable
from agent.targets.local import LocalTarget
from agent.targets.rootfs import RootfsTarget
from collectors.textfiles import UndecodableFile, glob, read_text


def test_rootfs_absolute_symlink_stays_inside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "real").write_text("inside\n")
    os.symlink("/etc/real", root / "etc" / "link")
    os.symlink("/etc/passwd", root / "etc" / "hostpasswd")  # must NOT reach the host's /etc/passwd
    os.symlink("../../../../../../etc/shadow", root / "etc" / "escape")
    t = RootfsTarget.from_spec(f"rootfs:{root}")
    assert t.read_file("/etc/link") == b"inside\n"
    with pytest.raises(FileMissing):
        t.read_file("/etc/hostpasswd")
    with pytest.raises(FileMissing):
        t.read_file("/etc/escape")
    with pytest.raises(FileMissing):
        t.read_file("/../../etc/passwd")


def test_rootfs_symlink_loop_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    os.symlink("/b", root / "a")
    os.symlink("/a", root / "b")
    with pytest.raises(FileUnreadable, match="symbolic links"):
        RootfsTarget.from_spec(f"rootfs:{root}").read_file("/a")


def test_rootfs_cannot_run(tmp_path: Path) -> None:
    t = open_target(f"rootfs:{tmp_path}")
    assert not t.can_run
    with pytest.raises(CommandUnavailable):
        t.run(["true"])


def test_rootfs_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        open_target(f"rootfs:{tmp_path / 'nope'}")


def test_unknown_target_kind() -> None:
    with pytest.raises(ConfigError, match="unknown target"):
        open_target("gopher://x")


def test_size_cap_refuses_whole_file(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with big.open("wb") as fh:
        fh.truncate(50 * 1024 * 1024)  # a 50 MB file
    with pytest.raises(FileTooLarge):
        LocalTarget().read_file(str(big))


def test_fifo_does_not_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(FileUnreadable, match="not a regular file"):
        LocalTarget().read_file(str(fifo))


def test_proc_files_are_readable() -> None:
    assert LocalTarget().read_file("/proc/self/status").startswith(b"Name:")


def test_non_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "x").write_bytes(b"ok\n\xff\xfe bad\n")
    with pytest.raises(UndecodableFile, match="UTF-8"):
        read_text(RootfsTarget.from_spec(f"rootfs:{tmp_path}"), "/etc/x")


def test_local_run_uses_c_locale_and_argv() -> None:
    res = LocalTarget().run([sys.executable, "-c", "import os,sys; print(os.environ['LC_ALL'], sys.argv[1])", "a b;$(x)"])
    assert res.stdout.decode().split() == ["C", "a", "b;$(x)"]


def test_local_run_caps_output_and_times_out() -> None:
    res = LocalTarget().run([sys.executable, "-c", "import sys; sys.stdout.write('x' * 5_000_000)"], max_output=1000)
    assert len(res.stdout) == 1000 and res.truncated
    with pytest.raises(CommandTimeout):
        LocalTarget().run([sys.executable, "-c", "import time; time.sleep(30)"], timeout=0.5)
    with pytest.raises(CommandUnavailable):
        LocalTarget().run(["/nonexistent/binary"])


def test_glob_inside_rootfs(tmp_path: Path) -> None:
    d = tmp_path / "etc" / "ssh" / "sshd_config.d"
    d.mkdir(parents=True)
    for name in ("b.conf", "a.conf", "c.txt", ".hidden.conf"):
        (d / name).write_text("")
    t = RootfsTarget.from_spec(f"rootfs:{tmp_path}")
    assert glob(t, "/etc/ssh/sshd_config.d/*.conf") == ["/etc/ssh/sshd_config.d/a.conf", "/etc/ssh/sshd_config.d/b.conf"]
    assert glob(t, "/etc/nothing/*.conf") == []
