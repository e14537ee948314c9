"""Packets on the LAN: an ARP sweep, a TCP-connect probe, and what the kernel already knows.

Everything here that sends calls ``agent.scope.guard`` first, for every
address: the scope interlock lives at the lowest level, so no caller can
forget it. Everything is bounded: a fixed packet rate, a fixed number of
passes, a deadline, and a cap on sockets open at once.

Why not scapy's ``srp``: importing scapy costs most of a second and ``srp``
always waits out its full timeout. A raw AF_PACKET socket sends the same ARP
requests, reads replies as they come, and stops as soon as the last pass has
had its grace period; it needs CAP_NET_RAW (root), else the TCP probe is used.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import ipaddress
import os
import select
import selectors
import socket
import struct
import time
from collections.abc import Iterable, Sequence

from agent.scope import IPNetwork, guard

ETH_P_ARP = 0x0806
#: ARP requests per second: a /24 pass takes ~0.13 s, ~1 Mbit/s of 60-byte frames, nothing for a switch.
ARP_RATE = 2000.0
#: Grace period after each pass for late replies; one retry pass for the addresses still silent (a first
#: ARP is often lost to a NIC in power save, which wakes for broadcasts every DTIM, ~100-300 ms). A silent
#: address thus gets two requests and at least 0.8 s to answer the first.
ARP_WAITS = (0.3, 0.5)
#: TCP ports that almost every live host answers on (accept or reset), for the unprivileged sweep.
ALIVE_PORTS = (80, 443, 22, 445, 139, 3389, 8080, 9100, 631, 5000, 53, 62078)
CONNECT_TIMEOUT = 1.0
MAX_IN_FLIGHT = 128


class ProbeError(Exception):
    """The machine cannot probe this network (no route, no interface)."""


def normalise_mac(mac: str) -> str:
    """'AA-BB-CC-DD-EE-FF' / 'aabb.ccdd.eeff' / 'aa:bb:…' -> 'aa:bb:cc:dd:ee:ff'; raises ValueError."""
    digits = "".join(c for c in mac.lower() if c in "0123456789abcdef")
    if len(digits) != 12 or any(c not in "0123456789abcdef:-. " for c in mac.lower()):
        raise ValueError(f"{mac!r} is not a MAC address")
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def route_for(network: ipaddress.IPv4Network, route_file: str = "/proc/net/route") -> tuple[str, bool]:
    """(interface, on_link) of the most specific IPv4 route covering the network's first address."""
    probe = int(network.network_address)
    best: tuple[int, str, bool] | None = None
    try:
        with open(route_file, encoding="ascii") as f:
            lines = f.read().splitlines()[1:]
    except OSError as e:
        raise ProbeError(f"cannot read the routing table: {e.strerror}") from e
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        iface, dest, gateway, flags, mask = fields[0], fields[1], fields[2], int(fields[3], 16), fields[7]
        if not flags & 0x1:  # RTF_UP
            continue
        # The kernel prints the network-order address as a little-endian word: read it back that way.
        d = struct.unpack("<I", bytes.fromhex(dest))[0]
        m = struct.unpack("<I", bytes.fromhex(mask))[0]
        if probe & m != d:
            continue
        prefix = bin(m).count("1")
        on_link = int(gateway, 16) == 0
        if best is None or prefix > best[0]:
            best = (prefix, iface, on_link)
    if best is None:
        raise ProbeError(f"no route to {network}")
    # A route wider than the network (e.g. the default route) reaches it only through a gateway.
    on_link = best[2] and best[0] <= network.prefixlen
    return best[1], on_link


def interface_mac(iface: str) -> str | None:
    try:
        with open(f"/sys/class/net/{iface}/address", encoding="ascii") as f:
            return normalise_mac(f.read().strip())
    except (OSError, ValueError):
        return None


def source_address(dest: str) -> str:
    """The local address the kernel would use towards ``dest`` (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((dest, 9))
        addr: str = s.getsockname()[0]
        return addr


def arp_cache(arp_file: str = "/proc/net/arp") -> dict[str, str]:
    """Complete neighbour entries the kernel holds: IP -> MAC."""
    out: dict[str, str] = {}
    try:
        with open(arp_file, encoding="ascii") as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) >= 4 and int(fields[2], 16) & 0x2 and fields[3] != "00:00:00:00:00:00":
            with contextlib.suppress(ValueError):
                out[fields[0]] = normalise_mac(fields[3])
    return out


def open_packet_socket(iface: str) -> socket.socket:
    """An AF_PACKET socket for ARP on ``iface``; PermissionError without CAP_NET_RAW."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
    try:
        s.bind((iface, ETH_P_ARP))
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


def _arp_request(src_mac: bytes, src_ip: bytes, target: bytes) -> bytes:
    eth = b"\xff" * 6 + src_mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + src_mac + src_ip + b"\x00" * 6 + target
    return (eth + arp).ljust(60, b"\x00")


def arp_sweep(sock: socket.socket, src_mac: str, src_ip: str, addresses: Sequence[str], *,
              scope: Sequence[IPNetwork], rate: float = ARP_RATE, waits: Sequence[float] = ARP_WAITS,
              deadline: float = 60.0) -> dict[str, set[str]]:
    """Who answers ARP for each address: IP -> MACs (more than one MAC for an IP is itself a finding)."""
    mac_b = bytes.fromhex(src_mac.replace(":", ""))
    ip_b = socket.inet_aton(src_ip)
    wanted = set(addresses)
    found: dict[str, set[str]] = {}
    stop = time.monotonic() + deadline
    gap = 1.0 / rate

    def drain() -> None:
        while True:
            try:
                frame = sock.recv(2048)
            except (BlockingIOError, InterruptedError):
                return
            if len(frame) < 42 or frame[12:14] != b"\x08\x06" or frame[20:22] != b"\x00\x02":
                continue
            if frame[38:42] != ip_b:
                continue
            sender = socket.inet_ntoa(frame[28:32])
            if sender in wanted:
                found.setdefault(sender, set()).add(frame[22:28].hex(":"))

    pending = list(addresses)
    for wait in waits:
        due = time.monotonic()
        for addr in pending:
            guard(addr, scope)
            with contextlib.suppress(BlockingIOError, InterruptedError):
                sock.send(_arp_request(mac_b, ip_b, socket.inet_aton(addr)))
            due += gap
            drain()
            delay = due - time.monotonic()
            if delay > 0:
                select.select([sock], [], [], delay)
                drain()
            if time.monotonic() > stop:
                return found
        grace = min(time.monotonic() + wait, stop)
        while (left := grace - time.monotonic()) > 0 and len(found) < len(wanted):
            select.select([sock], [], [], left)
            drain()
        pending = [a for a in pending if a not in found]
        if not pending:
            break
    return found


def tcp_probe(targets: Iterable[tuple[str, int]], *, scope: Sequence[IPNetwork], timeout: float = CONNECT_TIMEOUT,
              in_flight: int = MAX_IN_FLIGHT, stop_host_on_answer: bool = False,
              deadline: float = 120.0) -> dict[tuple[str, int], str]:
    """Non-blocking TCP connects: (ip, port) -> 'open' | 'closed' (reset) | 'filtered' (no answer).

    ``stop_host_on_answer`` skips the remaining ports of a host once one answered (liveness sweep).
    """
    queue = list(targets)
    results: dict[tuple[str, int], str] = {}
    answered: set[str] = set()
    sel = selectors.DefaultSelector()
    started: dict[socket.socket, tuple[tuple[str, int], float]] = {}
    stop = time.monotonic() + deadline
    i = 0
    try:
        while (i < len(queue) or started) and time.monotonic() < stop:
            while i < len(queue) and len(started) < in_flight:
                key = queue[i]
                i += 1
                if stop_host_on_answer and key[0] in answered:
                    continue
                guard(key[0], scope)
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                rc = s.connect_ex(key)
                if rc in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                    sel.register(s, selectors.EVENT_WRITE, data=s)
                    started[s] = (key, time.monotonic() + timeout)
                else:
                    results[key] = "closed" if rc == errno.ECONNREFUSED else "filtered"
                    s.close()
            now = time.monotonic()
            soonest = min((t for _, t in started.values()), default=now)
            for sk, _ in sel.select(timeout=max(0.0, min(soonest - now, 0.2))):
                s = sk.data
                key, _t = started.pop(s)
                sel.unregister(s)
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                results[key] = "open" if err == 0 else ("closed" if err == errno.ECONNREFUSED else "filtered")
                if results[key] != "filtered":
                    answered.add(key[0])
                s.close()
            now = time.monotonic()
            for s, (key, t) in list(started.items()):
                if now >= t:
                    results[key] = "filtered"
                    sel.unregister(s)
                    s.close()
                    del started[s]
    finally:
        for s in started:
            s.close()
        sel.close()
    return results


@functools.cache
def _bundled() -> dict[str, str]:
    from collectors.data import load

    return {str(k): str(v) for k, v in load("oui.yaml").items()}


#: Complete OUI lists installed with nmap and Wireshark, read only for prefixes the bundled table lacks.
SYSTEM_OUI_FILES = ("/usr/share/nmap/nmap-mac-prefixes", "/usr/share/wireshark/manuf")


def vendors(macs: Iterable[str]) -> dict[str, str]:
    """OUI ("aa:bb:cc") -> registered vendor for the given MACs; random (locally administered) ones are skipped."""
    wanted = {m[:8] for m in macs if not locally_administered(m)}
    found = {p: _bundled()[p] for p in wanted if p in _bundled()}
    for path in SYSTEM_OUI_FILES:
        missing = wanted - set(found)
        if not missing:
            break
        nmap_style = {p.replace(":", "").upper() for p in missing}
        manuf_style = {p.upper() for p in missing}
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line[:6] in nmap_style and line[6:7] == " ":
                        found.setdefault(":".join(line[i:i + 2] for i in (0, 2, 4)).lower(), line[7:].strip())
                    elif line[:8] in manuf_style and line[8:9] == "\t":
                        parts = line.rstrip("\n").split("\t")
                        found.setdefault(parts[0].lower(), (parts[2] if len(parts) > 2 else parts[1]).strip())
        except OSError:
            continue
    return found


def vendor(mac: str) -> str | None:
    """The registered vendor of one MAC's OUI; None for unknown or locally administered (random) addresses."""
    return vendors([mac]).get(mac[:8])


def locally_administered(mac: str) -> bool:
    """Bit 1 of the first byte: set on randomised (privacy) MACs of phones and laptops, and on VMs."""
    return bool(int(mac[:2], 16) & 0x02)


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
