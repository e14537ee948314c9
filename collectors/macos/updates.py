"""macOS software updates: what Software Update last found pending, when it last checked, what it installed.

``/Library/Preferences/com.apple.SoftwareUpdate.plist`` is where ``softwareupdated`` keeps the result of its
last check (``LastFullSuccessfulDate``, ``RecommendedUpdates``, ``LastRecommendedUpdatesAvailable``) and
the automatic settings (``AutomaticCheckEnabled``, ``CriticalUpdateInstall``, ``ConfigDataInstall`` ...);
a profile's ``com.apple.SoftwareUpdate`` payload overrides the latter. The mSCP rule
``system_settings_softwareupdate_current`` judges the same ``LastFullSuccessfulDate``. What was installed, and
when, is ``/Library/Receipts/InstallHistory.plist`` (what System Information lists under Installations);
only entries installed by ``softwareupdated`` are kept (macOS updates, security responses, XProtect data).
Plists throughout: ``softwareupdate --history`` prints a table worded for people, which is not read.
"""

from __future__ import annotations

import time
from typing import Any

from agent.targets.base import Target
from collectors.base import Facts
from collectors.macos.base import Answer, MacCollector, managed_preferences, read_plist, release, value_of

PREFS = "/Library/Preferences/com.apple.SoftwareUpdate.plist"
INSTALL_HISTORY = "/Library/Receipts/InstallHistory.plist"
#: Years of history on an old Mac run to a few MB; larger is refused, not parsed.
MAX_HISTORY = 16 * 1024 * 1024
SETTINGS = ("AutomaticCheckEnabled", "AutomaticDownload", "AutomaticallyInstallMacOSUpdates", "CriticalUpdateInstall",
            "ConfigDataInstall")
STATE = ("LastFullSuccessfulDate", "LastSuccessfulDate", "LastRecommendedUpdatesAvailable", "RecommendedUpdates")
RECOMMENDED_KEYS = ("Identifier", "Display Name", "Display Version", "Product Key")
HISTORY_KEYS = ("date", "displayName", "displayVersion", "processName")
#: Kept from the install history: the newest installs by softwareupdated.
HISTORY_KEEP = 40
MSCP = ["system_settings_softwareupdate_current", "system_settings_critical_update_install_enforce",
        "system_settings_software_update_enforce"]


def _prefs(target: Target) -> Answer:
    answer = read_plist(target, PREFS, (*SETTINGS, *STATE))
    v = value_of(answer)
    if isinstance(v, dict) and isinstance(v.get("RecommendedUpdates"), list):  # names only: never more than that
        v["RecommendedUpdates"] = [{k: u.get(k) for k in RECOMMENDED_KEYS if k in u} if isinstance(u, dict) else u
                                   for u in v["RecommendedUpdates"]]
    return answer


def software_update(target: Target) -> dict[str, Any]:
    """The preferences and the profile, read once per target (AV-03 and AV-04 both ask)."""
    return target.shared("macos-softwareupdate", lambda: {
        "prefs": _prefs(target),
        "profile": managed_preferences(target, "com.apple.SoftwareUpdate", SETTINGS),
    })


def _history(target: Target) -> Answer:
    answer = read_plist(target, INSTALL_HISTORY, max_bytes=MAX_HISTORY)
    v = value_of(answer)
    if answer["status"] != "ok":
        return answer
    if not isinstance(v, list):
        return {"source": INSTALL_HISTORY, "status": "error",
                "problem": {"code": "wrong_type", "where": INSTALL_HISTORY, "setting": "/", "type": type(v).__name__}}
    rows = [{k: e.get(k) for k in HISTORY_KEYS} for e in v
            if isinstance(e, dict) and e.get("processName") == "softwareupdated"]
    rows.sort(key=lambda e: str(e.get("date") or ""), reverse=True)
    return {"source": INSTALL_HISTORY, "status": "ok", "value": rows[:HISTORY_KEEP]}


def install_history(target: Target) -> Answer:
    return target.shared("macos-install-history", lambda: _history(target))


class Updates(MacCollector):
    id = "mac_updates"

    def collect(self, target: Target) -> Facts:
        return {**software_update(target), "history": install_history(target), "release": release(target),
                "collected_at": time.time(), "mscp": MSCP}


COLLECTOR = Updates()
