"""The inventory: which machines to audit over SSH, how to reach them, and what is special about each.

Validated like the policy (JSON Schema, then file:line errors), parsed at the
edge into frozen objects. Each target may carry policy overrides (a file
server keeps logs longer); they are validated against the *policy* schema, so
a typo there is caught with its line too, not at judging time. There is no
place for a password: keys (``identity_file`` or ssh-agent) only.

Example::

    defaults:
      user: audit
      identity_file: ~/.ssh/mamoru_audit
      sudo: true
    targets:
      - name: fileserver
        address: 10.0.0.5
        tags: {role: file-server}
        policy:
          logging: {retention_days: 730}
      - address: 10.0.0.21
        port: 2222
        jump: {address: bastion.example.jp, user: audit}
"""

from __future__ import annotations

import dataclasses
import getpass
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from agent.config.yamlfile import line_of, load_config_yaml, load_schema, validate
from agent.errors import ConfigError

#: Keys that would hold a secret: refused with a pointed message rather than "unknown key".
SECRET_KEYS = frozenset({"password", "passwd", "passphrase", "pass", "secret", "key_passphrase"})


@dataclasses.dataclass(frozen=True, kw_only=True)
class JumpHost:
    address: str
    port: int = 22
    user: str
    identity_file: str | None = None

    @property
    def spec(self) -> str:
        return ssh_spec(self.user, self.address, self.port)


@dataclasses.dataclass(frozen=True, kw_only=True)
class InventoryTarget:
    name: str
    address: str
    port: int = 22
    user: str
    identity_file: str | None = None
    sudo: bool | None = None  # None: not said here (the command line decides)
    jump: JumpHost | None = None
    connect_timeout: float | None = None
    command_timeout: float | None = None
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    policy: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    line: int = 0

    @property
    def spec(self) -> str:
        return ssh_spec(self.user, self.address, self.port)


@dataclasses.dataclass(frozen=True, kw_only=True)
class Inventory:
    source: str
    targets: tuple[InventoryTarget, ...]


def ssh_spec(user: str, address: str, port: int) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"ssh://{user}@{host}:{port}"


def inventory_schema() -> dict[str, Any]:
    return load_schema("agent.config", "inventory.schema.json")


def _node_at(node: yaml.Node | None, path: Sequence[Any]) -> yaml.Node | None:
    for key in path:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == str(key)), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return None
    return node


def _refuse_secrets(value: Any, node: yaml.Node | None, source: str, path: list[Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and k.lower() in SECRET_KEYS:
                line = line_of(node, [*path, k])
                raise ConfigError(f"{source}:{line}: {k!r}: an inventory holds no passwords or passphrases "
                                  "(files get copied and committed); use keys: identity_file, or ssh-agent "
                                  "for an encrypted key")
            _refuse_secrets(v, node, source, [*path, k])
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _refuse_secrets(v, node, source, [*path, i])


def _path(value: str | None, base: Path) -> str | None:
    """``~`` expands; a relative key path is relative to the inventory file, not to the shell's directory."""
    if value is None:
        return None
    p = Path(os.path.expanduser(value))
    return str(p if p.is_absolute() else (base / p))


def load_inventory(path: str | Path) -> Inventory:
    p = Path(path)
    source = str(p)
    value, node = load_config_yaml(p, what="mamoru inventory")
    if not isinstance(value, dict):
        raise ConfigError(f"{source}:1: an inventory is a mapping with a 'targets' list")
    _refuse_secrets(value, node, source, [])
    validate(value, node, inventory_schema(), source)
    from agent.config.policy import policy_schema

    base = p.resolve().parent
    defaults: dict[str, Any] = value.get("defaults") or {}
    targets: list[InventoryTarget] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(value["targets"]):
        line = line_of(node, ["targets", i]) or 0
        if "policy" in raw:
            validate(raw["policy"], _node_at(node, ["targets", i, "policy"]), policy_schema(), source)
        merged = {**defaults, **raw}
        user = merged.get("user") or getpass.getuser()
        jump = merged.get("jump")
        target = InventoryTarget(
            name="",
            address=raw["address"],
            port=int(merged.get("port", 22)),
            user=user,
            identity_file=_path(merged.get("identity_file"), base),
            sudo=merged.get("sudo"),
            jump=JumpHost(address=jump["address"], port=int(jump.get("port", 22)), user=jump.get("user", user),
                          identity_file=_path(jump.get("identity_file"), base)) if jump else None,
            connect_timeout=merged.get("connect_timeout"),
            command_timeout=merged.get("command_timeout"),
            tags={**(defaults.get("tags") or {}), **(raw.get("tags") or {})},
            policy=raw.get("policy") or {},
            line=line,
        )
        name = raw.get("name") or target.spec
        target = dataclasses.replace(target, name=name)
        if name in seen:
            raise ConfigError(f"{source}:{line}: target {name!r} is listed twice (first at line {seen[name]}); "
                              "give each entry its own name")
        seen[name] = line
        targets.append(target)
    return Inventory(source=source, targets=tuple(targets))
