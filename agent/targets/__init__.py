"""Target kinds, chosen by the scheme of the ``--target`` spec.

The table maps a scheme to a dotted path that is imported only when used, so
``mamoru --help`` never pays for paramiko (testinfra's ``BACKENDS`` idea).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from agent.errors import ConfigError
from agent.targets.base import Target

#: scheme -> "module:factory"; a factory takes the whole spec string.
TARGET_KINDS: dict[str, str] = {
    "local": "agent.targets.local:LocalTarget",
    "rootfs": "agent.targets.rootfs:RootfsTarget.from_spec",
    "ssh": "agent.targets.ssh:SSHTarget.from_spec",
    "bundle": "agent.targets.bundle:BundleTarget.from_spec",
    "network": "agent.targets.network:NetworkTarget.from_spec",
    "wifi": "agent.targets.wifi:WifiTarget.from_spec",
    "wifi-capture": "agent.targets.wifi:CaptureTarget.from_spec",
}


def scheme_of(spec: str) -> str:
    if spec == "local":
        return "local"
    if "://" in spec:
        return spec.split("://", 1)[0]
    if ":" in spec:
        return spec.split(":", 1)[0]
    raise ConfigError(
        f"unknown target {spec!r}: use local, or one of {', '.join(k + ':…' for k in TARGET_KINDS if k != 'local')}"
    )


def check_spec(spec: str) -> None:
    """Refuse an unknown target kind before any work is done (a usage error, exit 2)."""
    scheme = scheme_of(spec)
    if scheme not in TARGET_KINDS:
        raise ConfigError(f"unknown target kind {scheme!r} in {spec!r}; known: {', '.join(sorted(TARGET_KINDS))}")


def open_target(spec: str, **options: object) -> Target:
    """Build the target a spec names. Options are passed to kinds that accept them."""
    scheme = scheme_of(spec)
    dotted = TARGET_KINDS.get(scheme)
    if dotted is None:
        raise ConfigError(f"unknown target kind {scheme!r} in {spec!r}; known: {', '.join(sorted(TARGET_KINDS))}")
    module_name, _, attr = dotted.partition(":")
    obj: object = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    factory: Callable[..., Target] = obj  # type: ignore[assignment]
    return factory(spec, **options) if options else factory(spec)
