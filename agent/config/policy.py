"""The policy: the thresholds and lists a check judges against.

A user's policy file only names what it changes; it is validated against
``policy.schema.json`` (unknown keys and wrong types are errors with file and
line) and laid over the built-in default. The report records the policy's
name and the SHA-256 of its exact bytes, so a finding can always be traced to
the rule it was held against.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from agent.config.yamlfile import load_schema, parse_yaml, read_config_bytes, validate
from agent.errors import ConfigError


class Policy:
    """Merged policy data; read-only by convention (checks are pure)."""

    def __init__(self, *, name: str, sha256: str, data: Mapping[str, Any], source: str) -> None:
        self.name = name
        self.sha256 = sha256
        self.data = data
        self.source = source

    def __getitem__(self, section: str) -> Any:
        return self.data[section]

    def overlay(self, overrides: Mapping[str, Any]) -> Policy:
        """This policy with one target's overrides (from an inventory, already validated) laid over it."""
        if not overrides:
            return self
        return Policy(name=self.name, sha256=self.sha256, data=_merge(dict(self.data), overrides), source=self.source)

    def to_wire(self) -> dict[str, Any]:
        """As JSON for a scanner process (``from_wire`` on the other side)."""
        return {"name": self.name, "sha256": self.sha256, "data": self.data, "source": self.source}

    @classmethod
    def from_wire(cls, d: Mapping[str, Any]) -> Policy:
        return cls(name=d["name"], sha256=d["sha256"], data=d["data"], source=d["source"])

    def get(self, dotted: str, default: Any = None) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Lay ``over`` on ``base``: mappings merge key by key, everything else (lists too) replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def default_policy_bytes() -> bytes:
    return resources.files("agent.config").joinpath("default_policy.yaml").read_bytes()


def _default_data() -> dict[str, Any]:
    value, _ = parse_yaml(default_policy_bytes(), "default_policy.yaml")
    if not isinstance(value, dict):
        raise ConfigError("built-in default policy is not a mapping")
    return value


def load_policy(path: str | Path | None = None, *, overrides: Mapping[str, Any] | None = None) -> Policy:
    """The default policy, or a policy file laid over it (plus per-target overrides, already validated)."""
    defaults = _default_data()
    if path is None:
        raw = default_policy_bytes()
        data = defaults
        name = str(defaults.get("name", "mamoru-default"))
        source = "(built-in default)"
    else:
        p = Path(path)
        raw = read_config_bytes(p)
        value, node = parse_yaml(raw, str(p))
        if value is None:
            value = {}
        validate(value, node, policy_schema(), str(p))
        data = _merge(defaults, value)
        name = str(value.get("name") or p.stem)
        source = str(p)
    if overrides:
        data = _merge(data, overrides)
    return Policy(name=name, sha256=hashlib.sha256(raw).hexdigest(), data=data, source=source)


def policy_schema() -> dict[str, Any]:
    return load_schema("agent.config", "policy.schema.json")
