"""The macOS application firewall: its live state, its preferences file and the profile that may enforce it.

``socketfilterfw --getglobalstate`` answers "Firewall is enabled. (State = 1)", "Firewall is disabled.
(State = 0)" or "... (State = 2)" (block all incoming); the number is what is read, never the words around
it. ``/Library/Preferences/com.apple.alf.plist`` (``globalstate``, ``stealthenabled``, ``allowsignedenabled``)
is what the firewall kept on releases before 15 and is recorded beside it; the profile keys
(``com.apple.security.firewall``: ``EnableFirewall``, ``EnableStealthMode``, ``BlockAllIncoming``) are the
ones the mSCP rules ``system_settings_firewall_enable`` and ``system_settings_firewall_stealth_mode_enable``
read.
"""

from __future__ import annotations

import re
from typing import Any

from agent.targets.base import CommandResult, Target
from collectors.base import Facts
from collectors.macos.base import (
    MacCollector,
    lines,
    managed_preferences,
    read_plist,
    release,
    run_tool,
    unknown_answer,
)

SOCKETFILTERFW = "/usr/libexec/ApplicationFirewall/socketfilterfw"
ALF_PLIST = "/Library/Preferences/com.apple.alf.plist"
MSCP = ["system_settings_firewall_enable", "system_settings_firewall_stealth_mode_enable"]
_STATE = re.compile(r"\(State = (\d+)\)")


def parse_globalstate(res: CommandResult) -> dict[str, Any]:
    for line in lines(res):
        if m := _STATE.search(line):
            return {"state": int(m.group(1))}
    raise unknown_answer(f"{SOCKETFILTERFW} --getglobalstate", res)


class Firewall(MacCollector):
    id = "mac_firewall"

    def collect(self, target: Target) -> Facts:
        return {
            "globalstate": run_tool(target, (SOCKETFILTERFW, "--getglobalstate"), parse_globalstate),
            "alf": read_plist(target, ALF_PLIST, ("globalstate", "stealthenabled", "allowsignedenabled",
                                                  "allowdownloadsignedenabled")),
            "profile": managed_preferences(target, "com.apple.security.firewall",
                                           ("EnableFirewall", "EnableStealthMode", "BlockAllIncoming")),
            "release": release(target),
            "mscp": MSCP,
        }


COLLECTOR = Firewall()
