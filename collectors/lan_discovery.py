"""``lan_discovery``: every device that answers on the declared network, with its MAC and vendor.

As root the network is swept with ARP (every IPv4 device on a LAN must
answer ARP, whatever its firewall says); without CAP_NET_RAW a TCP-connect
probe of common ports finds hosts that answer on any of them, and the
kernel's neighbour table then supplies their MACs (it also reveals hosts
that dropped every probe, since the kernel resolved them first). A routed
network (no on-link interface) can only be probed with TCP and its MACs stay
unknown: the facts say so instead of inventing them.
"""

from __future__ import annotations

import abc
import ipaddress
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from agent.errors import ConfigError
from agent.scope import IPNetwork, parse_scope, require_in_scope
from agent.targets.base import Target
from agent.targets.network import NetworkTarget
from collectors import lan_probe
from collectors.base import Collector, CollectorError, Facts


class NetworkCollector(Collector):
    """A collector that sends packets: it runs only with the policy's scope, and only inside it."""

    platforms: ClassVar[frozenset[str]] = frozenset({"network"})
    inputs: ClassVar[tuple[str, ...]] = ("network.scope",)

    def collect(self, target: Target) -> Facts:
        return self.collect_with(target, {})  # no policy, no scope: refused below, nothing is sent

    def collect_with(self, target: Target, inputs: Mapping[str, Any]) -> Facts:
        if not isinstance(target, NetworkTarget):
            raise CollectorError(f"a {target.kind} target is not a network")
        try:
            scope = parse_scope(inputs.get("network.scope"))
            require_in_scope(target.network, scope)
        except ConfigError as e:
            raise CollectorError(str(e)) from e
        return self.gather(target, scope)

    @abc.abstractmethod
    def gather(self, target: NetworkTarget, scope: Sequence[IPNetwork]) -> Facts: ...


def discover(target: NetworkTarget, scope: Sequence[IPNetwork]) -> dict[str, Any]:
    """The sweep, once per target (lan_services and tls_versions reuse it through ``target.memo``)."""
    return target.memo("discovery", lambda: _discover(target.network, [str(a) for a in target.hosts()], scope))


def _discover(network: ipaddress.IPv4Network, addresses: list[str], scope: Sequence[IPNetwork]) -> dict[str, Any]:
    t0 = time.monotonic()
    notes: list[str] = []
    try:
        iface, on_link = lan_probe.route_for(network)
    except lan_probe.ProbeError as e:
        raise CollectorError(str(e)) from e
    src_ip = lan_probe.source_address(addresses[0])
    src_mac = lan_probe.interface_mac(iface)
    answers: dict[str, set[str]] = {}
    seen_by: dict[str, str] = {}
    method = "tcp"
    if on_link and src_mac:
        try:
            sock = lan_probe.open_packet_socket(iface)
        except PermissionError:
            notes.append("not allowed to send raw ARP (needs root or CAP_NET_RAW): used a TCP-connect probe")
        else:
            method = "arp"
            with sock:
                answers = lan_probe.arp_sweep(sock, src_mac, src_ip, [a for a in addresses if a != src_ip],
                                               scope=scope)
    elif not on_link:
        notes.append(f"{network} is reached through a gateway: ARP cannot see it, MAC addresses stay unknown")
    if method == "tcp":
        # On a LAN one connect per address suffices: the kernel ARP-resolves every host that exists before
        # the SYN leaves, so its neighbour table lists them even when every port is filtered. Through a
        # gateway only an answering port proves a host, so more ports are tried.
        ports = lan_probe.ALIVE_PORTS[:1] if on_link else lan_probe.ALIVE_PORTS
        probed = lan_probe.tcp_probe(((a, p) for a in addresses if a != src_ip for p in ports),
                                     stop_host_on_answer=True, scope=scope, in_flight=512)
        alive = {ip for (ip, _), state in probed.items() if state != "filtered"}
        cache = lan_probe.arp_cache() if on_link else {}
        wanted = set(addresses)
        for ip in alive | {ip for ip in cache if ip in wanted and ip != src_ip}:
            answers[ip] = {cache[ip]} if ip in cache else set()
            seen_by[ip] = "tcp" if ip in alive else "arp-cache"
    names = lan_probe.vendors([m for macs in answers.values() for m in macs] + ([src_mac] if src_mac else []))
    devices = [_device(ip, mac, seen_by.get(ip, method), names) for ip, macs in answers.items()
               for mac in ([*sorted(macs)] if macs else [None])]
    if ipaddress.ip_address(src_ip) in network:
        devices.append({**_device(src_ip, src_mac, "self", names), "self": True})
    devices.sort(key=lambda d: (ipaddress.ip_address(d["ip"]), d["mac"] or ""))
    return {
        "network": str(network), "method": method, "interface": iface, "on_link": on_link,
        "source": {"ip": src_ip, "mac": src_mac}, "addresses_probed": len(addresses),
        "devices": devices, "duration_s": round(time.monotonic() - t0, 3), "notes": notes,
    }


def _device(ip: str, mac: str | None, seen_by: str, names: dict[str, str]) -> dict[str, Any]:
    return {
        "ip": ip, "mac": mac, "vendor": names.get(mac[:8]) if mac else None,
        "locally_administered": lan_probe.locally_administered(mac) if mac else None,
        "seen_by": seen_by, "self": False,
    }


class LanDiscovery(NetworkCollector):
    id = "lan_discovery"
    version = "1"
    timeout = 180.0

    def gather(self, target: NetworkTarget, scope: Sequence[IPNetwork]) -> Facts:
        return discover(target, scope)


COLLECTOR = LanDiscovery()
