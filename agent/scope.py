"""The network scope: which addresses mamoru may send a packet to, and the interlock that enforces it.

Sweeping a network that is not yours is at best rude and at worst an
offence, so the policy must *declare* the networks an operator may scan
(``network.scope``). Enforcement happens twice:

1. ``check_specs`` refuses every ``network:`` target outside the declared
   scope before any collector runs (a configuration error, exit 2);
2. the collectors that send receive the scope from the policy (their
   ``inputs``) and every function that sends calls ``guard(address, scope)``
   for each address first. A collector run without a policy has an empty
   scope, and an empty scope lets nothing out: a forgotten path fails closed.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from agent.errors import ConfigError

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Largest network one ``network:`` target may sweep. A /20 is already 4094
#: addresses; a bigger target is nearly always a typo (``/8`` for ``/24``).
MAX_ADDRESSES = 4096

#: Target schemes that send packets to addresses and so must lie in the scope.
NETWORK_SCHEMES = ("network",)


class OutOfScope(ConfigError):
    """A network target or an address is outside the policy's ``network.scope``. Exit 2."""

    hint = "add the network to network.scope in the policy file, if you are allowed to scan it"


def parse_network(text: str) -> IPNetwork:
    """A CIDR as the user wrote it; host bits set are an error, not silently cleared."""
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as e:
        try:
            loose = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise ConfigError(f"{text!r} is not a network in CIDR notation (e.g. 192.168.10.0/24)") from e
        raise ConfigError(f"{text!r} has host bits set; did you mean {loose}?") from e


def parse_scope(items: Iterable[Any] | None) -> list[IPNetwork]:
    """``network.scope`` entries as networks; None or empty means nothing may be scanned."""
    return [parse_network(str(item)) for item in (items or [])]


def policy_scope(policy: Any) -> list[IPNetwork]:
    """The networks the policy allows mamoru to scan (``network.scope``); empty means none."""
    return parse_scope(policy.get("network.scope", []) if hasattr(policy, "get") else [])


def contains(scope: Iterable[IPNetwork], network: IPNetwork) -> bool:
    return any(network.version == s.version and network.subnet_of(s) for s in scope)  # type: ignore[arg-type]


def require_in_scope(network: IPNetwork, scope: Sequence[IPNetwork]) -> None:
    """Raise OutOfScope unless ``network`` lies wholly inside one scope entry."""
    if not scope:
        raise OutOfScope(
            f"refusing to scan {network}: the policy declares no network.scope, so mamoru sends no packets"
        )
    if not contains(scope, network):
        raise OutOfScope(
            f"refusing to scan {network}: it is outside the policy's network.scope "
            f"({', '.join(str(s) for s in scope)}); nothing was sent"
        )


def network_of_spec(spec: str) -> IPNetwork | None:
    """The network a ``network:CIDR`` spec names, or None for other target kinds."""
    scheme, sep, rest = spec.partition(":")
    if not sep or scheme not in NETWORK_SCHEMES:
        return None
    return parse_network(rest.removeprefix("//"))


def check_specs(specs: Iterable[str], policy: Any) -> list[IPNetwork]:
    """Refuse (before anything is sent) every network target outside the policy's scope; return the scope."""
    scope = policy_scope(policy)
    for spec in specs:
        network = network_of_spec(spec)
        if network is None:
            continue
        if network.num_addresses > MAX_ADDRESSES:
            raise ConfigError(
                f"network:{network} has {network.num_addresses} addresses; mamoru sweeps at most "
                f"{MAX_ADDRESSES} per target (split it into smaller networks)"
            )
        require_in_scope(network, scope)
    return scope


def guard(address: str | IPAddress, scope: Sequence[IPNetwork]) -> None:
    """Raise OutOfScope unless ``address`` lies in ``scope``. Every function that sends calls this first."""
    ip = ipaddress.ip_address(str(address))
    if not any(ip.version == s.version and ip in s for s in scope):
        raise OutOfScope(f"refusing to send a packet to {ip}: not inside the policy's network.scope")
