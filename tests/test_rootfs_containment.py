"""rootfs:DIR never reads outside DIR, even while DIR changes under the scan; every OS error is a target error.

Issue 10 item 6: ``host_path()`` resolved the components and ``os.open`` then followed the links again, so a
directory swapped for a symlink between the two made reports judge the host's own users, hostname and sshd
settings. Here a separate process keeps atomically exchanging directories and files inside DIR with symbolic
links to a tree *outside* DIR whose every file carries a canary, while the target is read thousands of times
and real scans run: only DIR's content or a FileMissing/FileUnreadable may come back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.registry import collectors
from agent.runner import collect_target
from agent.targets.base import FileMissing, FileUnreadable, Target, TargetError
from agent.targets.local import LocalTarget
from agent.targets.rootfs import RootfsTarget
from tests.conftest import FIXTURES

Run = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
CANARY = "canary-outside"
CANARY_MTIME = 1_234_567
LEGIT_MTIME = 1_600_000_000
HARDENED = FIXTURES / "rootfs" / "hardened"
REPO = Path(__file__).resolve().parents[1]

# Runs in its own process (truly concurrent with the reader, unlike a thread under the GIL). Arguments are
# triples DIR A B: exchange DIR/A and DIR/B forever. DIR is held open, so a pair inside a directory that is
# itself being swapped keeps naming the same two entries. renameat2(RENAME_EXCHANGE) swaps atomically;
# where libc or the filesystem lacks it, three renames do the same non-atomically.
SWAPPER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
exchange = getattr(libc, "renameat2", None)
args = sys.argv[1:]
pairs = [(os.open(args[i], os.O_PATH | os.O_DIRECTORY), args[i + 1], args[i + 2]) for i in range(0, len(args), 3)]
print("ready", "renameat2" if exchange else "rename", flush=True)
n = 0
while True:
    for d, a, b in pairs:
        if exchange is not None and exchange(d, a.encode(), d, b.encode(), 2) == 0:
            n += 1
            continue
        exchange = None
        os.rename(a, ".swap-tmp", src_dir_fd=d, dst_dir_fd=d)
        os.rename(b, a, src_dir_fd=d, dst_dir_fd=d)
        os.rename(".swap-tmp", b, src_dir_fd=d, dst_dir_fd=d)
"""


def write(path: Path, content: str, mtime: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    os.utime(path, (mtime, mtime))


@pytest.fixture
def swapping(tmp_path: Path) -> Iterator[Callable[..., None]]:
    """Start swapper processes: ``start(dir, a, b, dir, a, b, ...)``; all are killed when the test ends."""
    procs: list[subprocess.Popen[str]] = []

    def start(*triples: Path | str) -> None:
        proc = subprocess.Popen([sys.executable, "-c", SWAPPER, *map(str, triples)], stdout=subprocess.PIPE,
                                text=True)
        procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().startswith("ready")

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.fixture
def raced_root(tmp_path: Path, swapping: Callable[..., None]) -> Path:
    """DIR with small legitimate files, OUT with canaries, and directories/files of DIR being swapped with links to OUT."""
    root, out = tmp_path / "root", tmp_path / "outside"
    for base, text, mtime in ((root, "legit", LEGIT_MTIME), (out, CANARY, CANARY_MTIME)):
        write(base / "etc" / "hostname", f"{text}-host\n", mtime)
        write(base / "etc" / "ssh" / "sshd_config", f"# {text}\nPermitRootLogin no\n", mtime)
        os.symlink(f"/{text}-target", base / "etc" / "link")
        write(base / "etc" / f"{text}-only", "", mtime)
    # Absolute links name the real host path of OUT (inside DIR they mean DIR/<that path>, which is absent);
    # the relative one climbs out of DIR as the host sees it, and is clamped at DIR's top inside it.
    os.symlink(out / "etc", root / "etc.swap")
    os.symlink("../../outside/etc/ssh", root / "etc" / "ssh.swap")
    os.symlink(out / "etc" / "hostname", root / "etc" / "hostname.swap")
    swapping(root, "etc", "etc.swap", root / "etc", "ssh", "ssh.swap", root / "etc", "hostname", "hostname.swap")
    return root


LEGIT = {"/etc/hostname": b"legit-host\n", "/etc/ssh/sshd_config": b"# legit\nPermitRootLogin no\n"}
ROUNDS = 4000


def test_reads_never_leave_the_root_while_it_is_being_swapped(raced_root: Path) -> None:
    t = RootfsTarget.from_spec(f"rootfs:{raced_root}")
    outcomes = {"legit": 0, "error": 0}

    def legit(ok: bool) -> None:
        outcomes["legit" if ok else "error"] += 1

    for _ in range(ROUNDS):
        for path, expected in LEGIT.items():
            try:
                data = t.read_file(path)
            except (FileMissing, FileUnreadable):
                legit(False)
            else:
                assert data == expected, data
                legit(True)
            try:
                st = t.stat(path)
            except FileUnreadable:
                st = None
            if st is not None:
                assert st.mtime == LEGIT_MTIME and st.size == len(expected), st
            legit(st is not None)
        try:
            names = t.list_dir("/etc")
        except (FileMissing, FileUnreadable):
            legit(False)
        else:
            assert not any(CANARY in n for n in names), names
            legit(True)
        for name in ("link", "hostname"):
            try:
                text = t.readlink(f"/etc/{name}")
            except (FileMissing, FileUnreadable):
                legit(False)
            else:
                assert CANARY not in text, text
                legit(True)
    # Both outcomes happened many times: the swaps really raced the reads.
    assert outcomes["legit"] > 100 and outcomes["error"] > 100, outcomes


def test_scans_never_report_outside_facts_while_the_root_is_being_swapped(
    tmp_path: Path, swapping: Callable[..., None], run_cli: Run
) -> None:
    root, out = tmp_path / "root", tmp_path / "outside"
    shutil.copytree(HARDENED, root, symlinks=True)
    shutil.copytree(HARDENED, out, symlinks=True)
    (out / "etc" / "hostname").write_text(f"{CANARY}-host\n")
    with (out / "etc" / "passwd").open("a") as fh:
        fh.write(f"{CANARY}:x:0:0::/root:/bin/bash\n")
    (out / "etc" / "ssh" / "sshd_config").write_text(f"Banner /{CANARY}\nPermitRootLogin yes\n")
    (out / "etc" / "os-release").write_text(f'NAME="{CANARY}"\nVERSION_ID="1"\n')
    os.symlink(out / "etc", root / "etc.swap")
    os.symlink("../outside/etc/passwd", root / "etc" / "passwd.swap")
    os.symlink(out / "etc" / "ssh", root / "etc" / "ssh.swap")
    swapping(root, "etc", "etc.swap", root / "etc", "passwd", "passwd.swap", root / "etc", "ssh", "ssh.swap")
    every = list(collectors().values())
    deadline = time.monotonic() + 8
    scans = 0
    while (scans < 40 and time.monotonic() < deadline) or scans < 5:
        tf = collect_target(f"rootfs:{root}", every)
        text = json.dumps(tf.to_dict())
        assert CANARY not in text, text[text.find(CANARY) - 300:text.find(CANARY) + 100]
        scans += 1
    for _ in range(3):
        _, doc, _, _ = run_cli("scan", "--target", f"rootfs:{root}", "--quiet")
        assert doc is not None
        assert CANARY not in json.dumps(doc)


def test_legitimate_links_still_resolve_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    write(root / "data" / "real" / "f", "inside\n", LEGIT_MTIME)
    os.symlink("/data/real", root / "abs")            # absolute: from DIR
    os.symlink("data/./real/../real", root / "rel")   # relative, with . and ..
    os.symlink("../../../../data/real/f", root / "data" / "up")  # .. stops at DIR's top
    os.symlink("/abs/f", root / "data" / "two")       # link through a link
    t = RootfsTarget.from_spec(f"rootfs:{root}")
    for p in ("/abs/f", "/rel/f", "/data/up", "/data/two", "/abs/../real/f", "/rel/./f", "/../../abs/f"):
        assert t.read_file(p) == b"inside\n", p
        st = t.stat(p)
        assert st is not None and st.size == 7 and st.mtime == LEGIT_MTIME, p
    assert t.list_dir("/abs") == ["f"] and t.list_dir("/") == ["abs", "data", "rel"]
    assert t.readlink("/abs") == "/data/real"          # the final link itself is not followed
    assert t.readlink("/rel/../up") == "../../../../data/real/f"  # intermediate ones are
    st = t.stat("/abs")
    assert st is not None and st.mode & 0o170000 == 0o040000  # stat follows the final link
    assert t.stat("/") is not None and t.stat("/nothing") is None and t.stat("/data/real/f/x") is None
    with pytest.raises(FileMissing):
        t.read_file("/data/real/f/")  # a trailing slash needs a directory


def chain(root: Path, n: int) -> None:
    write(root / "end", "end\n", LEGIT_MTIME)
    for i in range(n):
        os.symlink(f"/l{i + 1}" if i + 1 < n else "/end", root / f"l{i}")


def test_forty_links_are_followed_and_the_forty_first_is_refused(tmp_path: Path) -> None:
    chain(tmp_path / "ok", 40)
    assert RootfsTarget.from_spec(f"rootfs:{tmp_path / 'ok'}").read_file("/l0") == b"end\n"
    chain(tmp_path / "long", 41)
    t = RootfsTarget.from_spec(f"rootfs:{tmp_path / 'long'}")
    for call in (t.read_file, t.stat, t.list_dir):
        with pytest.raises(FileUnreadable, match="symbolic links"):
            call("/l0")
    with pytest.raises(FileUnreadable, match="symbolic links"):
        t.readlink("/l0/x")


OPS = ("read_file", "stat", "list_dir", "readlink")


@pytest.mark.parametrize("kind", ["rootfs", "local"])
def test_os_errors_become_target_errors(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "root"
    write(root / "etc" / "passwd", "root:x:0:0::/root:/bin/sh\n", LEGIT_MTIME)
    os.symlink("loop", root / "loop")
    t: Target = RootfsTarget.from_spec(f"rootfs:{root}") if kind == "rootfs" else LocalTarget()
    top = "" if kind == "rootfs" else str(root)
    unreadable = dict.fromkeys(OPS, "FileUnreadable")
    cases = {
        "/etc/pass\0wd": unreadable,         # no path can hold a NUL byte: unreadable, never "absent"
        "/etc/" + "x" * 300: unreadable,     # ENAMETOOLONG
        "/loop/x": unreadable,               # ELOOP on the way
        "/etc/passwd/x": {"read_file": "FileMissing", "stat": "None", "list_dir": "FileMissing",
                          "readlink": "FileMissing"},  # a file where a directory is expected
        "/etc/passwd": {"read_file": "ok", "stat": "ok", "list_dir": "FileMissing", "readlink": "FileUnreadable"},
    }
    for path, expected in cases.items():
        got = {}
        for op in OPS:
            try:
                got[op] = "ok" if getattr(t, op)(top + path) is not None else "None"
            except TargetError as e:
                got[op] = type(e).__name__
        assert got == expected, path


def probe(root: Path) -> dict[str, str]:
    """Every call on paths that cross EACCES: the outcome's name, or the raw exception's."""
    t = RootfsTarget.from_spec(f"rootfs:{root}")
    out = {}
    for path in ("/secret/f", "/secret", "/secret/l", "/etc/l", "/etc/unreadable"):
        for op in OPS:
            try:
                out[f"{op} {path}"] = "ok" if getattr(t, op)(path) is not None else "None"
            except Exception as e:
                out[f"{op} {path}"] = type(e).__name__
    return out


def probe_as_nobody(root: Path) -> dict[str, str]:
    """``probe`` in a forked child that became nobody (root is never denied); the answer comes back as JSON."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(rfd)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            os.write(wfd, json.dumps(probe(root)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(wfd)
    with os.fdopen(rfd, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(data)  # type: ignore[no-any-return]


def test_permission_denied_is_unreadable_never_raw(tmp_path: Path) -> None:
    """EACCES on the walk, on the final component and behind a link: always FileUnreadable."""
    base = tmp_path
    if os.geteuid() == 0:  # nobody must reach DIR: pytest's tmp_path is root's alone
        base = Path(tempfile.mkdtemp(prefix="mamoru-denied-"))
        base.chmod(0o755)
    try:
        root = base / "root"
        write(root / "secret" / "f", "secret\n", LEGIT_MTIME)
        os.symlink("/secret/f", root / "secret" / "l")
        write(root / "etc" / "unreadable", "x\n", LEGIT_MTIME)
        os.symlink("/secret/f", root / "etc" / "l")
        (root / "etc" / "unreadable").chmod(0o600)
        (root / "secret").chmod(0o700)
        got = probe_as_nobody(root) if os.geteuid() == 0 else probe(root)
    finally:
        if base is not tmp_path:
            shutil.rmtree(base)
    expected = {f"{op} {p}": "FileUnreadable" for p in ("/secret/f", "/secret/l", "/etc/l")
                for op in OPS}
    expected |= {"read_file /secret": "FileUnreadable", "list_dir /secret": "FileUnreadable",
                 "stat /secret": "ok", "readlink /secret": "FileUnreadable",
                 "read_file /etc/unreadable": "FileUnreadable", "stat /etc/unreadable": "ok",
                 "list_dir /etc/unreadable": "FileMissing", "readlink /etc/unreadable": "FileUnreadable",
                 "readlink /etc/l": "ok"}
    assert got == expected
