"""Whether a desktop session is possible here, and GNOME's screen-lock settings as the system imposes them.

A screen lock matters only where someone can sit at a graphical session: a
display manager (gdm3, lightdm, sddm ...) or a session file it would offer.
GNOME's schemas alone prove nothing, since many packages pull them in on
servers. ``session`` records what was looked for and what was found;
``desktops`` holds each desktop's settings (GNOME today; another desktop adds
its own entry and reader without touching the session part).

What a GNOME user *will* get is the schema default (with distribution overrides),
replaced by the first system dconf database in the profile that sets the key;
a key listed in that database's ``locks/`` cannot be changed by the user. A
scan runs as root, outside any user session, so per-user values are not read:
only what the administrator enforces counts as evidence.

Problems are codes with their parts (``{"code": "keyfile_line", "where": ...}``), never sentences: the
checks word them in each language (checks/meta/_facts.yaml).
"""

from __future__ import annotations

import posixpath
import re
import xml.etree.ElementTree as ET
from typing import Any

from agent.targets.base import FileMissing, Target, TargetError
from collectors import data
from collectors.base import Collector, Facts
from collectors.textfiles import read_text

SCHEMA_DIR = "/usr/share/glib-2.0/schemas"
SCHEMAS = {
    "org.gnome.desktop.screensaver": ["lock-enabled", "lock-delay", "idle-activation-enabled"],
    "org.gnome.desktop.session": ["idle-delay"],
    "org.gnome.desktop.lockdown": ["disable-lock-screen"],
}
PROFILE = "/etc/dconf/profile/user"
SESSIONS: dict[str, Any] = data.load("desktop_sessions.yaml")


class SettingsProblem(Exception):
    """A settings file that the desktop would refuse or misread: a code and its parts, worded by the checks."""

    def __init__(self, code: str, **parts: Any) -> None:
        super().__init__(code)
        self.problem = {"code": code, **parts}


def parse_gvariant(text: str) -> bool | int | str:
    """The few GVariant text forms these keys use: booleans and (typed) integers."""
    t = text.strip()
    if t in ("true", "false"):
        return t == "true"
    m = re.fullmatch(r"(?:u?int(?:16|32|64)|byte)?\s*(-?\d+)", t)
    if m:
        return int(m.group(1))
    return t


def key_path(schema: str, key: str) -> str:
    return "/" + schema.replace(".", "/") + "/" + key


def parse_keyfile(lines: list[str], where: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    section = None
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            out.setdefault(section, {})
            continue
        if section is None or "=" not in line:
            raise SettingsProblem("keyfile_line", where=f"{where}:{n}", line=line[:60])
        k, _, v = line.partition("=")
        out[section][k.strip()] = v.strip()
    return out


def session_facts(target: Target) -> dict[str, Any]:
    """Display managers and session files present, and every place looked at (the evidence of "none")."""
    managers = {name: [p for p in paths if target.exists(p)] for name, paths in SESSIONS["display_managers"].items()}
    files: list[str] = []
    problem = None
    for d in SESSIONS["session_dirs"]:
        try:
            files += [posixpath.join(d, n) for n in target.list_dir(d) if n.endswith(".desktop")]
        except FileMissing:
            continue
        except TargetError as e:
            problem = {"code": "unreadable", "error": str(e)}
    found = {name: paths for name, paths in managers.items() if paths}
    return {"possible": bool(found or files), "display_managers": found, "session_files": files,
            "looked_for": {"display_managers": {k: list(v) for k, v in SESSIONS["display_managers"].items()},
                           "session_dirs": list(SESSIONS["session_dirs"])},
            "problem": problem}


class ScreenlockCollector(Collector):
    id = "screenlock"
    reads = (PROFILE,)
    lists = (SCHEMA_DIR, "/etc/dconf/db", *SESSIONS["session_dirs"])
    probes = tuple(p for paths in SESSIONS["display_managers"].values() for p in paths)
    version = "2"

    def collect(self, target: Target) -> Facts:
        return {"session": session_facts(target), "desktops": {"gnome": self._gnome(target)}}

    def _gnome(self, target: Target) -> dict[str, Any]:
        gnome: dict[str, Any] = {"installed": False, "defaults": {}, "system": {}, "locks": [], "databases": [],
                                 "problem": None}
        present = [s for s in SCHEMAS if target.exists(f"{SCHEMA_DIR}/{s}.gschema.xml")]
        if "org.gnome.desktop.screensaver" not in present:
            return gnome
        gnome["installed"] = True
        try:
            gnome["defaults"] = self._defaults(target, present)
            gnome.update(self._system_db(target))
        except SettingsProblem as e:
            gnome["problem"] = e.problem
        except TargetError as e:
            gnome["problem"] = {"code": "unreadable", "error": str(e)}
        return gnome

    def _defaults(self, target: Target, present: list[str]) -> dict[str, Any]:
        defaults: dict[str, Any] = {}
        for schema in present:
            path = f"{SCHEMA_DIR}/{schema}.gschema.xml"
            try:
                root = ET.fromstring(target.read_file(path))  # noqa: S314 - expat refuses external entities; size capped
            except ET.ParseError as e:
                line, column = e.position
                raise SettingsProblem("schema_xml", path=path, line=line, column=column, detail=str(e)) from e
            for sch in root.iter("schema"):
                if sch.get("id") != schema:
                    continue
                for key in sch.iter("key"):
                    name = key.get("name")
                    default = key.findtext("default")
                    if name in SCHEMAS[schema] and default is not None:
                        defaults[key_path(schema, name)] = parse_gvariant(default)
        # Distribution overrides (*.gschema.override), applied in file-name order.
        try:
            names = target.list_dir(SCHEMA_DIR)
        except FileMissing:
            names = []
        for name in names:
            if not name.endswith(".gschema.override"):
                continue
            path = posixpath.join(SCHEMA_DIR, name)
            kf = parse_keyfile(read_text(target, path).lines, path)
            for section, values in kf.items():
                schema = section.split(":")[0]
                for k, v in values.items():
                    if schema in SCHEMAS and k in SCHEMAS[schema]:
                        defaults[key_path(schema, k)] = parse_gvariant(v)
        return defaults

    def _system_db(self, target: Target) -> dict[str, Any]:
        try:
            profile = read_text(target, PROFILE).lines
        except FileMissing:
            return {"databases": [], "system": {}, "locks": []}
        dbs = [line.split(":", 1)[1].strip() for line in profile if line.strip().startswith("system-db:")]
        wanted = {key_path(s, k) for s, keys in SCHEMAS.items() for k in keys}
        system: dict[str, Any] = {}
        locks: set[str] = set()
        # Earlier databases in the profile have priority, so walk them last-to-first and overwrite.
        for db in reversed(dbs):
            d = f"/etc/dconf/db/{db}.d"
            values: dict[str, Any] = {}
            try:
                names = target.list_dir(d)
            except FileMissing:
                names = []
            for name in names:
                path = posixpath.join(d, name)
                st = target.stat(path)
                if st is None or st.mode & 0o170000 != 0o100000:
                    continue
                for section, kv in parse_keyfile(read_text(target, path).lines, path).items():
                    for k, v in kv.items():
                        full = "/" + section.strip("/") + "/" + k
                        if full in wanted:
                            values[full] = parse_gvariant(v)
            system.update(values)
            try:
                lock_names = target.list_dir(f"{d}/locks")
            except FileMissing:
                lock_names = []
            for name in lock_names:
                for line in read_text(target, f"{d}/locks/{name}").lines:
                    if line.strip() and not line.startswith("#"):
                        locks.add(line.strip())
        return {"databases": dbs, "system": system, "locks": sorted(locks & wanted)}


COLLECTOR = ScreenlockCollector()
