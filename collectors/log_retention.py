"""How long authentication records are kept: logrotate and journald configuration, and what is on disk.

logrotate: global directives, ``include`` of files and directories (skipping
the same backup suffixes logrotate skips), and stanzas whose directives
override the globals in force where the stanza begins. journald: main file and
drop-ins in sd_journal's order, the last assignment winning.

A ``problem`` is a code with its parts (``{"code": "needs_number", "where": ..., "key": ...}``), worded
by the checks in each language.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from typing import Any

from agent.targets.base import FileMissing, Target, TargetError
from collectors.base import Collector, Facts
from collectors.textfiles import read_text

LOGROTATE_CONF = "/etc/logrotate.conf"
PERIODS = {"hourly": 1 / 24, "daily": 1, "weekly": 7, "monthly": 30, "yearly": 365}
TABOO = (".rpmorig", ".rpmsave", ",v", ".swp", ".rpmnew", "~", ".cfsaved", ".rhn-cfg-tmp", ".dpkg-dist",
         ".dpkg-old", ".dpkg-new", ".dpkg-bak", ".dpkg-del", ".disabled", ".ucf-dist", ".ucf-new", ".ucf-old")
JOURNALD_MAIN = "/etc/systemd/journald.conf"
JOURNALD_DROPIN_DIRS = ("/usr/lib/systemd/journald.conf.d", "/run/systemd/journald.conf.d",
                        "/etc/systemd/journald.conf.d")
JOURNALD_BINARIES = ("/usr/lib/systemd/systemd-journald", "/lib/systemd/systemd-journald")
MAX_DEPTH = 8


class LogrotateProblem(Exception):
    """logrotate would refuse this configuration: a code and its parts."""

    def __init__(self, code: str, **parts: Any) -> None:
        super().__init__(code)
        self.problem = {"code": code, **parts}


class LogrotateParser:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.globals: dict[str, Any] = {}
        self.stanzas: list[dict[str, Any]] = []
        self.files: list[str] = []

    def parse(self, path: str, depth: int = 0) -> None:
        if depth > MAX_DEPTH:
            raise LogrotateProblem("nested_too_deeply", path=path)
        tf = read_text(self.target, path)
        self.files.append(path)
        current: dict[str, Any] | None = None
        pending: list[str] = []  # a file list may span lines before its "{"
        skip_script = False
        for n, raw in enumerate(tf.lines, 1):
            line = raw.strip()
            where = f"{path}:{n}"
            if skip_script:
                if line == "endscript":
                    skip_script = False
                continue
            if not line or line.startswith("#"):
                continue
            if line in ("postrotate", "prerotate", "firstaction", "lastaction", "preremove"):
                skip_script = True
                continue
            if current is None and (line.endswith("{") or line[0] in "/\"'"):
                try:
                    words = shlex.split(line.rstrip("{"))
                except ValueError as e:  # shlex: an unclosed quotation or escape
                    raise LogrotateProblem("quoting", where=where, detail=str(e)) from e
                pending += words
                if line.endswith("{"):
                    if not pending:
                        raise LogrotateProblem("block_without_file", where=where)
                    current = {"paths": pending, "where": where, **self.globals}
                    pending = []
                continue
            if pending:
                raise LogrotateProblem("list_without_block", where=where)
            if line == "}":
                if current is None:
                    raise LogrotateProblem("close_without_block", where=where)
                self.stanzas.append(current)
                current = None
                continue
            words = line.split()
            key = words[0].lower()
            scope = current if current is not None else self.globals
            if key in PERIODS:
                scope["period"] = key
            elif key in ("rotate", "maxage"):
                if len(words) != 2 or not re.fullmatch(r"-?\d+", words[1]):
                    raise LogrotateProblem("needs_number", where=where, key=key)
                scope[key] = int(words[1])
            elif key == "include" and current is None:
                if len(words) != 2:
                    raise LogrotateProblem("include_one_path", where=where)
                self._include(words[1], depth)
        if current is not None:
            raise LogrotateProblem("block_never_closed", where=current["where"])
        if skip_script:
            raise LogrotateProblem("script_never_closed", path=path)

    def _include(self, path: str, depth: int) -> None:
        st = self.target.stat(path)
        if st is None:
            return
        if st.mode & 0o170000 == 0o040000:
            names = [n for n in self.target.list_dir(path) if not n.startswith(".") and not n.endswith(TABOO)]
            self.target.prefetch(posixpath.join(path, n) for n in names)
            for name in names:
                self.parse(posixpath.join(path, name), depth + 1)
        else:
            self.parse(path, depth + 1)


def parse_timespan(text: str) -> float | None:
    """systemd time span ("1year", "12month 2d", "3600") in seconds; None if malformed."""
    units = {"us": 1e-6, "usec": 1e-6, "ms": 1e-3, "msec": 1e-3, "s": 1, "sec": 1, "second": 1, "seconds": 1,
             "m": 60, "min": 60, "minute": 60, "minutes": 60, "h": 3600, "hr": 3600, "hour": 3600,
             "hours": 3600, "d": 86400, "day": 86400, "days": 86400, "w": 604800, "week": 604800,
             "weeks": 604800, "M": 2629800, "month": 2629800, "months": 2629800, "y": 31557600,
             "year": 31557600, "years": 31557600}
    text = text.strip()
    if not text:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    total = 0.0
    pos = 0
    for m in re.finditer(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)", text):
        if m.start() != pos or m.group(2) not in units:
            return None
        total += float(m.group(1)) * units[m.group(2)]
        pos = m.end()
    return total if pos == len(text) else None


def read_journald(target: Target) -> dict[str, Any]:
    files: list[str] = []
    dropins: dict[str, str] = {}
    for d in JOURNALD_DROPIN_DIRS:
        try:
            for name in target.list_dir(d):
                if name.endswith(".conf"):
                    dropins[name] = posixpath.join(d, name)  # later dirs override same-named files
        except FileMissing:
            continue
    ordered = [JOURNALD_MAIN] + [dropins[k] for k in sorted(dropins)]
    target.prefetch(ordered)
    settings: dict[str, str] = {}
    for path in ordered:
        try:
            tf = read_text(target, path)
        except FileMissing:
            continue
        files.append(path)
        section = ""
        for raw in tf.lines:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            if section == "Journal" and "=" in line:
                k, _, v = line.partition("=")
                settings[k.strip()] = v.strip()
    return {"files": files, "settings": settings}


def count_journal_files(target: Target) -> int:
    """Persistent journal files actually on disk (/var/log/journal/<machine-id>/*.journal)."""
    count = 0
    try:
        for sub in target.list_dir("/var/log/journal"):
            try:
                count += sum(1 for n in target.list_dir(f"/var/log/journal/{sub}") if n.endswith(".journal"))
            except TargetError:
                continue
    except TargetError:
        return 0
    return count


class LogRetentionCollector(Collector):
    id = "log_retention"
    reads = (LOGROTATE_CONF, JOURNALD_MAIN)
    lists = ("/etc/logrotate.d", *JOURNALD_DROPIN_DIRS, "/var/log", "/var/log/journal", "/usr/lib/systemd")
    version = "2"

    def collect(self, target: Target) -> Facts:
        facts: Facts = {}
        lr: dict[str, Any] = {"installed": target.exists(LOGROTATE_CONF)}
        if lr["installed"]:
            parser = LogrotateParser(target)
            try:
                parser.parse(LOGROTATE_CONF)
                lr["problem"] = None
            except LogrotateProblem as e:
                lr["problem"] = e.problem
            except TargetError as e:
                lr["problem"] = {"code": "unreadable", "error": str(e)}
            lr["files"] = parser.files
            lr["stanzas"] = parser.stanzas
        facts["logrotate"] = lr
        jd: dict[str, Any] = {"installed": any(target.exists(b) for b in JOURNALD_BINARIES)}
        if jd["installed"]:
            try:
                jd.update(read_journald(target))
                jd["problem"] = None
            except TargetError as e:
                jd["problem"] = {"code": "unreadable", "error": str(e)}
            jd["var_log_journal_exists"] = target.exists("/var/log/journal")
            jd["journal_files"] = count_journal_files(target)
        facts["journald"] = jd
        present: dict[str, Any] = {}
        try:
            names = target.list_dir("/var/log")
        except TargetError:
            names = []
        for base in ("auth.log", "secure"):
            versions = [n for n in names if n == base or n.startswith(base + ".") or n.startswith(base + "-")]
            oldest = None
            for n in versions:
                st = target.stat(posixpath.join("/var/log", n))
                if st is not None and (oldest is None or st.mtime < oldest):
                    oldest = st.mtime
            if versions:
                present["/var/log/" + base] = {"files": len(versions), "oldest_mtime": oldest}
        facts["auth_logs_on_disk"] = present
        return facts


COLLECTOR = LogRetentionCollector()
