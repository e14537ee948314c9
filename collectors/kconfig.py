"""KDE's KConfig files as the system sets them: values, and whether the administrator made them immutable.

KConfig reads a file name (``kscreenlockerrc``) from every configuration directory, the one of lowest
priority first (the last of ``$XDG_CONFIG_DIRS``, ending with ``$XDG_CONFIG_HOME``), each later file
overriding the earlier ones, except where an earlier file marked something immutable with ``[$i]``:

- ``[$i]`` on a line of its own before any group: the whole file (no later file is read);
- ``[Group][$i]``: every key of that group, including keys this file does not set;
- ``Key[$i]=value``: that key.

Immutable is what the administrator enforces (KDE's "Kiosk"); anything else a user's own
``~/.config/<file>`` overrides. A scan runs as root outside any session, so only the system directories are
read (the user's file cannot undo an immutable entry, and anything mutable counts as not enforced).

Lines are trimmed, ``#`` starts a comment, ``Key[ja]=`` (a translation) is not the key itself and
``[$e]``/``[$d]`` flags are kept out of the key name. KConfig skips a line without ``=`` with a warning; we
report it instead (``kconfig_line``), since a file that does not say what its author meant is no evidence.
"""

from __future__ import annotations

import posixpath
import re
from typing import TypedDict

from agent.targets.base import FileMissing, Target
from collectors.settings_problem import SettingsProblem
from collectors.textfiles import read_text

_GROUP = re.compile(r"^\[(?P<names>[^\]]*(?:\]\[[^\]$]*)*)\](?P<flags>(?:\[\$[a-z]+\])*)$")
_KEY = re.compile(r"^(?P<key>[^\[=]+?)\s*(?P<opts>(?:\[[^\]]*\])*)\s*=(?P<value>.*)$")
_ESCAPES = {"s": " ", "t": "\t", "n": "\n", "r": "\r", "\\": "\\", ";": ";", ",": ","}


class Entry(TypedDict):
    value: str
    immutable: bool
    file: str


class KConfigState(TypedDict):
    files: list[str]
    immutable_file: str | None
    immutable_groups: dict[str, str]
    entries: dict[str, dict[str, Entry]]


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), value)


def merge(state: KConfigState, path: str, lines: list[str], wanted: dict[str, set[str]]) -> None:
    """Fold one file into ``state`` as KConfig does, keeping only the wanted groups' wanted keys."""
    if state["immutable_file"]:
        return
    state["files"].append(path)
    group: str | None = None
    group_immutable = False
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            if group is None and line == "[$i]":
                state["immutable_file"] = path
                group_immutable = True
                continue
            m = _GROUP.match(line)
            if not m:
                raise SettingsProblem("kconfig_line", where=f"{path}:{n}", line=line[:60])
            group = m.group("names")
            group_immutable = "[$i]" in m.group("flags") or bool(state["immutable_file"])
            if group_immutable and group in wanted and group not in state["immutable_groups"]:
                state["immutable_groups"][group] = path
            continue
        m = _KEY.match(line)
        if not m:
            raise SettingsProblem("kconfig_line", where=f"{path}:{n}", line=line[:60])
        if group is None or group not in wanted:
            continue
        key, opts = m.group("key").strip(), re.findall(r"\[([^\]]*)\]", m.group("opts"))
        if key not in wanted[group] or any(not o.startswith("$") for o in opts):
            continue  # another key, or a translation (Key[ja]=...)
        have = state["entries"].setdefault(group, {}).get(key)
        if have and have["immutable"]:
            continue
        if state["immutable_groups"].get(group) not in (None, path):
            continue  # an earlier file made the whole group immutable
        immutable = group_immutable or "$i" in opts
        state["entries"][group][key] = {"value": _unescape(m.group("value").strip()), "immutable": immutable,
                                        "file": path}


def read_system(target: Target, config_dirs: list[str], name: str,
                wanted: dict[str, set[str]]) -> KConfigState:
    """``name`` from the system configuration directories (highest priority first, as $XDG_CONFIG_DIRS)."""
    state: KConfigState = {"files": [], "immutable_file": None, "immutable_groups": {}, "entries": {}}
    for d in reversed(config_dirs):
        path = posixpath.join(d, name)
        try:
            lines = read_text(target, path).lines
        except FileMissing:
            continue
        merge(state, path, lines, wanted)
    return state
