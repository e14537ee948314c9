"""Xfce's xfconf channels as the system files set them, and which properties are locked for which user.

xfconfd (xfconfd/xfconf-backend-perchannel-xml.c, xfconf 4.18–4.20) reads a channel from
``xfce4/xfconf/xfce-perchannel-xml/<channel>.xml`` under every ``$XDG_CONFIG_DIRS`` entry, the one of lowest
priority first, then the user's own file. Locks are per user:

- ``<channel locked="LIST">`` or ``unlocked="LIST"`` in a system file locks the whole channel for a user in
  LIST (or, with ``unlocked``, for everyone not in it): every earlier property is dropped, the user's file is
  no longer read, and a later system file whose attribute does not keep the lock is ignored (one with no
  attribute at all is merged, its values still locked);
- ``<property locked="LIST">`` / ``unlocked="LIST"`` locks that property alone (not its children).

LIST is ``;``-separated user names and ``@group`` names, a group counting only its member list in
/etc/group (xfconfd/xfconf-locking-utils.c: the primary group does not count). There is no wildcard:
``locked="*"`` locks only a user named ``*`` (seen with xfconf-query 4.18: the property stays writable).
A scan runs as root, outside any session, so what counts is what is locked for every person who can log in:
the accounts with a uid in login.defs' UID_MIN..UID_MAX, or, with none yet, an account created later (in
no list and no group).

Xfce's Kiosk file (/etc/xdg/xfce4/kiosk/kioskrc) is not read: it restricts xfce4-session and panel actions,
and xfce4-screensaver has no Kiosk capability (no "kiosk" anywhere in its source, xfce4-screensaver
adf46b88), so for the screen lock xfconf's locks are the administrator's only means.
"""

from __future__ import annotations

import posixpath
import xml.etree.ElementTree as ET
from typing import Any, TypedDict

from agent.targets.base import FileMissing, Target
from collectors.accounts import parse_group, parse_passwd
from collectors.settings_problem import SettingsProblem
from collectors.textfiles import read_optional, read_text

CHANNEL_DIR = "xfce4/xfconf/xfce-perchannel-xml"


class Person(TypedDict):
    name: str | None  # None: an account created later (in no list and no group)
    groups: list[str]


class Prop(TypedDict):
    type: str
    value: str | None
    locked: bool


class ChannelView(TypedDict):
    user: str | None
    channel_locked: bool
    properties: dict[str, Prop]


def in_list(person: Person, text: str) -> bool:
    """xfconf_user_is_in_list: a name, or ``@group`` whose /etc/group member list holds the name."""
    for token in text.split(";"):
        if not token:
            continue
        if token.startswith("@"):
            if person["name"] is not None and token[1:] in person["groups"]:
                return True
        elif person["name"] is not None and token == person["name"]:
            return True
    return False


def _lock(person: Person, el: ET.Element) -> bool | None:
    """What a ``locked``/``unlocked`` pair says for this person (``unlocked`` decides when both are set)."""
    unlocked, locked = el.get("unlocked"), el.get("locked")
    if unlocked:
        return not in_list(person, unlocked)
    if locked:
        return in_list(person, locked)
    return None


def _parse(path: str, data: bytes, channel: str) -> ET.Element:
    try:
        root = ET.fromstring(data)  # noqa: S314 - expat refuses external entities; size capped by the target
    except ET.ParseError as e:
        line, column = e.position
        raise SettingsProblem("xfconf_xml", path=path, line=line, column=column) from e
    if root.tag != "channel" or root.get("name") != channel or root.get("version", "").split(".")[0] != "1":
        raise SettingsProblem("xfconf_channel", path=path, channel=channel)
    return root


def view(files: list[tuple[str, ET.Element]], person: Person) -> ChannelView:
    """The channel as xfconfd builds it for ``person`` from the system files (lowest priority first)."""
    out: ChannelView = {"user": person["name"], "channel_locked": False, "properties": {}}
    for _path, root in files:
        state = _lock(person, root)
        if out["channel_locked"] and state is False:
            continue  # "File is not locked, but a previous file is": the file is refused
        # A file with neither attribute says nothing of the lock: its values still win (seen with xfconfd 4.18).
        if not out["channel_locked"] and state is True:
            out["properties"], out["channel_locked"] = {}, True

        def walk(el: ET.Element, prefix: str) -> None:
            for child in el.findall("property"):
                full = f"{prefix}/{child.get('name', '')}"
                old = out["properties"].get(full)
                locked = old["locked"] if old else False
                says = _lock(person, child)
                if out["channel_locked"]:
                    locked = True
                elif says is not None:
                    locked = says
                out["properties"][full] = {"type": child.get("type", ""), "value": child.get("value"),
                                           "locked": locked}
                walk(child, full)

        walk(root, "")
    return out


def read_channel(target: Target, config_dirs: list[str], channel: str) -> list[tuple[str, ET.Element]]:
    """The channel's system files, lowest priority first (the last of $XDG_CONFIG_DIRS first)."""
    found = []
    for d in reversed(config_dirs):
        path = posixpath.join(d, CHANNEL_DIR, f"{channel}.xml")
        try:
            data = target.read_file(path)
        except FileMissing:
            continue
        found.append((path, _parse(path, data, channel)))
    return found


def people(target: Target) -> list[Person]:
    """Who can log in: accounts in login.defs' UID_MIN..UID_MAX with their /etc/group memberships."""
    uid_min, uid_max = 1000, 60000
    defs = read_optional(target, "/etc/login.defs")
    for line in defs.lines if defs else []:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            if parts[0] == "UID_MIN":
                uid_min = int(parts[1])
            elif parts[0] == "UID_MAX":
                uid_max = int(parts[1])
    users, bad = parse_passwd(read_text(target, "/etc/passwd").lines)
    groups, bad_groups = parse_group(read_text(target, "/etc/group").lines)
    if bad or bad_groups:
        raise SettingsProblem("accounts_lines", passwd=bad, group=bad_groups)
    found: list[Person] = [{"name": u["name"], "groups": sorted(g["name"] for g in groups
                                                                  if u["name"] in g["members"])}
                           for u in users if uid_min <= u["uid"] <= uid_max]
    return found or [{"name": None, "groups": []}]


def channel_views(target: Target, config_dirs: list[str], channel: str) -> dict[str, Any]:
    """The channel for each person; with no system file nothing is locked for anyone, whoever they are."""
    files = read_channel(target, config_dirs, channel)
    persons = people(target) if files else [Person(name=None, groups=[])]
    return {"files": [p for p, _ in files], "views": [view(files, p) for p in persons]}
