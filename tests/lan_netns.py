"""A throw-away office LAN made of network namespaces: one bridge, a scanner, and hosts with their own MACs.

Used by the LAN tests and by benchmarks/lan.py. Every namespace is named
``mm6<tag>…`` (unique per LAN, so parallel runs cannot collide), every
address lies in a test-only 10.x network that exists only inside them, and
``close()`` kills the servers started in them and deletes them all, so
nothing of it outlives the test even when the test fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path


def available() -> str | None:
    """None when namespaces can be built here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


@dataclasses.dataclass
class Host:
    name: str
    ip: str
    mac: str
    ns: str = ""


class TestLan:
    """``with TestLan(subnet, hosts) as lan:`` — the bridge, the scanner namespace and the hosts, all up."""

    __test__ = False  # not a pytest test class

    def __init__(self, subnet: str, hosts: Sequence[Host], *, scanner_ip: str, scanner_mac: str,
                 prefix: int = 24) -> None:
        self.tag = "mm6" + secrets.token_hex(2)
        self.subnet = subnet
        self.prefix = prefix
        self.hosts = list(hosts)
        self.scanner = Host("scan", scanner_ip, scanner_mac)
        self.bridge_ns = f"{self.tag}br"
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> TestLan:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        _ip("netns", "add", self.bridge_ns)
        self.namespaces.append(self.bridge_ns)
        _ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.bridge_ns, "link", "set", "br0", "up")
        for i, h in enumerate([self.scanner, *self.hosts]):
            h.ns = f"{self.tag}{h.name}"
            _ip("netns", "add", h.ns)
            self.namespaces.append(h.ns)
            # No IPv6: its router solicitations would make the interface counters move on their own.
            subprocess.run(["ip", "netns", "exec", h.ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                            "net.ipv6.conf.default.disable_ipv6=1"], check=True, capture_output=True, timeout=20)
            port = f"p{i}"
            _ip("link", "add", "eth0", "netns", h.ns, "type", "veth", "peer", "name", port, "netns", self.bridge_ns)
            _ip("-n", h.ns, "link", "set", "eth0", "address", h.mac)
            _ip("-n", h.ns, "addr", "add", f"{h.ip}/{self.prefix}", "dev", "eth0")
            _ip("-n", h.ns, "link", "set", "lo", "up")
            _ip("-n", h.ns, "link", "set", "eth0", "up")
            _ip("-n", self.bridge_ns, "link", "set", port, "master", "br0")
            _ip("-n", self.bridge_ns, "link", "set", port, "up")

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def start(self, host: Host, argv: Sequence[str], *, ready_port: int | None = None,
              cwd: str | Path | None = None) -> subprocess.Popen[bytes]:
        """Start a server inside a host's namespace; wait until it listens on ``ready_port``."""
        proc = subprocess.Popen(["ip", "netns", "exec", host.ns, *argv], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=cwd,
                                start_new_session=True)
        self.procs.append(proc)
        if ready_port is not None:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                out = subprocess.run(["ip", "netns", "exec", host.ns, "ss", "-Hltnu", f"sport = :{ready_port}"],
                                     capture_output=True, text=True, timeout=10).stdout
                if out.strip():
                    return proc
                if proc.poll() is not None:
                    raise RuntimeError(f"{argv[0]} exited with {proc.returncode} in {host.ns}")
                time.sleep(0.05)
            raise RuntimeError(f"{argv[0]} did not listen on {ready_port} in {host.ns}")
        return proc

    def run(self, argv: Sequence[str], *, timeout: float = 120, env: dict[str, str] | None = None,
            user: int | None = None) -> subprocess.CompletedProcess[str]:
        """Run a program in the scanner's namespace (as ``user`` when given, to test the unprivileged path)."""
        prefix = ["ip", "netns", "exec", self.scanner.ns]
        if user is not None:
            prefix += ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--"]
        return subprocess.run([*prefix, *argv], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})

    def tx_packets(self) -> int:
        """Frames the scanner's interface has sent: the proof that something was, or was not, sent."""
        out = subprocess.run(["ip", "netns", "exec", self.scanner.ns, "cat",
                              "/sys/class/net/eth0/statistics/tx_packets"], capture_output=True, text=True,
                             check=True, timeout=10).stdout
        return int(out.strip())

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.procs.clear()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
        self.namespaces.clear()


PLAINTEXT_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16)
while True:
    c, _ = s.accept()
    try:
        c.sendall(b"login: ")
    except OSError:
        pass
    c.close()
"""

TFTP_SERVER = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 69))
while True:
    data, peer = s.recvfrom(2048)
    if data[:2] == b"\\x00\\x01":  # RRQ: answer from a fresh port, as TFTP servers do
        r = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        r.sendto(b"\\x00\\x05\\x00\\x01File not found\\x00", peer)
        r.close()
"""


def python_server(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def make_cert(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=mamoru-test",
                    "-days", "2", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True,
                   timeout=60)
    return cert, key


def tls_server(cert: Path, key: Path, port: int, *versions: str) -> list[str]:
    """``openssl s_server`` accepting only the given protocol flags (e.g. -tls1, or -tls1_2 -tls1_3 via ranges)."""
    return ["openssl", "s_server", "-accept", str(port), "-cert", str(cert), "-key", str(key), "-quiet",
            "-cipher", "ALL:@SECLEVEL=0", *versions]
