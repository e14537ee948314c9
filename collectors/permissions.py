"""File permissions of the places a policy names: personal-data folders (AC-02) and logs (LG-04).

Both collectors take their paths from the policy (``inputs``) and echo them
in the facts, so a later evaluation knows what was looked at. Data folders are
walked to the bottom (bounded), and the kernel's rule is applied: "others" can
read a file only if they can also search every directory above it, so a
``0750`` folder hides ``0644`` files below it. Anything that cannot be listed
or stat'ed is recorded, because an unreadable subtree is unknown, not safe.
"""

from __future__ import annotations

import posixpath
import stat as st
from collections import deque
from collections.abc import Mapping
from typing import Any

from agent.targets.base import FileStat, Target, TargetError
from collectors.base import Collector, Facts

MAX_ENTRIES = 20000
MAX_DEPTH = 32
MAX_EXAMPLES = 50
LOG_MAX_ENTRIES = 5000
LOG_MAX_DEPTH = 3


def _kind(s: FileStat) -> str:
    if st.S_ISDIR(s.mode):
        return "dir"
    if st.S_ISREG(s.mode):
        return "file"
    return "other"


def _ancestors(path: str) -> list[str]:
    out, cur = [], posixpath.dirname(path.rstrip("/") or "/")
    while True:
        out.append(cur)
        if cur == "/":
            break
        cur = posixpath.dirname(cur)
    return list(reversed(out))


def _describe(path: str, s: FileStat) -> dict[str, Any]:
    return {"path": path, "type": _kind(s), "mode": f"{st.S_IMODE(s.mode):04o}", "uid": s.uid, "gid": s.gid}


def _is_link(target: Target, path: str) -> bool:
    try:
        target.readlink(path)
    except TargetError:
        return False
    return True


def _children(target: Target, directory: str, rec: dict[str, Any], room: int) -> list[tuple[str, FileStat]]:
    """A directory's entries with their stats, at most ``room`` of them (beyond: ``truncated``); what cannot
    be listed or stat'ed goes to ``unreadable``. A dangling link, or an entry removed meanwhile, is skipped."""
    try:
        names = target.list_dir(directory)
    except TargetError as e:
        rec["unreadable"].append(str(e))
        return []
    out: list[tuple[str, FileStat]] = []
    for name in names:
        if len(out) >= room:
            rec["truncated"] = True
            break
        child = posixpath.join(directory, name)
        cs = _stat(target, child, rec)
        if cs is not None:
            out.append((child, cs))
    return out


def _stat(target: Target, path: str, rec: dict[str, Any]) -> FileStat | None:
    """stat(); what cannot be stat'ed is noted in ``unreadable`` and, like an absent path, gives None."""
    try:
        return target.stat(path)
    except TargetError as e:
        rec["unreadable"].append(str(e))
        return None


def walk_data_path(target: Target, path: str) -> dict[str, Any]:
    rec: dict[str, Any] = {"path": path, "exists": False, "entries": 0, "truncated": False, "unreadable": [],
                           "links_not_followed": [],
                           "world_readable": [], "world_writable": [], "world_listable": [],
                           "counts": {"world_readable": 0, "world_writable": 0, "world_listable": 0}}
    try:
        top = target.stat(path)
    except TargetError as e:
        rec["exists"] = True
        rec["unreadable"].append(f"{path}: {e}")
        return rec
    if top is None:
        return rec
    rec["exists"] = True
    rec["top"] = _describe(path, top)
    blocked_by = []
    for anc in _ancestors(path):
        try:
            s = target.stat(anc)
        except TargetError as e:
            rec["unreadable"].append(f"{anc}: {e}")
            continue
        if s is not None and not s.mode & st.S_IXOTH:
            blocked_by.append(anc)
    rec["closed_above"] = blocked_by  # an ancestor others cannot search hides everything below

    def note(category: str, entry: str) -> None:
        rec["counts"][category] += 1
        if len(rec[category]) < MAX_EXAMPLES:
            rec[category].append(entry)

    queue: deque[tuple[str, FileStat, bool, int]] = deque([(path, top, not blocked_by, 0)])
    while queue:
        current, s, reachable, depth = queue.popleft()
        rec["entries"] += 1
        mode = s.mode
        if reachable and mode & st.S_IWOTH:
            # Even with the sticky bit, others can plant files in a world-writable folder.
            note("world_writable", f"{current} ({st.S_IMODE(mode):04o})")
        if not st.S_ISDIR(mode):
            if reachable and mode & st.S_IROTH:
                note("world_readable", f"{current} ({st.S_IMODE(mode):04o})")
            continue
        if reachable and mode & st.S_IROTH:
            note("world_listable", f"{current}/ ({st.S_IMODE(mode):04o})")
        if depth >= MAX_DEPTH:
            rec["truncated"] = True
            continue
        if current != path and _is_link(target, current):
            rec["links_not_followed"].append(current)  # a link out of the folder is not the folder's data
            continue
        inner_reachable = reachable and bool(mode & st.S_IXOTH)
        for child, cs in _children(target, current, rec, MAX_ENTRIES - rec["entries"] - len(queue)):
            queue.append((child, cs, inner_reachable, depth + 1))
    return rec


class DataPermissionsCollector(Collector):
    id = "data_permissions"
    version = "1"
    inputs = ("data_paths",)
    timeout = 120.0

    def collect(self, target: Target) -> Facts:
        return self.collect_with(target, {})

    def collect_with(self, target: Target, inputs: Mapping[str, Any]) -> Facts:
        paths = [p for p in (inputs.get("data_paths") or []) if isinstance(p, str) and p.startswith("/")]
        return {"data_paths": paths, "paths": {p: walk_data_path(target, p) for p in paths}}


def walk_log_path(target: Target, path: str) -> dict[str, Any]:
    rec: dict[str, Any] = {"path": path, "exists": False, "entries": [], "unreadable": [], "truncated": False,
                           "ancestors": []}
    try:
        top = target.stat(path)
    except TargetError as e:
        rec.update(exists=True, unreadable=[str(e)])
        return rec
    if top is None:
        return rec
    rec["exists"] = True
    for anc in _ancestors(path):
        s = _stat(target, anc, rec)
        if s is not None:
            rec["ancestors"].append(_describe(anc, s))
    queue: deque[tuple[str, FileStat, int]] = deque([(path, top, 0)])
    while queue:
        current, s, depth = queue.popleft()
        rec["entries"].append(_describe(current, s))
        if not st.S_ISDIR(s.mode) or depth >= LOG_MAX_DEPTH:
            continue
        for child, cs in _children(target, current, rec, LOG_MAX_ENTRIES - len(rec["entries"]) - len(queue)):
            queue.append((child, cs, depth + 1))
    return rec


class LogPermissionsCollector(Collector):
    id = "log_permissions"
    version = "1"
    inputs = ("logging.protected_logs",)

    def collect(self, target: Target) -> Facts:
        return self.collect_with(target, {})

    def collect_with(self, target: Target, inputs: Mapping[str, Any]) -> Facts:
        paths = [p for p in (inputs.get("logging.protected_logs") or []) if isinstance(p, str) and p.startswith("/")]
        return {"protected_logs": paths, "paths": {p: walk_log_path(target, p) for p in paths}}


DATA_COLLECTOR = DataPermissionsCollector()
LOG_COLLECTOR = LogPermissionsCollector()
