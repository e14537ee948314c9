"""sudo's policy: /etc/sudoers and everything it includes.

Follows ``@include``/``#include`` and ``@includedir``/``#includedir`` (files
in the directory whose names contain no ``.`` and do not end in ``~``, as sudo
does), joins continuation lines, records aliases, Defaults and user
specifications with the tags (NOPASSWD …) that apply to each command. The
judgement — which of these is "passwordless blanket sudo" — is the check's. A file sudo would refuse is a
``problem``: a code with its parts (collectors/problems.py).
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from agent.targets.base import FileMissing, Target, TargetError
from collectors.base import Collector, Facts
from collectors.problems import Problem
from collectors.textfiles import read_text

SUDOERS = "/etc/sudoers"
BINARIES = ("/usr/bin/sudo", "/usr/local/bin/sudo", "/bin/sudo")
MAX_DEPTH = 128  # sudo's own include depth limit
_ALIAS = re.compile(r"^(User_Alias|Runas_Alias|Host_Alias|Cmnd_Alias|Cmd_Alias)\s+(.*)$")
_DEFAULTS = re.compile(r"^Defaults([@:>!]\S+)?\s*(.*)$")
_INCLUDE = re.compile(r"^[@#](include|includedir)\s+(.+)$")
_TAG = re.compile(r"^([A-Z_]+):\s*")
_KNOWN_TAGS = {"NOPASSWD", "PASSWD", "NOEXEC", "EXEC", "SETENV", "NOSETENV", "LOG_INPUT", "NOLOG_INPUT",
               "LOG_OUTPUT", "NOLOG_OUTPUT", "MAIL", "NOMAIL", "FOLLOW", "NOFOLLOW", "INTERCEPT", "NOINTERCEPT"}


class SudoersProblem(Problem):
    """sudo would refuse this file (visudo -c would fail): a code and its parts."""


def split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses and honouring backslash escapes."""
    out, depth, cur, esc = [], 0, [], False
    for ch in text:
        if esc:
            cur.append(ch)
            esc = False
            continue
        if ch == "\\":
            cur.append(ch)
            esc = True
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        if ch == sep and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _strip_comment(line: str) -> str:
    # A '#' starts a comment unless it is "#include…" or a uid ("#1000").
    for m in re.finditer(r"#", line):
        i = m.start()
        rest = line[i + 1:]
        if i == 0 and rest.startswith(("include", "includedir")):
            continue
        if rest[:1].isdigit() and (i == 0 or line[i - 1] in " \t,(=:!%"):
            continue
        if i > 0 and line[i - 1] == "\\":
            continue
        return line[:i].rstrip()
    return line


def parse_spec(text: str, where: str) -> list[dict[str, Any]]:
    """``users hosts = (runas) TAGS: cmnd, … [: hosts = …]`` -> one entry per command."""
    users_hosts, eq, rest = text.partition("=")
    if not eq:
        raise SudoersProblem("no_equals", where=where)
    left = re.sub(r"\s*,\s*", ",", users_hosts.strip())
    parts = left.split()
    if len(parts) != 2:
        raise SudoersProblem("user_host_list", where=where, text=users_hosts.strip()[:120])
    users = parts[0].split(",")
    entries: list[dict[str, Any]] = []
    runas: str | None = None
    nopasswd = False
    # Runas and tags carry over to the following commands of the same spec, as in sudo.
    for raw_cmd in split_top(rest, ","):
        cmd = raw_cmd.strip()
        m = re.match(r"^\(([^)]*)\)\s*", cmd)
        if m:
            runas = m.group(1).strip()
            cmd = cmd[m.end():]
        while True:
            t = _TAG.match(cmd)
            if not t or t.group(1) not in _KNOWN_TAGS:
                break
            if t.group(1) in ("NOPASSWD", "PASSWD"):
                nopasswd = t.group(1) == "NOPASSWD"
            cmd = cmd[t.end():]
        if not cmd:
            raise SudoersProblem("empty_command", where=where)
        entries.append({"users": users, "runas": runas, "nopasswd": nopasswd, "command": cmd.strip()})
    return entries


class SudoersParser:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.files: list[str] = []
        self.rules: list[dict[str, Any]] = []
        self.defaults: list[dict[str, Any]] = []
        self.aliases: dict[str, dict[str, list[str]]] = {"cmnd": {}, "user": {}, "runas": {}, "host": {}}

    def parse_file(self, path: str, depth: int = 0, stack: tuple[str, ...] = ()) -> None:
        if path in stack:
            raise SudoersProblem("include_loop", chain=" -> ".join([*stack, path]))
        if depth > MAX_DEPTH:
            raise SudoersProblem("nested_too_deeply", path=path)
        try:
            tf = read_text(self.target, path)
        except TargetError as e:
            raise SudoersProblem("unreadable", error=str(e)) from e
        self.files.append(path)
        logical: list[tuple[int, str]] = []
        buf, start = "", 0
        for n, raw in enumerate(tf.lines, 1):
            if not buf:
                start = n
            if raw.endswith("\\") and not raw.endswith("\\\\"):
                buf += raw[:-1] + " "
                continue
            buf += raw
            logical.append((start, buf))
            buf = ""
        if buf:
            raise SudoersProblem("continuation_at_end", where=f"{path}:{start}")
        for n, raw in logical:
            line = _strip_comment(raw.strip()).strip()
            if not line:
                continue
            where = f"{path}:{n}"
            inc = _INCLUDE.match(line)
            if inc:
                kind, arg = inc.group(1), inc.group(2).strip().strip('"')
                arg = arg.replace("%h", "")
                full = arg if arg.startswith("/") else posixpath.join(posixpath.dirname(path), arg)
                if kind == "include":
                    self.parse_file(full, depth + 1, (*stack, path))
                else:
                    try:
                        names = self.target.list_dir(full)
                    except FileMissing:
                        continue
                    except TargetError as e:
                        raise SudoersProblem("includedir_unreadable", where=where, error=str(e)) from e
                    self.target.prefetch(posixpath.join(full, n) for n in names if "." not in n and not n.endswith("~"))
                    for name in names:
                        if "." in name or name.endswith("~"):
                            continue
                        self.parse_file(posixpath.join(full, name), depth + 1, (*stack, path))
                continue
            alias = _ALIAS.match(line)
            if alias:
                kind = {"Cmd_Alias": "cmnd"}.get(alias.group(1), alias.group(1).split("_")[0].lower())
                for definition in split_top(alias.group(2), ":"):
                    name, eq, members = definition.partition("=")
                    if not eq or not re.fullmatch(r"[A-Z][A-Z0-9_]*", name.strip()):
                        raise SudoersProblem("bad_alias", where=where, text=definition.strip()[:120])
                    self.aliases[kind][name.strip()] = [m.strip() for m in split_top(members, ",") if m.strip()]
                continue
            dm = _DEFAULTS.match(line)
            if dm:
                scope = dm.group(1) or ""
                settings = [s.strip() for s in split_top(dm.group(2), ",") if s.strip()]
                self.defaults.append({"where": where, "scope": scope, "settings": settings})
                continue
            for entry in parse_spec(line, where):
                entry["where"] = where
                self.rules.append(entry)


class SudoersCollector(Collector):
    id = "sudoers"
    reads = (SUDOERS,)
    lists = ("/etc/sudoers.d",)
    probes = BINARIES
    version = "2"  # 2: problems are codes with their parts

    def collect(self, target: Target) -> Facts:
        installed = target.exists(SUDOERS) or any(target.exists(b) for b in BINARIES)
        facts: Facts = {"installed": installed, "files": [], "rules": [], "defaults": [], "aliases": {},
                        "problem": None}
        if not installed:
            return facts
        parser = SudoersParser(target)
        try:
            parser.parse_file(SUDOERS)
        except SudoersProblem as e:
            facts["problem"] = e.problem
            facts["permission_denied"] = "permission denied" in str(e.problem.get("error", "")).lower()
        facts.update(files=parser.files, rules=parser.rules, defaults=parser.defaults, aliases=parser.aliases)
        return facts


COLLECTOR = SudoersCollector()
