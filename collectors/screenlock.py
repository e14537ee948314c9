"""Whether a desktop session is possible here, and GNOME's screen-lock settings as the system imposes them.

A screen lock matters only where someone can sit at a graphical session: a
display manager (gdm3, lightdm, sddm ...) or a session file it would offer.
GNOME's schemas alone prove nothing, since many packages pull them in on
servers. ``session`` records what was looked for and what was found, and which
desktop each session file starts; ``desktops`` holds each desktop's settings:
GNOME here, KDE Plasma (kscreenlockerrc, collectors/kconfig.py) and Xfce
(xfce4-screensaver's xfconf channel, collectors/xfconf.py). Each reader keeps
only what the system enforces, for the same reason as GNOME's below: KDE's
immutable (``[$i]``) entries, xfconf's locked channel or properties.

What a GNOME user *will* get is the schema default (with distribution overrides),
replaced by the first system dconf database in the profile that sets the key;
a key listed in that database's ``locks/`` cannot be changed by the user. A
scan runs as root, outside any user session, so per-user values are not read:
only what the administrator enforces counts as evidence.

Problems are codes with their parts (``{"code": "keyfile_line", "where": ...}``), never sentences: the
checks word them in each language (checks/meta/_facts.yaml).
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import xml.etree.ElementTree as ET
from typing import Any

from agent.targets.base import FileMissing, Target, TargetError
from collectors import data, kconfig, xfconf
from collectors.base import Collector, Facts
from collectors.settings_problem import SettingsProblem
from collectors.textfiles import read_text

SCHEMA_DIR = "/usr/share/glib-2.0/schemas"
SCHEMAS = {
    "org.gnome.desktop.screensaver": ["lock-enabled", "lock-delay", "idle-activation-enabled"],
    "org.gnome.desktop.session": ["idle-delay"],
    "org.gnome.desktop.lockdown": ["disable-lock-screen"],
}
PROFILE = "/etc/dconf/profile/user"
SESSIONS: dict[str, Any] = data.load("desktop_sessions.yaml")


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
    desktops = {name: [f for f in files if any(fnmatch.fnmatchcase(posixpath.basename(f), p) for p in pats)]
                for name, pats in SESSIONS["desktop_sessions"].items()}
    return {"possible": bool(found or files), "display_managers": found, "session_files": files,
            "desktops": {name: fs for name, fs in desktops.items() if fs},
            "looked_for": {"display_managers": {k: list(v) for k, v in SESSIONS["display_managers"].items()},
                           "session_dirs": list(SESSIONS["session_dirs"])},
            "problem": problem}


class ScreenlockCollector(Collector):
    id = "screenlock"
    reads = (PROFILE, "/etc/passwd", "/etc/group", "/etc/login.defs",
             *(f"{d}/{f}" for d in SESSIONS["config_dirs"]
               for f in (SESSIONS["kde"]["file"], SESSIONS["kde"]["restrictions"]["file"],
                         f"{xfconf.CHANNEL_DIR}/{SESSIONS['xfce']['channel']}.xml")))
    lists = (SCHEMA_DIR, "/etc/dconf/db", *SESSIONS["session_dirs"])
    probes = (*(p for paths in SESSIONS["display_managers"].values() for p in paths),
              *(p for paths in SESSIONS["xfce"]["lockers"].values() for p in paths))
    version = "3"

    def collect(self, target: Target) -> Facts:
        session = session_facts(target)
        return {"session": session, "desktops": {"gnome": self._gnome(target),
                                                 "kde": kde_facts(target, "kde" in session["desktops"]),
                                                 "xfce": xfce_facts(target, "xfce" in session["desktops"])}}

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


def kde_facts(target: Target, installed: bool) -> dict[str, Any]:
    """kscreenlockerrc's [Daemon] keys and kdeglobals' lock_screen restriction, as the system directories set them.

    A key the system does not set takes kscreenlocker's default, which is enforced only where an
    administrator made the group or the whole file immutable (the user's own file is then not read).
    """
    spec = SESSIONS["kde"]
    out: dict[str, Any] = {"installed": installed, "config_dirs": list(SESSIONS["config_dirs"]),
                           "defaults": dict(spec["defaults"]),
                           "defaults_source": spec["defaults_source"], "keys": {}, "restriction": None, "files": [],
                           "problem": None}
    if not installed:
        return out
    try:
        st = kconfig.read_system(target, SESSIONS["config_dirs"], spec["file"], {spec["group"]: set(spec["defaults"])})
        rs = spec["restrictions"]
        globs = kconfig.read_system(target, SESSIONS["config_dirs"], rs["file"], {rs["group"]: {rs["key"]}})
    except SettingsProblem as e:
        out["problem"] = e.problem
        return out
    except TargetError as e:
        out["problem"] = {"code": "unreadable", "error": str(e)}
        return out

    def key(state: kconfig.KConfigState, group: str, name: str) -> dict[str, Any]:
        e = state["entries"].get(group, {}).get(name)
        enforced_by = (e["file"] if e and e["immutable"] else state["immutable_groups"].get(group)
                       or state["immutable_file"])
        return {"value": e["value"] if e else None, "set_in": e["file"] if e else None, "immutable": enforced_by}

    out["files"] = st["files"] + globs["files"]
    out["keys"] = {k: key(st, spec["group"], k) for k in spec["defaults"]}
    out["restriction"] = key(globs, rs["group"], rs["key"])
    return out


def xfce_facts(target: Target, installed: bool) -> dict[str, Any]:
    """xfce4-screensaver's xfconf channel as xfconfd builds it for each person who can log in."""
    spec = SESSIONS["xfce"]
    lockers = {name: [p for p in paths if target.exists(p)] for name, paths in spec["lockers"].items()}
    out: dict[str, Any] = {"installed": installed, "config_dirs": list(SESSIONS["config_dirs"]),
                           "channel": spec["channel"], "defaults": dict(spec["defaults"]),
                           "defaults_source": spec["defaults_source"],
                           "lockers": {k: v for k, v in lockers.items() if v}, "files": [], "views": [],
                           "problem": None}
    if not installed:
        return out
    try:
        out.update(xfconf.channel_views(target, SESSIONS["config_dirs"], spec["channel"]))
    except SettingsProblem as e:
        out["problem"] = e.problem
    except TargetError as e:
        out["problem"] = {"code": "unreadable", "error": str(e)}
    return out


COLLECTOR = ScreenlockCollector()
