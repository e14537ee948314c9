"""Who is in the ``admin`` group of a Mac: the accounts that may administer it (PM-02).

On macOS the ``admin`` group is what "Allow user to administer this computer" sets, and ``/etc/sudoers``
gives it sudo (``%admin ALL = (ALL) ALL``). The local directory is read with
``dscl -plist . -read /Groups/admin`` (the form configuration tools use, e.g. Puppet's admin-users fact),
as a property list: ``GroupMembership`` holds the short names, ``NestedGroups`` the GUIDs of groups whose
members are administrators too (a directory group added through "Allow administration by"). The group
record holds no secret.
"""

from __future__ import annotations

from typing import Any, ClassVar

from agent.targets.base import CommandResult, Target
from collectors.base import Facts
from collectors.macos.base import MacCollector, parse_plist, run_tool
from collectors.problems import Problem

ARGV = ("/usr/bin/dscl", "-plist", ".", "-read", "/Groups/admin")
WHERE = "dscl /Groups/admin"
KEYS = {"members": "dsAttrTypeStandard:GroupMembership", "nested": "dsAttrTypeStandard:NestedGroups",
        "gid": "dsAttrTypeStandard:PrimaryGroupID", "name": "dsAttrTypeStandard:RecordName"}


def parse_group(stdout: bytes) -> dict[str, Any]:
    """``{"name", "gid", "members", "nested"}`` from the plist dscl prints (each attribute is a list of text)."""
    doc = parse_plist(stdout, WHERE)
    if not isinstance(doc, dict):
        raise Problem("wrong_type", where=WHERE, key="(root)", type=type(doc).__name__)
    out: dict[str, Any] = {}
    for name, key in KEYS.items():
        values = doc.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise Problem("wrong_type", where=WHERE, key=key, type=type(values).__name__)
        out[name] = values
    if out["name"] and "admin" not in out["name"]:
        raise Problem("wrong_type", where=WHERE, key=KEYS["name"], type="another group")
    return out


def _parse(res: CommandResult) -> dict[str, Any]:
    return parse_group(res.stdout)


class AdminsCollector(MacCollector):
    id: ClassVar[str] = "mac_admins"

    def collect(self, target: Target) -> Facts:
        return {"group": run_tool(target, ARGV, _parse)}


COLLECTOR = AdminsCollector()
