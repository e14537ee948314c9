"""Real OpenSSH servers for tests and benchmarks, started and stopped by PID.

Every instance gets its own directory (config, host key, authorized_keys, log)
and listens on 127.0.0.1 in the 24000-25999 range reserved for the SSH tests,
or inside a network namespace the test creates (names prefixed ``mm5``).
Test users and sudo rules never touch the real ``/etc``: an instance that needs
them runs in a private mount namespace (``unshare -m``) where copies of
``/etc/passwd``, ``/etc/shadow``, ``/etc/group`` and ``/etc/sudoers.d`` with the
extra entries are bind-mounted, so only that sshd and its sessions see them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SFTP_SERVER = "/usr/lib/openssh/sftp-server"
PORT_FIRST, PORT_LAST = 24000, 25999
_port_lock = threading.Lock()
_next_port = [PORT_FIRST + (os.getpid() * 7) % 1500]


def sshd_available() -> bool:
    return os.path.exists(SSHD) and shutil.which("ssh-keygen") is not None


def sudo_missing() -> str | None:
    """Why sudo rules cannot be given to test users here (None: they can).

    A sudo rule lives in a copy of ``/etc/sudoers.d`` bind-mounted over the real one: without sudo installed
    there is neither a ``sudo`` to run nor a directory to mount over.
    """
    if shutil.which("sudo") is None:
        return "sudo is not installed (apt-get install sudo): test users with sudo rules need it"
    if not os.path.isdir("/etc/sudoers.d"):
        return "/etc/sudoers.d does not exist: test users with sudo rules need sudo's drop-in directory"
    return None


def shell_startup_files() -> list[str]:
    """Root's shell start-up files, which the test servers' sessions must not run.

    sshd runs every command through the user's shell, and Debian's bash reads ``~/.bashrc`` even for
    ``bash -c`` when sshd started it. A developer's ``.bashrc`` may do anything: this machine's runs
    ``pyenv init``, whose ``pyenv rehash`` holds a lock file while it works; a test that kills a host
    mid-session (SIGKILL to the whole sshd tree) can leave that lock behind, and from then on every new
    session waits on it until the client times out. The servers stand for an audited host, not for this
    developer's account, so in their private mount namespace these files are empty.
    """
    import pwd

    try:
        home = pwd.getpwuid(0).pw_dir
    except KeyError:
        return []
    return [p for p in (os.path.join(home, ".bashrc"),) if os.path.isfile(p)]


class SudoUnavailable(RuntimeError):
    """A server with sudo rules was asked for on a machine without sudo."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port in our range that nothing listens on right now."""
    with _port_lock:
        for _ in range(PORT_LAST - PORT_FIRST + 1):
            port = _next_port[0]
            _next_port[0] = PORT_FIRST if port >= PORT_LAST else port + 1
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port in 24000-25999")


def keygen(path: Path, kind: str = "ed25519", passphrase: str = "") -> Path:
    """A new key pair at ``path`` / ``path.pub`` (private key 0600)."""
    for p in (path, path.with_name(path.name + ".pub")):
        p.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", passphrase, "-C", "mamoru-test", "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL)
    path.chmod(0o600)
    return path


def public_line(key: Path) -> str:
    return key.with_name(key.name + ".pub").read_text().strip()


@dataclasses.dataclass(frozen=True)
class LoginUser:
    """A login that exists only inside one sshd's mount namespace."""

    name: str
    uid: int
    sudo_rule: str | None = None  # e.g. "ALL=(ALL) NOPASSWD: ALL"
    shell: str = "/bin/sh"


class Sshd:
    """One real ``sshd -D`` with its own host key, authorized_keys and log."""

    def __init__(self, workdir: Path, *, authorized_keys: Sequence[str], port: int | None = None,
                 listen: str = "127.0.0.1", users: Sequence[LoginUser] = (), netns: str | None = None,
                 host_key_type: str = "ed25519", extra_config: str = "") -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.listen = listen
        self.port = port or free_port(listen if netns is None else "127.0.0.1")
        self.users = list(users)
        self.netns = netns
        self.host_key = self.dir / "host_key"
        self.host_key_type = host_key_type
        self.authorized_keys = self.dir / "authorized_keys"
        self.authorized_keys.write_text("".join(k + "\n" for k in authorized_keys))
        self.authorized_keys.chmod(0o644)
        self.log = self.dir / "sshd.log"
        self.config = self.dir / "sshd_config"
        self.extra_config = extra_config
        self.proc: subprocess.Popen[bytes] | None = None
        if any(u.sudo_rule for u in self.users) and (why := sudo_missing()) is not None:
            raise SudoUnavailable(why)
        keygen(self.host_key, host_key_type)
        self._write_config()

    def _write_config(self) -> None:
        self.config.write_text(
            f"Port {self.port}\n"
            f"ListenAddress {self.listen}\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.dir / 'sshd.pid'}\n"
            "UsePAM no\n"
            "StrictModes no\n"
            f"AuthorizedKeysFile {self.authorized_keys}\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PrintMotd no\n"
            "PrintLastLog no\n"
            "MaxStartups 200:30:400\n"
            "MaxSessions 20\n"
            "LogLevel VERBOSE\n"
            f"Subsystem sftp {SFTP_SERVER}\n"
            + self.extra_config
        )

    # -- lifecycle -----------------------------------------------------------------------------

    def _argv(self) -> list[str]:
        argv = [SSHD, "-D", "-f", str(self.config), "-E", str(self.log)]
        if self.users or shell_startup_files():
            argv = ["unshare", "-m", "--propagation", "private", "/bin/sh", str(self._mount_script())]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        return argv

    def _mount_script(self) -> Path:
        """Copies of the account files with the test users, bind-mounted in a private mount namespace; and an
        empty file over root's shell start-up files (see ``shell_startup_files``)."""
        empty = self.dir / "empty-startup-file"
        empty.write_text("")
        binds: list[tuple[Path, str]] = [(empty, path) for path in shell_startup_files()]
        if self.users:
            binds += self._account_binds()
        script = self.dir / "mounts.sh"
        lines = ["set -e"]
        lines += [f"mount --bind {shlex.quote(str(src))} {shlex.quote(dst)}" for src, dst in binds]
        lines.append("exec " + " ".join(shlex.quote(a) for a in
                                         [SSHD, "-D", "-f", str(self.config), "-E", str(self.log)]))
        script.write_text("\n".join(lines) + "\n")
        return script

    def _account_binds(self) -> list[tuple[Path, str]]:
        etc = self.dir / "etc"
        etc.mkdir(exist_ok=True)
        passwd = Path("/etc/passwd").read_text()
        shadow = Path("/etc/shadow").read_text()
        group = Path("/etc/group").read_text()
        sudoers_d = etc / "sudoers.d"
        sudoers_d.mkdir(exist_ok=True)
        for u in self.users:
            home = self.dir / "home" / u.name
            home.mkdir(parents=True, exist_ok=True)
            os.chown(home, u.uid, u.uid)
            passwd += f"{u.name}:x:{u.uid}:{u.uid}:mamoru test:{home}:{u.shell}\n"
            shadow += f"{u.name}:*:19000:0:99999:7:::\n"  # "*": no password, not locked: key login only
            group += f"{u.name}:x:{u.uid}:\n"
            if u.sudo_rule:
                rule = sudoers_d / f"mm5-{u.name}"
                rule.write_text(f"{u.name} {u.sudo_rule}\n")
                rule.chmod(0o440)
        for name, text in (("passwd", passwd), ("shadow", shadow), ("group", group)):
            (etc / name).write_text(text)
        (etc / "shadow").chmod(0o640)
        binds = [(etc / "passwd", "/etc/passwd"), (etc / "shadow", "/etc/shadow"), (etc / "group", "/etc/group")]
        if any(u.sudo_rule for u in self.users):
            binds.append((sudoers_d, "/etc/sudoers.d"))
        return binds

    def start(self, timeout: float = 5.0) -> Sshd:
        Path("/run/sshd").mkdir(exist_ok=True)
        self.log.write_text("")
        self.proc = subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "Server listening" in self.log.read_text(errors="replace"):
                return self
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"sshd exited: {err} {self.log.read_text(errors='replace')}")
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"sshd did not start: {self.log.read_text(errors='replace')}")

    def _tree(self) -> list[int]:
        import psutil

        if self.proc is None:
            return []
        try:
            root = psutil.Process(self.proc.pid)
            return [root.pid, *(c.pid for c in root.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def kill_all(self) -> None:
        """The host dies: the listener and every session process, at once (SIGKILL)."""
        for pid in self._tree():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=5)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.kill_all()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def new_host_key(self) -> None:
        """Reinstall (or impersonate) the host: same address, different key."""
        running = self.proc is not None
        self.stop()
        keygen(self.host_key, self.host_key_type)
        if running:
            self.start()

    # -- what a client needs -------------------------------------------------------------------

    @property
    def address(self) -> str:
        return self.listen

    def spec(self, user: str = "root") -> str:
        host = f"[{self.listen}]" if ":" in self.listen else self.listen
        return f"ssh://{user}@{host}:{self.port}"

    def known_hosts_line(self) -> str:
        kind, blob = public_line(self.host_key).split()[:2]
        name = self.listen if self.port == 22 else f"[{self.listen}]:{self.port}"
        return f"{name} {kind} {blob}"

    def fingerprint(self) -> str:
        out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(self.host_key) + ".pub"],
                             check=True, capture_output=True, text=True).stdout
        return out.split()[1]


class SilentListener:
    """Accepts TCP connections and never says a word (a hung host, a tarpit)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = free_port(host)
        self.sock.bind((host, self.port))
        self.sock.listen(64)
        self.host = host
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self._conns.append(conn)

    def spec(self, user: str = "root") -> str:
        return f"ssh://{user}@{self.host}:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for c in self._conns:
            c.close()
        self.sock.close()


@contextlib.contextmanager
def netns(name: str, *, host_addr: str, ns_addr: str, prefix: int = 30) -> Iterator[str]:
    """A network namespace joined to this one by a veth pair (``<name>h`` here, ``<name>n`` inside)."""
    assert name.startswith("mm5") and len(name) <= 13
    host_if, ns_if = f"{name}h", f"{name}n"

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, stdin=subprocess.DEVNULL)

    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    subprocess.run(["ip", "link", "del", host_if], capture_output=True)
    try:
        ip("netns", "add", name)
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        ip("link", "set", ns_if, "netns", name)
        ip("addr", "add", f"{host_addr}/{prefix}", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("-n", name, "addr", "add", f"{ns_addr}/{prefix}", "dev", ns_if)
        ip("-n", name, "link", "set", ns_if, "up")
        ip("-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)


class SshdLab:
    """Servers, a client key, a wrong key and a known_hosts file for one test module; closed at the end."""

    def __init__(self) -> None:
        # Not under pytest's tmp dir: that is 0700, and sshd reads authorized_keys as the logging-in user.
        import tempfile

        self.root = Path(tempfile.mkdtemp(prefix="mm5-ssh-"))
        self.root.chmod(0o755)
        root = self.root
        self.client_key = keygen(root / "client_key")
        self.wrong_key = keygen(root / "wrong_key")
        self.known_hosts = root / "known_hosts"
        self.known_hosts.write_text("")
        self.servers: list[Sshd] = []
        self.listeners: list[SilentListener] = []
        self._n = 0

    def sshd(self, *, users: Sequence[LoginUser] = (), trust: bool = True, netns: str | None = None,
             listen: str = "127.0.0.1", extra_config: str = "", port: int | None = None,
             authorized: Sequence[str] | None = None) -> Sshd:
        self._n += 1
        if any(u.sudo_rule for u in users):
            from tests.conftest import require

            why = sudo_missing()
            require(why is None, why or "")
        server = Sshd(self.root / f"sshd{self._n}", authorized_keys=authorized or [public_line(self.client_key)],
                      users=users, netns=netns, listen=listen, extra_config=extra_config, port=port)
        self.servers.append(server)
        server.start()
        if trust:
            self.trust(server)
        return server

    def trust(self, server: Sshd) -> None:
        with self.known_hosts.open("a") as fh:
            fh.write(server.known_hosts_line() + "\n")

    def silent(self) -> SilentListener:
        listener = SilentListener()
        self.listeners.append(listener)
        return listener

    def options(self, **extra: object) -> dict[str, object]:
        """Target options for open_target: our key, our known_hosts, short timeouts."""
        opts: dict[str, object] = {"identity_file": str(self.client_key), "known_hosts": str(self.known_hosts),
                                   "connect_timeout": 5.0}
        opts.update(extra)
        return opts

    def cli(self) -> list[str]:
        return ["--identity-file", str(self.client_key), "--known-hosts", str(self.known_hosts),
                "--connect-timeout", "5"]

    def close(self) -> None:
        for s in self.servers:
            with contextlib.suppress(Exception):
                s.stop()
        for listener in self.listeners:
            with contextlib.suppress(Exception):
                listener.close()
        shutil.rmtree(self.root, ignore_errors=True)
