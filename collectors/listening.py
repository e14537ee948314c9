"""Sockets this host listens on, and which process owns each.

Read from ``/proc/net/{tcp,tcp6,udp,udp6}`` (the kernel's own socket tables,
the same source ``ss`` and psutil use) so that it works wherever the target
can read files: here, and over SSH. A TCP socket listens in state LISTEN; a
UDP socket "listens" when it is bound and not connected to a peer. Owners come
from ``/proc/PID/fd/*``: each socket descriptor links to ``socket:[INODE]``.
Without root, other users' descriptors are unreadable, so some owners stay
unknown (``process: null``) and the facts say how many processes were hidden.

Addresses in /proc/net are the kernel's 32-bit words printed in host byte
order; this parser assumes a little-endian host (x86, ARM, RISC-V as run by
Linux distributions).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from agent.targets.base import FileMissing, Target, TargetError
from collectors.base import Collector, CollectorError, Facts

TABLES = (("tcp", "tcp", 4), ("tcp6", "tcp", 6), ("udp", "udp", 4), ("udp6", "udp", 6))
TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"  # TCP_CLOSE: bound, no peer
MAX_FD_LINKS = 200_000  # a host with more descriptors than this is not walked to the end
SOCKET_LINK = re.compile(r"socket:\[(\d+)\]")


def decode_address(hexaddr: str, family: int) -> str:
    """/proc/net hex address (little-endian 32-bit words) to text."""
    raw = bytes.fromhex(hexaddr)
    if family == 4:
        if len(raw) != 4:
            raise ValueError(f"bad IPv4 address {hexaddr!r}")
        return str(ipaddress.IPv4Address(raw[::-1]))
    if len(raw) != 16:
        raise ValueError(f"bad IPv6 address {hexaddr!r}")
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))


def parse_table(text: str, proto: str, family: int, where: str) -> list[dict[str, Any]]:
    """The listening rows of one /proc/net table: address, port, proto and socket inode."""
    rows = []
    lines = text.splitlines()
    if not lines or "local_address" not in lines[0]:
        raise ValueError(f"{where}: no header line; not a /proc/net socket table")
    for n, line in enumerate(lines[1:], 2):
        f = line.split()
        if not f:
            continue
        try:
            local, remote, state, inode = f[1], f[2], f[3], int(f[9])
            laddr, lport = local.split(":")
            raddr, rport = remote.split(":")
            port = int(lport, 16)
        except (IndexError, ValueError) as e:
            raise ValueError(f"{where}:{n}: malformed socket line") from e
        if proto == "tcp" and state != TCP_LISTEN:
            continue
        if proto == "udp" and (state != UDP_UNCONNECTED or int(rport, 16) != 0 or int(raddr, 16) != 0):
            continue
        try:
            address = decode_address(laddr, family)
        except ValueError as e:
            raise ValueError(f"{where}:{n}: {e}") from e
        rows.append({"address": address, "port": port, "proto": proto, "inode": inode})
    return rows


#: Processes whose descriptors are fetched together. Listening daemons mostly start early (low pids) and the
#: walk stops once every listening socket has its owner, so the batches stay small and few.
FD_BATCH = 64


def _prefetch_fds(target: Target, pids: list[str]) -> None:
    """The descriptor lists, then every descriptor link, of these processes: two batches over SSH."""
    target.prefetch((f"/proc/{pid}/fd" for pid in pids), op="list")
    links: list[str] = []
    for pid in pids:
        try:
            links += [f"/proc/{pid}/fd/{fd}" for fd in target.list_dir(f"/proc/{pid}/fd")]
        except TargetError:
            continue
    target.prefetch(links[:MAX_FD_LINKS], op="readlink")


def socket_owners(target: Target, inodes: set[int]) -> tuple[dict[int, str], int]:
    """Map socket inodes to process names through /proc/PID/fd; also count processes we could not look into."""
    owners: dict[int, str] = {}
    hidden = 0
    links = 0
    try:
        pids = [p for p in target.list_dir("/proc") if p.isdigit()]
    except TargetError:
        return owners, 0
    for i, pid in enumerate(pids):
        if len(owners) == len(inodes) or links > MAX_FD_LINKS:
            break
        if i % FD_BATCH == 0:
            _prefetch_fds(target, pids[i:i + FD_BATCH])
        try:
            fds = target.list_dir(f"/proc/{pid}/fd")
        except FileMissing:
            continue  # the process exited
        except TargetError:
            hidden += 1
            continue
        found: list[int] = []
        for fd in fds:
            links += 1
            try:
                link = target.readlink(f"/proc/{pid}/fd/{fd}")
            except TargetError:
                continue
            m = SOCKET_LINK.fullmatch(link)
            if m and int(m.group(1)) in inodes:
                found.append(int(m.group(1)))
        if found:
            try:
                comm = target.read_file(f"/proc/{pid}/comm", max_bytes=4096).decode("utf-8", "replace").strip()
            except TargetError:
                comm = f"pid {pid}"
            for ino in found:
                owners.setdefault(ino, comm)
    return owners, hidden


class ListeningCollector(Collector):
    id = "listening"
    reads = tuple(f"/proc/net/{name}" for name, _, _ in TABLES)
    version = "1"
    timeout = 90.0  # Windows: waits for the scan's one PowerShell batch (WindowsCollector.timeout)
    platforms = frozenset({"linux", "windows"})  # Windows: collectors/windows/listening.py, same facts

    def announce(self, target: Target) -> None:
        from collectors.windows import listening as windows

        windows.announce(target)

    def collect(self, target: Target) -> Facts:
        if target.platform().system == "windows":
            from collectors.windows import listening as windows

            return windows.collect(target)
        if not target.can_run:
            raise CollectorError("a directory has no sockets: listening services need a running system")
        rows: list[dict[str, Any]] = []
        read_any = False
        for name, proto, family in TABLES:
            path = f"/proc/net/{name}"
            try:
                text = target.read_file(path).decode("ascii")
            except FileMissing:
                continue  # e.g. no IPv6 in this kernel
            except (TargetError, UnicodeDecodeError) as e:
                raise CollectorError(f"{path}: {e}") from e
            read_any = True
            try:
                rows += parse_table(text, proto, family, path)
            except ValueError as e:
                raise CollectorError(str(e)) from e
        if not read_any:
            raise CollectorError("no /proc/net socket tables on this target (not a running Linux system)")
        owners, hidden = socket_owners(target, {r["inode"] for r in rows if r["inode"]})
        seen: set[tuple[str, int, str, str | None]] = set()
        endpoints = []
        for r in sorted(rows, key=lambda r: (r["proto"], r["port"], r["address"])):
            proc = owners.get(r["inode"])
            key = (r["address"], r["port"], r["proto"], proc)
            if key in seen:
                continue
            seen.add(key)
            endpoints.append({"address": r["address"], "port": r["port"], "proto": r["proto"], "process": proc})
        return {"endpoints": endpoints, "source": "/proc/net", "processes_hidden": hidden}


COLLECTOR = ListeningCollector()
