"""Is a job scheduled here that runs ``mamoru scan``, and how old is the newest report it left?

Schedules are ``mamoru scan`` or ``mamoru agent run`` jobs: systemd timers (unit files in the usual directories, enabled
when linked from a ``*.wants`` directory under /etc/systemd/system) and cron
(``/etc/crontab``, ``/etc/cron.d``, user crontabs, ``/etc/cron.{daily,…}``
scripts, anacrontab) and macOS LaunchDaemons (``/Library/LaunchDaemons``). A schedule only proves
intent; the newest report in the policy's report directory proves the job actually ran. Its age comes from the
report's own ``run.finished`` when readable, else from the file time. A report that cannot be read is a
``problem``: a code with its parts (collectors/problems.py).

``jobs_mentioning`` is shared with the monitoring collector (is AIDE's check
scheduled?).
"""

from __future__ import annotations

import datetime as dt
import json
import plistlib
import posixpath
import re
import time
from collections.abc import Mapping
from typing import Any
from xml.parsers.expat import ExpatError

from agent.targets.base import FileMissing, Target, TargetError
from collectors.base import Collector, Facts
from collectors.problems import problem, unreadable
from collectors.textfiles import read_text

CRON_FILES = ("/etc/crontab", "/etc/anacrontab")
CRON_DIRS = ("/etc/cron.d", "/var/spool/cron/crontabs", "/var/spool/cron")
CRON_SCRIPT_DIRS = ("/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly")
UNIT_DIRS = ("/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system",
             "/usr/lib/systemd/system", "/lib/systemd/system")
WANTS_ROOT = "/etc/systemd/system"
#: ``mamoru scan`` (``mamoru schedule``) or ``mamoru agent run`` (``mamoru agent install``).
MAMORU_SCAN = re.compile(r"\bmamoru\b.*\b(scan|agent\s+run)\b")
LAUNCHD_DIRS = ("/Library/LaunchDaemons",)
MAX_PLIST_BYTES = 256 * 1024
MAX_REPORT_BYTES = 64 * 1024 * 1024


def _lines(target: Target, path: str) -> list[str]:
    try:
        return read_text(target, path).lines
    except TargetError:
        return []


def cron_entries(target: Target, pattern: re.Pattern[str]) -> list[dict[str, Any]]:
    """Uncommented cron lines (and cron.* scripts) whose text matches ``pattern``."""
    files = list(CRON_FILES)
    for d in CRON_DIRS:
        try:
            files += [posixpath.join(d, n) for n in target.list_dir(d) if not n.startswith(".")]
        except TargetError:
            continue
    target.prefetch(files)
    out = []
    for path in files:
        st = target.stat(path)
        if st is None or st.mode & 0o170000 != 0o100000:
            continue
        for n, raw in enumerate(_lines(target, path), 1):
            line = raw.strip()
            if line and not line.startswith("#") and pattern.search(line):
                out.append({"kind": "cron", "where": f"{path}:{n}", "line": line[:300], "enabled": True})
    scripts: dict[str, list[str]] = {}
    for d in CRON_SCRIPT_DIRS:
        try:
            scripts[d] = target.list_dir(d)
        except TargetError:
            continue
    target.prefetch(posixpath.join(d, n) for d, names in scripts.items() for n in names)  # all read below
    for d, names in scripts.items():
        for name in names:
            path = posixpath.join(d, name)
            st = target.stat(path)
            if st is None or st.mode & 0o170000 != 0o100000:
                continue
            hits = [ln.strip() for ln in _lines(target, path) if not ln.strip().startswith("#") and pattern.search(ln)]
            if hits:
                # run-parts skips scripts that are not executable or have a dot in their name.
                runs = bool(st.mode & 0o111) and "." not in name
                out.append({"kind": f"cron.{d.rsplit('.', 1)[1]}", "where": path, "line": hits[0][:300],
                            "enabled": runs})
    return out


def _unit_values(lines: list[str], section: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    cur = ""
    for raw in lines:
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            cur = line.strip("[]")
        elif cur == section and "=" in line:
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def _enabled_units(target: Target) -> set[str]:
    names: set[str] = set()
    try:
        dirs = [d for d in target.list_dir(WANTS_ROOT) if d.endswith((".wants", ".requires"))]
    except TargetError:
        return names
    target.prefetch((posixpath.join(WANTS_ROOT, d) for d in dirs), op="list")
    for d in dirs:
        try:
            names.update(target.list_dir(posixpath.join(WANTS_ROOT, d)))
        except TargetError:
            continue
    return names


def timers_running(target: Target, pattern: re.Pattern[str]) -> list[dict[str, Any]]:
    """systemd timers whose service's ExecStart matches ``pattern`` (the first unit file of a name wins)."""
    units: dict[str, str] = {}
    target.prefetch(UNIT_DIRS, op="list")
    for d in UNIT_DIRS:
        try:
            for n in target.list_dir(d):
                if n.endswith((".timer", ".service")):
                    units.setdefault(n, posixpath.join(d, n))
        except TargetError:
            continue
    enabled = _enabled_units(target)
    timers = sorted((name, path) for name, path in units.items() if name.endswith(".timer"))
    target.prefetch(path for _, path in timers)
    found: list[tuple[str, str, dict[str, list[str]], str]] = []
    for name, path in timers:
        st = target.stat(path)
        if st is None or st.size == 0:
            continue  # a link to /dev/null (masked) or an empty file
        timer = _unit_values(_lines(target, path), "Timer")
        service = (timer.get("Unit") or [name[:-6] + ".service"])[-1]
        if service in units:
            found.append((name, path, timer, units[service]))
    target.prefetch(spath for *_, spath in found)  # every timer's service, in one batch
    out = []
    for name, path, timer, spath in found:
        execs = _unit_values(_lines(target, spath), "Service").get("ExecStart", [])
        hits = [e for e in execs if pattern.search(e)]
        if hits:
            out.append({"kind": "systemd timer", "where": path, "service": spath, "line": hits[0][:300],
                        "schedule": timer.get("OnCalendar", []) + timer.get("OnUnitActiveSec", []),
                        "enabled": name in enabled})
    return out


def launchd_jobs(target: Target, pattern: re.Pattern[str]) -> list[dict[str, Any]]:
    """macOS LaunchDaemons whose ``ProgramArguments`` match ``pattern`` (``mamoru agent install`` writes one).

    A plist that cannot be parsed is skipped like a cron line that does not match: it schedules nothing.
    """
    out: list[dict[str, Any]] = []
    for d in LAUNCHD_DIRS:
        try:
            names = [n for n in target.list_dir(d) if n.endswith(".plist")]
        except TargetError:
            continue
        for name in sorted(names):
            path = posixpath.join(d, name)
            try:
                doc = plistlib.loads(target.read_file(path, max_bytes=MAX_PLIST_BYTES))
            except (TargetError, plistlib.InvalidFileException, ExpatError, ValueError, TypeError, OverflowError):
                continue
            if not isinstance(doc, dict):
                continue
            args = doc.get("ProgramArguments")
            line = " ".join(map(str, args)) if isinstance(args, list) else str(doc.get("Program", ""))
            if not pattern.search(line):
                continue
            interval = doc.get("StartCalendarInterval")
            out.append({"kind": "launchd", "where": path, "line": line[:300],
                        "schedule": [str(interval)] if interval else [],
                        "enabled": doc.get("Disabled") is not True and bool(interval or doc.get("StartInterval"))})
    return out


def jobs_mentioning(target: Target, pattern: re.Pattern[str]) -> list[dict[str, Any]]:
    return cron_entries(target, pattern) + timers_running(target, pattern) + launchd_jobs(target, pattern)


def newest_report(target: Target, directory: str) -> dict[str, Any]:
    out: dict[str, Any] = {"dir": directory, "exists": False, "count": 0, "newest": None, "finished": None,
                           "age_source": None, "problem": None}
    try:
        names = target.list_dir(directory)
    except FileMissing:
        return out
    except TargetError as e:
        out["exists"], out["problem"] = True, unreadable(e)
        return out
    out["exists"] = True
    reports = []
    for n in names:
        if n.endswith(".json"):
            st = target.stat(posixpath.join(directory, n))
            if st is not None and st.mode & 0o170000 == 0o100000:
                reports.append((st.mtime, n))
    out["count"] = len(reports)
    if not reports:
        return out
    mtime, name = max(reports)
    out["newest"] = name
    out["finished"], out["age_source"] = mtime, "file time"
    try:
        doc = json.loads(target.read_file(posixpath.join(directory, name), max_bytes=MAX_REPORT_BYTES))
        when = dt.datetime.fromisoformat(doc["run"]["finished"])
        if when.tzinfo is None:
            raise ValueError("run.finished has no time zone")
        out["finished"], out["age_source"] = when.timestamp(), "run.finished"
    except (TargetError, ValueError, KeyError, TypeError) as e:
        out["problem"] = problem("not_a_report", file=name, detail=type(e).__name__)
    return out


class ScheduleStateCollector(Collector):
    id = "schedule_state"
    reads = CRON_FILES
    lists = (*CRON_DIRS, *CRON_SCRIPT_DIRS, *UNIT_DIRS, *LAUNCHD_DIRS)
    version = "3"  # 2: the report's problem is a code with its parts; 3: mamoru agent run and LaunchDaemons
    inputs = ("schedule.report_dir",)

    def collect(self, target: Target) -> Facts:
        return self.collect_with(target, {})

    def collect_with(self, target: Target, inputs: Mapping[str, Any]) -> Facts:
        report_dir = inputs.get("schedule.report_dir") or "/var/lib/mamoru/reports"
        return {"collected_at": time.time(), "jobs": jobs_mentioning(target, MAMORU_SCAN),
                "report_dir": report_dir, "reports": newest_report(target, report_dir)}


COLLECTOR = ScheduleStateCollector()
