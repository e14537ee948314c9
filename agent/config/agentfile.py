"""``agent.yaml``: what the scheduled ``mamoru agent run`` does, in the platform's own place.

It is read like a policy (the hardened loader of ``yamlfile``, then ``agent.schema.json``), so a wrong key, a
wrong type or an alias is exit 2 naming the file and the line. Paths must be absolute: the scheduler starts
the agent from a directory nobody chose, and a relative path would then name a different file.
"""

from __future__ import annotations

import ntpath
import posixpath
import sys
from pathlib import Path
from typing import Any, TypedDict

from agent.config.yamlfile import line_of, load_config_yaml, load_schema, validate
from agent.errors import ConfigError

#: Where ``install`` writes the config and ``run``/``status``/``uninstall`` look for it (``--config`` overrides).
DEFAULT_PATHS = {"linux": "/etc/mamoru/agent.yaml",
                 "windows": r"C:\ProgramData\mamoru\agent.yaml",
                 "macos": "/Library/Application Support/mamoru/agent.yaml"}
PATH_KEYS = ("policy", "sign_key", "reports")


class Retention(TypedDict, total=False):
    days: int
    count: int


class Push(TypedDict):
    url: str
    token_file: str


class AgentConfig(TypedDict, total=False):
    every: str
    policy: str | None
    sign_key: str | None
    reports: str
    scope: str
    checks: list[str]
    retention: Retention
    push: Push
    lang: str
    source: str  # the file it came from (not a key of the file)


def host_os() -> str:
    """linux, windows or macos: which scheduler and which default paths apply here."""
    if sys.platform == "win32":
        return "windows"
    return "macos" if sys.platform == "darwin" else "linux"


def default_path() -> str:
    if host_os() == "windows":
        import os

        return str(Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "mamoru" / "agent.yaml")
    return DEFAULT_PATHS[host_os()]


def is_absolute(path: str) -> bool:
    """Absolute on POSIX or on Windows (an agent.yaml for a Windows PC may be written on Linux)."""
    return posixpath.isabs(path) or (ntpath.isabs(path) and ntpath.splitdrive(path)[0] != "")


def agent_schema() -> dict[str, Any]:
    return load_schema("agent.config", "agent.schema.json")


def load_agent_config(path: str | Path) -> AgentConfig:
    """The validated config, or a ConfigError (exit 2) with ``file:line``."""
    source = str(path)
    value, node = load_config_yaml(path, what="agent config")
    if value is None:
        value = {}
    validate(value, node, agent_schema(), source)
    checked: dict[str, Any] = {"every": "daily", "lang": "en", **value}
    paths: list[tuple[tuple[str, ...], Any]] = [((k,), checked.get(k)) for k in PATH_KEYS]
    if "push" in checked:
        paths.append((("push", "token_file"), checked["push"]["token_file"]))
    for keys, p in paths:
        if p is not None and not is_absolute(p):
            line = line_of(node, list(keys))
            where = f"{source}:{line}" if line else source
            raise ConfigError(f"{where}: {'.'.join(keys)}: give an absolute path (the scheduler starts mamoru in a "
                              "directory of its own choosing)")
    checked["source"] = source
    config: AgentConfig = AgentConfig(**checked)  # type: ignore[typeddict-item]
    return config
