"""XProtect and Gatekeeper: Apple's built-in anti-malware, whether it runs and how new its data is.

Running: on macOS 15 and later ``xprotect status`` says "launch scans: enabled" and "background scans:
enabled" (the lines the mSCP rule ``os_anti_virus_installed`` counts); before 15 the same rule counts the two
launchd jobs ``com.apple.XprotectFramework.PluginService`` and ``com.apple.XProtect.daemon.scan`` in
``launchctl list`` (tab-separated PID, status, label). Gatekeeper: ``spctl --status`` says "assessments
enabled" or "assessments disabled" (``os_gatekeeper_enable``).

Data: the version is the XProtect bundle's ``CFBundleShortVersionString``; from 15 the bundle in use is
``/var/protected/xprotect/XProtect.bundle`` (the one in CoreServices only when that is absent). When it was
installed is the newest ``XProtectPlistConfigData`` install of that version in the install history, or else
the modification time of the bundle's Info.plist (updates through iCloud, from 15.2, leave no history entry).
Whether such data installs by itself is ``ConfigDataInstall`` (``collectors/macos/updates.py``).
"""

from __future__ import annotations

import re
import time
from typing import Any

from agent.targets.base import CommandResult, Target, TargetError
from collectors.base import Facts
from collectors.macos.base import MacCollector, lines, read_plist, release, run_tool, unknown_answer
from collectors.macos.updates import install_history, software_update
from collectors.problems import unreadable

XPROTECT = ("/usr/bin/xprotect", "status")
LAUNCHCTL = ("/bin/launchctl", "list")
SPCTL = ("/usr/sbin/spctl", "--status")
JOBS = ("com.apple.XprotectFramework.PluginService", "com.apple.XProtect.daemon.scan")
BUNDLES = {"protected": "/var/protected/xprotect/XProtect.bundle/Contents/Info.plist",
           "coreservices": "/Library/Apple/System/Library/CoreServices/XProtect.bundle/Contents/Info.plist"}
MSCP = ["os_anti_virus_installed", "os_gatekeeper_enable", "system_settings_critical_update_install_enforce"]
_SCANS = re.compile(r"(launch|background) scans:\s*(enabled|disabled)", re.I)


def parse_xprotect_status(res: CommandResult) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for line in lines(res):
        if m := _SCANS.search(line):
            found[f"{m.group(1).lower()}_scans"] = m.group(2).lower() == "enabled"
    if set(found) != {"launch_scans", "background_scans"}:
        raise unknown_answer(" ".join(XPROTECT), res)
    return found


def parse_launchctl(res: CommandResult) -> dict[str, Any]:
    """Which of the XProtect jobs are loaded (label in the third column), and each one's PID column."""
    rows = [ln.split("\t") for ln in res.stdout.decode("utf-8", "replace").splitlines()]
    if not rows or rows[0][:3] != ["PID", "Status", "Label"]:
        raise unknown_answer(" ".join(LAUNCHCTL), res)
    labels = {r[2].strip(): r[0].strip() for r in rows[1:] if len(r) >= 3}
    return {"jobs": {job: job in labels for job in JOBS}}


def parse_spctl(res: CommandResult) -> dict[str, Any]:
    for line in lines(res):
        if line == "assessments enabled":
            return {"enabled": True}
        if line == "assessments disabled":
            return {"enabled": False}
    raise unknown_answer(" ".join(SPCTL), res)


def bundle(target: Target, path: str) -> dict[str, Any]:
    answer: dict[str, Any] = dict(read_plist(target, path, ("CFBundleShortVersionString", "CFBundleVersion")))
    if answer["status"] == "ok":
        try:
            st = target.stat(path)
            answer["mtime"] = st.mtime if st is not None else None
        except TargetError as e:
            answer["mtime_problem"] = unreadable(e)
    return answer


class XProtect(MacCollector):
    id = "mac_xprotect"

    def collect(self, target: Target) -> Facts:
        history = install_history(target)
        if history["status"] == "ok":
            history = {**history, "value": [e for e in history["value"]
                                            if e.get("displayName") == "XProtectPlistConfigData"]}
        return {
            "status": run_tool(target, XPROTECT, parse_xprotect_status),
            "launchctl": run_tool(target, LAUNCHCTL, parse_launchctl),
            "gatekeeper": run_tool(target, SPCTL, parse_spctl, ok_exit=(0, 1)),
            "bundles": {name: bundle(target, path) for name, path in BUNDLES.items()},
            "history": history,
            "software_update": software_update(target),
            "release": release(target),
            "collected_at": time.time(),
            "mscp": MSCP,
        }


COLLECTOR = XProtect()
