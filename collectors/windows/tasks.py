"""Scheduled tasks that run ``mamoru scan`` on a Windows PC, and the newest report they left (MN-03).

Offline, the task definitions are the Task Scheduler XML files under ``Windows/System32/Tasks`` (the registry's
``Schedule\\TaskCache`` is the service's cache of the same definitions): ``Actions/Exec`` says what runs,
``Settings/Enabled`` and each trigger's ``Enabled`` whether it runs by itself. The policy's
``schedule.report_dir`` must then be a Windows path on this volume (``C:\\ProgramData\\mamoru\\reports``); the
facts have the shape of the Linux ``schedule_state`` collector, so the same MN-03 judge reads both.

On a live PC (locally or over SSH) the same files are read through the target, which maps the path from the
system volume's root to its own form (``agent/targets/windows_paths.py``); reading ``System32\\Tasks`` needs
an administrator, and a refusal is a problem in the facts (MN-03: error), never an empty task list.
"""

from __future__ import annotations

import posixpath
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any, ClassVar

from agent.targets.base import Target, TargetError
from agent.targets.registry import RegistryError
from agent.targets.registry_offline import find_ci
from collectors.base import Collector, Facts
from collectors.schedule_state import MAMORU_SCAN, newest_report
from collectors.windows.wlan import safe_xml

TASKS = ("Windows", "System32", "Tasks")
MAX_TASK_BYTES = 256 * 1024
MAX_TASKS = 2000
MAX_DEPTH = 8
_DRIVE = re.compile(r"^([A-Za-z]):[\\/]")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _all(el: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in el.iter() if _local(e.tag) == name]


def _text(el: ET.Element, name: str) -> str:
    found = next((c for c in el if _local(c.tag) == name), None)
    return (found.text or "").strip() if found is not None else ""


def parse_task(raw: bytes) -> dict[str, Any]:
    """What a task runs and whether it runs by itself; ValueError when the file is not a task definition."""
    root = safe_xml(raw)
    if _local(root.tag) != "Task":
        raise ValueError(f"root element is {_local(root.tag)[:40]!r}, not Task")
    commands = [" ".join(p for p in (_text(e, "Command"), _text(e, "Arguments")) if p) for e in _all(root, "Exec")]
    settings = next((c for c in root if _local(c.tag) == "Settings"), None)
    enabled = settings is None or _text(settings, "Enabled").lower() != "false"
    triggers_el = next((c for c in root if _local(c.tag) == "Triggers"), None)
    triggers = [t for t in triggers_el] if triggers_el is not None else []
    active = [t for t in triggers if _text(t, "Enabled").lower() != "false"]
    return {"commands": commands, "enabled": enabled, "triggers": len(triggers), "active_triggers": len(active)}


def image_path(target: Target, windows_path: str) -> str | None:
    """The image path of ``C:\\...`` (case-insensitively), None when it is not on this volume or absent."""
    m = _DRIVE.match(windows_path)
    if m is None:
        return None
    parts = [p for p in re.split(r"[\\/]", windows_path[3:]) if p]
    return find_ci(target, parts)


class WindowsScheduleCollector(Collector):
    id = "win_schedule"
    version = "2"  # 2: read live too (through the target's path mapping)
    platforms: ClassVar[frozenset[str]] = frozenset({"windows"})
    inputs = ("schedule.report_dir",)

    def collect(self, target: Target) -> Facts:
        return self.collect_with(target, {})

    def collect_with(self, target: Target, inputs: Mapping[str, Any]) -> Facts:
        report_dir = str(inputs.get("schedule.report_dir") or "/var/lib/mamoru/reports")
        out: dict[str, Any] = {"collected_at": time.time(), "jobs": [], "report_dir": report_dir,
                               "reports": None, "problems": []}
        try:
            self._tasks(target, out)
            where = image_path(target, report_dir)
        except RegistryError as e:  # find_ci: a folder that cannot be listed
            out["problems"].append(str(e))
            return out
        if _DRIVE.match(report_dir) is None:
            out["problems"].append(f"schedule.report_dir {report_dir} is not a Windows path (C:\\...)")
        elif where is None:
            out["reports"] = {"dir": report_dir, "exists": False, "count": 0, "newest": None, "finished": None,
                              "age_source": None, "problem": None}
        else:
            out["reports"] = newest_report(target, where) | {"dir": report_dir}
        return out

    def _tasks(self, target: Target, out: dict[str, Any]) -> None:
        root = find_ci(target, TASKS)
        if root is None:
            out["problems"].append("no Windows/System32/Tasks folder in the image")
            return
        stack, seen = [(root, 0)], 0
        while stack:
            folder, depth = stack.pop()
            try:
                names = sorted(target.list_dir(folder))
            except TargetError as e:
                out["problems"].append(f"{folder}: {e}")
                continue
            for name in names:
                path = posixpath.join(folder, name)
                st = target.stat(path)
                if st is not None and st.mode & 0o170000 == 0o040000:
                    if depth < MAX_DEPTH:
                        stack.append((path, depth + 1))
                    continue
                seen += 1
                if seen > MAX_TASKS:
                    out["problems"].append(f"more than {MAX_TASKS} task files")
                    return
                try:
                    task = parse_task(target.read_file(path, max_bytes=MAX_TASK_BYTES))
                except (TargetError, ValueError) as e:
                    if b"mamoru" in _peek(target, path):
                        out["problems"].append(f"{path}: {e}")  # a mamoru task that cannot be read
                    continue
                for command in task["commands"]:
                    if MAMORU_SCAN.search(command):
                        task_name = "\\" + path[len(root):].strip("/").replace("/", "\\")
                        out["jobs"].append({"where": f"Task Scheduler {task_name}", "command": command,
                                            "enabled": task["enabled"] and task["active_triggers"] > 0,
                                            "triggers": task["triggers"]})


def _peek(target: Target, path: str) -> bytes:
    try:
        raw = target.read_file(path, max_bytes=MAX_TASK_BYTES)
    except TargetError:
        return b""
    return raw.replace(b"\x00", b"").lower()


WINDOWS_SCHEDULE = WindowsScheduleCollector()
