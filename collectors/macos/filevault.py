"""FileVault: whether the startup volume is encrypted, and whether a profile keeps it from being turned off.

``fdesetup status`` answers in fixed English lines (not localized): "FileVault is On." or "FileVault is Off.",
sometimes followed by "Encryption in progress: Percent completed = 42.5", "Encryption in progress: Pending",
"Decryption in progress: ...", or "Deferred enablement appears to be active for user 'x'." (turned on at the
next login). The mSCP rule ``system_settings_filevault_enforce`` wants "FileVault is On." and the profile key
``dontAllowFDEDisable`` (``com.apple.MCX``) set; both are recorded.
"""

from __future__ import annotations

import re
from typing import Any

from agent.targets.base import CommandResult, Target
from collectors.base import Facts
from collectors.macos.base import MacCollector, lines, managed_preferences, release, run_tool, unknown_answer

FDESETUP = ("/usr/bin/fdesetup", "status")
MSCP = ["system_settings_filevault_enforce"]
_STATE = re.compile(r"^FileVault is (On|Off)\.$")
_PROGRESS = re.compile(r"^(Encryption|Decryption) in progress: (?:Percent completed = (\d+(?:\.\d+)?)|(Pending))",
                       re.I)
_DEFERRED = re.compile(r"^Deferred enablement appears to be active for user")


def parse_fdesetup(res: CommandResult) -> dict[str, Any]:
    """``{"on": bool, "progress": None|"encrypting"|"decrypting", "percent": float|None, "pending": bool,
    "deferred": bool}``; an answer without the "FileVault is On/Off." line is not understood."""
    out: dict[str, Any] = {"on": None, "progress": None, "percent": None, "pending": False, "deferred": False}
    for line in lines(res):
        if m := _STATE.match(line):
            out["on"] = m.group(1) == "On"
        elif m := _PROGRESS.match(line):
            out["progress"] = "encrypting" if m.group(1).lower() == "encryption" else "decrypting"
            out["percent"] = float(m.group(2)) if m.group(2) else None
            out["pending"] = m.group(3) is not None
        elif _DEFERRED.match(line):
            out["deferred"] = True
    if out["on"] is None:
        raise unknown_answer(" ".join(FDESETUP), res)
    return out


class FileVault(MacCollector):
    id = "mac_filevault"

    def collect(self, target: Target) -> Facts:
        return {
            "fdesetup": run_tool(target, FDESETUP, parse_fdesetup),
            "profile": managed_preferences(target, "com.apple.MCX", ("dontAllowFDEDisable",)),
            "release": release(target),
            "mscp": MSCP,
        }


COLLECTOR = FileVault()
