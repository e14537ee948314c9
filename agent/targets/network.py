"""``network:CIDR``: an office LAN seen from this machine — its devices and the services they offer.

A network is not a host: it has no files and runs no commands. What it has
is addresses, and the collectors of this kind (``lan_discovery``,
``lan_services``, ``tls_versions``) send packets to them. They share one
sweep through ``memo``: discovery runs once per target however many
collectors need the live hosts. Every packet goes through
``agent.scope.guard``; the target itself only refuses networks that no sweep
could sensibly cover (IPv6, too large).
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from agent.errors import ConfigError
from agent.scope import MAX_ADDRESSES, parse_network
from agent.targets.base import (
    DEFAULT_MAX_FILE_BYTES,
    FileStat,
    FileUnreadable,
    PlatformInfo,
    Target,
)

T = TypeVar("T")


class NetworkTarget(Target):
    kind = "network"

    def __init__(self, spec: str, network: ipaddress.IPv4Network) -> None:
        super().__init__(spec)
        self.network = network
        self._memo: dict[str, Any] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @classmethod
    def from_spec(cls, spec: str) -> NetworkTarget:
        text = spec.split(":", 1)[1].removeprefix("//") if ":" in spec else ""
        if not text:
            raise ConfigError("a network target needs a CIDR: network:192.168.10.0/24")
        network = parse_network(text)
        if not isinstance(network, ipaddress.IPv4Network):
            raise ConfigError(f"network:{network}: only IPv4 networks can be swept (ARP has no IPv6 form)")
        if network.num_addresses > MAX_ADDRESSES:
            raise ConfigError(f"network:{network}: larger than {MAX_ADDRESSES} addresses")
        return cls(f"network:{network}", network)

    def hosts(self) -> list[ipaddress.IPv4Address]:
        """Addresses a sweep probes: all but network and broadcast (both kept for /31 and /32)."""
        return list(self.network.hosts()) if self.network.prefixlen < 31 else list(self.network)

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """Compute ``key`` once per target even when several collectors ask at the same time."""
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._memo:
                self._memo[key] = compute()
            value: T = self._memo[key]
            return value

    def platform(self) -> PlatformInfo:
        return PlatformInfo(system="network", hostname=str(self.network), distro="IPv4 network")

    def read_file(self, path: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
        raise FileUnreadable(f"{path}: a network target has no files")

    def list_dir(self, path: str) -> list[str]:
        raise FileUnreadable(f"{path}: a network target has no files")

    def stat(self, path: str) -> FileStat | None:
        return None

