"""``lan_services``: which of the ports that matter each live host on the network accepts connections on.

The facts have the shape of the ``listening`` collector (``endpoints`` of
address, port, proto, process), so TX-02 judges a host's own sockets and the
LAN's open ports with one rule. ``process`` is always None: from the network
nobody can see which program answers. The scanning machine itself is not
probed (``mamoru scan --target local`` audits its sockets from the inside).
"""

from __future__ import annotations

import functools
import selectors
import socket
import time
from collections.abc import Sequence
from typing import Any

from agent.scope import IPNetwork, guard
from agent.targets.network import NetworkTarget
from collectors import lan_probe
from collectors.base import Facts
from collectors.lan_discovery import NetworkCollector, discover

TFTP_PROBE = b"\x00\x01" + b"mamoru-probe-no-such-file\x00octet\x00"
UDP_TIMEOUT = 1.0


@functools.cache
def port_table() -> dict[str, dict[int, str]]:
    """{'tcp': {port: service}, 'tls': {...}, 'udp': {...}} from lan_ports.yaml and plaintext_ports.yaml."""
    from collectors.data import load

    own = load("lan_ports.yaml")
    table: dict[str, dict[int, str]] = {k: {int(p): str(s) for p, s in own.get(k, {}).items()}
                                        for k in ("tcp", "tls", "udp")}
    for key, info in load("plaintext_ports.yaml").items():
        port, _, proto = str(key).partition("/")
        table["tcp" if proto == "tcp" else "udp"].setdefault(int(port), str(info["service"]))
    return table


def live_hosts(target: NetworkTarget, scope: Sequence[IPNetwork]) -> list[str]:
    found = discover(target, scope)
    return sorted({d["ip"] for d in found["devices"] if not d["self"]},
                  key=lambda ip: tuple(int(x) for x in ip.split(".")))


def probe(target: NetworkTarget, scope: Sequence[IPNetwork]) -> dict[str, Any]:
    """TCP states of every probed port and TFTP answers, once per target."""
    return target.memo("services", lambda: _probe(live_hosts(target, scope), scope))


def _probe(hosts: list[str], scope: Sequence[IPNetwork]) -> dict[str, Any]:
    table = port_table()
    ports = sorted(set(table["tcp"]) | set(table["tls"]))
    t0 = time.monotonic()
    states = lan_probe.tcp_probe(((h, p) for h in hosts for p in ports), scope=scope)
    udp = {69: tftp_probe(hosts, scope)} if 69 in table["udp"] else {}
    return {"hosts": hosts, "tcp_ports": ports, "tcp": states, "udp": udp,
            "duration_s": round(time.monotonic() - t0, 3)}


def tftp_probe(hosts: list[str], scope: Sequence[IPNetwork], timeout: float = UDP_TIMEOUT) -> list[str]:
    """Hosts that answer a TFTP read request (an error or data packet, from any port, as TFTP does)."""
    answered: set[str] = set()
    if not hosts:
        return []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        for h in hosts:
            guard(h, scope)
            try:
                s.sendto(TFTP_PROBE, (h, 69))
            except OSError:
                continue
        wanted = set(hosts)
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(s, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0 and answered != wanted:
                if not sel.select(left):
                    break
                try:
                    data, (addr, _port) = s.recvfrom(2048)
                except (BlockingIOError, ConnectionRefusedError):
                    continue
                if addr in wanted and len(data) >= 4 and data[:2] in (b"\x00\x03", b"\x00\x05", b"\x00\x06"):
                    answered.add(addr)
    return sorted(answered)


class LanServices(NetworkCollector):
    id = "lan_services"
    version = "1"
    timeout = 300.0

    def gather(self, target: NetworkTarget, scope: Sequence[IPNetwork]) -> Facts:
        result = probe(target, scope)
        table = port_table()
        names = {**table["tls"], **table["tcp"]}
        endpoints = [{"address": h, "port": p, "proto": "tcp", "process": None}
                     for (h, p), state in sorted(result["tcp"].items(), key=_order) if state == "open"]
        endpoints += [{"address": h, "port": port, "proto": "udp", "process": None}
                      for port, hosts in result["udp"].items() for h in hosts]
        filtered = sum(1 for s in result["tcp"].values() if s == "filtered")
        notes = ["UDP: only TFTP (69) is asked; a UDP port that stays silent may be open or closed"]
        if filtered:
            notes.append(f"{filtered} host/port pairs did not answer (filtered or host gone)")
        return {
            "endpoints": endpoints,
            "services": {f"{p}/tcp": n for p, n in sorted(names.items())}
            | {f"{p}/udp": n for p, n in sorted(table["udp"].items())},
            "hosts": result["hosts"],
            "ports_probed": {"tcp": result["tcp_ports"], "udp": sorted(result["udp"])},
            "duration_s": result["duration_s"],
            "notes": notes,
        }


def _order(item: tuple[tuple[str, int], str]) -> tuple[tuple[int, ...], int]:
    (h, p), _ = item
    return tuple(int(x) for x in h.split(".")), p


COLLECTOR = LanServices()
