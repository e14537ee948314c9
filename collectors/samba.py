"""Samba's SMB protocol floor: ``server min protocol`` (and ``server max protocol``) in [global].

Parsed by smb.conf(5)'s rules: parameter names ignore case and blanks, ``;``
and ``#`` start comments, a trailing backslash continues a line, ``include =``
splices another file in at that point, and the last value wins. An include
whose name carries a ``%`` macro (``smb.conf.%m``) depends on the connecting
client and cannot be read statically; the facts say so. The default floor
depends on the version (SMB1 off by default since Samba 4.11), so the version
comes from dpkg's database, else from ``smbd -V`` where commands run. A ``problem`` is a code with its parts
(collectors/problems.py).
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from agent.targets.base import CommandTimeout, CommandUnavailable, FileMissing, Target, TargetError
from collectors.base import Collector, Facts
from collectors.problems import Problem, problem, unreadable
from collectors.textfiles import read_text

CONFIG = "/etc/samba/smb.conf"
BINARIES = ("/usr/sbin/smbd", "/usr/local/samba/sbin/smbd", "/usr/sbin/samba")
DPKG_STATUS = "/var/lib/dpkg/status"
MAX_DEPTH = 16
#: Parameter names as Samba normalises them (lower case, no blanks) -> the name reported.
KEYS = {"serverminprotocol": "server min protocol", "minprotocol": "server min protocol",
        "servermaxprotocol": "server max protocol", "maxprotocol": "server max protocol",
        "protocol": "server max protocol"}


class SmbConfProblem(Problem):
    """smb.conf as Samba would refuse it, or as mamoru cannot follow it: a code and its parts."""


def norm(name: str) -> str:
    return re.sub(r"[\s_]", "", name).lower()


def logical_lines(lines: list[str]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for n, raw in enumerate(lines, 1):
        if not buf:
            start = n
        line = raw.rstrip()
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        out.append((start, buf + line))
        buf = ""
    if buf:
        out.append((start, buf))
    return out


class SmbConfParser:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.values: dict[str, dict[str, str]] = {}
        self.files: list[str] = []
        self.dynamic_includes: list[str] = []

    def parse(self, path: str, depth: int = 0, section: str = "global") -> str:
        if depth > MAX_DEPTH:
            raise SmbConfProblem("nested_too_deeply", path=path)
        try:
            tf = read_text(self.target, path)
        except FileMissing:
            if depth == 0:
                raise
            return section  # Samba skips a missing include with a warning
        except TargetError as e:
            raise SmbConfProblem("unreadable", error=str(e)) from e
        self.files.append(path)
        for n, line in logical_lines(tf.lines):
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            if s.startswith("["):
                if "]" not in s:
                    raise SmbConfProblem("section_header", where=f"{path}:{n}")
                section = s[1:s.index("]")].strip().lower()
                continue
            if "=" not in s:
                raise SmbConfProblem("not_name_value", where=f"{path}:{n}", text=s[:60])
            name, _, value = s.partition("=")
            key, value = norm(name), value.strip()
            if key == "include":
                if "%" in value:
                    self.dynamic_includes.append(f"{path}:{n}: {value}")
                    continue
                inc = value if value.startswith("/") else posixpath.join(posixpath.dirname(path), value)
                section = self.parse(inc, depth + 1, section)
            elif key == "configfile":
                raise SmbConfProblem("config_file", where=f"{path}:{n}")
            elif key in KEYS and section == "global":
                self.values[KEYS[key]] = {"value": value, "where": f"{path}:{n}"}
        return section


def samba_version(target: Target) -> dict[str, Any]:
    """dpkg's record first (a file read), ``smbd -V`` only where dpkg does not know (it takes ~0.2 s)."""
    try:
        text = target.read_file(DPKG_STATUS, max_bytes=256 * 1024 * 1024).decode("utf-8", "replace")
    except TargetError:
        text = ""
    m = re.search(r"^Package: samba\nStatus: [^\n]* installed\n(?:[^\n]+\n)*?Version: (?:\d+:)?(\d+)\.(\d+)",
                  text, re.M)
    if m:
        return {"version": f"{m.group(1)}.{m.group(2)}", "source": "dpkg status"}
    if target.can_run:
        try:
            res = target.run(["smbd", "-V"], timeout=10, max_output=4096)
            m = re.search(r"Version (\d+)\.(\d+)", res.stdout.decode("utf-8", "replace"))
            if res.ok and m:
                return {"version": f"{m.group(1)}.{m.group(2)}", "source": "smbd -V"}
        except (CommandUnavailable, CommandTimeout):
            pass
    return {"version": None, "source": None}


class SambaCollector(Collector):
    id = "samba"
    reads = (CONFIG,)
    lists = ("/etc/samba",)
    probes = BINARIES
    version = "2"  # 2: problems are codes with their parts

    def collect(self, target: Target) -> Facts:
        binary = next((b for b in BINARIES if target.exists(b)), None)
        facts: Facts = {"installed": binary is not None, "binary": binary, "settings": {}, "files": [],
                        "dynamic_includes": [], "problem": None, "version": None, "version_source": None}
        if binary is None:
            return facts
        ver = samba_version(target)
        facts["version"], facts["version_source"] = ver["version"], ver["source"]
        parser = SmbConfParser(target)
        try:
            parser.parse(CONFIG)
        except FileMissing:
            facts["problem"] = problem("missing", path=CONFIG)
        except SmbConfProblem as e:
            facts["problem"] = e.problem
        except TargetError as e:
            facts["problem"] = unreadable(e)
        facts["settings"] = parser.values
        facts["files"] = parser.files
        facts["dynamic_includes"] = parser.dynamic_includes
        return facts


COLLECTOR = SambaCollector()
