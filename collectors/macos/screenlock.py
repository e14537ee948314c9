"""The screen saver's password and timing on a Mac, as configuration profiles enforce them.

What counts is what the administrator imposes (the same rule as GNOME's dconf locks and Windows' Group
Policy): the managed-preferences layer of ``com.apple.screensaver``, where an installed profile puts
``askForPassword``, ``askForPasswordDelay`` and ``idleTime`` (mSCP rules
``system_settings_screensaver_password_enforce``, ``system_settings_screensaver_ask_for_password_delay_enforce``,
``system_settings_screensaver_timeout_enforce`` read exactly these keys through that layer). The ``ByHost``
domain is recorded too, since profiles that set only the idle time often use it.

``sysadminctl -screenLock status`` (macOS 10.13 and later) tells what the lock delay is set to now, whoever
set it; it answers on stderr, one line ending "screenLock delay is immediate", "screenLock delay is N
seconds" or "screenLock is off". On releases without it the answer is ``missing``.
"""

from __future__ import annotations

import re
from typing import Any

from agent.targets.base import CommandResult, Target
from collectors.base import Facts
from collectors.macos.base import MacCollector, lines, managed_preferences, release, run_tool, unknown_answer

DOMAIN = "com.apple.screensaver"
KEYS = ("askForPassword", "askForPasswordDelay", "idleTime")
SYSADMINCTL = ("/usr/sbin/sysadminctl", "-screenLock", "status")
MSCP = ["system_settings_screensaver_password_enforce", "system_settings_screensaver_ask_for_password_delay_enforce",
        "system_settings_screensaver_timeout_enforce"]
_DELAY = re.compile(r"screenLock delay is (immediate|(-?\d+(?:\.\d+)?) seconds?)$")
_OFF = re.compile(r"screenLock is off$")


def parse_screenlock(res: CommandResult) -> dict[str, Any]:
    """``{"state": "immediate"|"delay"|"off", "delay_seconds": n}`` from the last line that says so."""
    for line in reversed(lines(res)):
        if _OFF.search(line):
            return {"state": "off", "delay_seconds": None}
        m = _DELAY.search(line)
        if m:
            if m.group(1) == "immediate":
                return {"state": "immediate", "delay_seconds": 0}
            seconds = float(m.group(2))
            if seconds < 0:  # "-1 seconds": no lock at all
                return {"state": "off", "delay_seconds": None}
            return {"state": "delay", "delay_seconds": int(seconds)}
    raise unknown_answer(" ".join(SYSADMINCTL), res)


class ScreenLock(MacCollector):
    id = "mac_screenlock"

    def collect(self, target: Target) -> Facts:
        return {
            "managed": managed_preferences(target, DOMAIN, KEYS),
            "managed_byhost": managed_preferences(target, f"{DOMAIN}.ByHost", KEYS),
            "sysadminctl": run_tool(target, SYSADMINCTL, parse_screenlock),
            "release": release(target),
            "mscp": MSCP,
        }


COLLECTOR = ScreenLock()
