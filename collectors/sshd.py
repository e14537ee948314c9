"""The SSH server's effective configuration.

On a target that can run commands, ``sshd -T`` is the truth: it is sshd's own
reading of its config, Includes, defaults and all. Where it cannot run (a
rootfs image, a scan without root), the config is parsed by sshd's own rules:
case-insensitive keywords, the first value wins, ``Include`` with globs
relative to /etc/ssh, ``Match`` blocks apply conditionally and so do not
change the global settings. A file that sshd would refuse makes the facts
carry a problem (a code with its parts, collectors/problems.py), which the checks report as ``error``,
never as a guess.
"""

from __future__ import annotations

import posixpath
import shlex
from typing import Any

from agent.targets.base import CommandUnavailable, Target, TargetError
from collectors import data
from collectors.base import Collector, CollectorError, Facts
from collectors.problems import Problem, problem
from collectors.textfiles import glob, read_text

CONFIG = "/etc/ssh/sshd_config"
BINARIES = ("/usr/sbin/sshd", "/usr/bin/sshd", "/sbin/sshd", "/usr/local/sbin/sshd")
MAX_INCLUDE_DEPTH = 16  # sshd's own limit (servconf.c SERVCONF_MAX_DEPTH)


class ConfigProblem(Problem):
    """sshd would refuse this configuration: a code and its parts."""


def apply_modifier(default: str, value: str) -> str:
    """sshd's +list / -list / ^list syntax for algorithm lists (match.c/kex.c)."""
    import fnmatch

    base = [a for a in default.split(",") if a]
    if value.startswith("+"):
        extra = [a for a in value[1:].split(",") if a and a not in base]
        return ",".join(base + extra)
    if value.startswith("-"):
        pats = [p for p in value[1:].split(",") if p]
        return ",".join(a for a in base if not any(fnmatch.fnmatchcase(a, p) for p in pats))
    if value.startswith("^"):
        front = [a for a in value[1:].split(",") if a]
        return ",".join(front + [a for a in base if a not in front])
    return value


class SshdConfigParser:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.table = data.load("sshd.yaml")
        self.known = set(self.table["keywords"])
        self.accumulate = set(self.table["accumulate"])
        self.settings: dict[str, list[str]] = {}
        self.files: list[str] = []

    def parse(self, config: str = CONFIG, overrides: tuple[str, ...] = ()) -> dict[str, list[str]]:
        """Settings of ``config``; ``overrides`` are ``-o`` options, which sshd reads before the file."""
        for n, line in enumerate(overrides, 1):
            keyword, args = self._split(line, f"command line -o #{n}")
            kw = keyword.lower()
            if kw not in self.known:
                raise ConfigProblem("bad_option", where="command line", keyword=keyword)
            self._validate(kw, args, f"command line -o {line}")
            if kw in self.accumulate:
                self.settings.setdefault(kw, []).append(" ".join(args))
            elif kw not in self.settings:
                self.settings[kw] = [" ".join(args)]
        self._parse_file(config, depth=0, active=True, stack=())
        return self.settings

    def _parse_file(self, path: str, *, depth: int, active: bool, stack: tuple[str, ...]) -> None:
        if path in stack:
            raise ConfigProblem("include_loop", chain=" -> ".join([*stack, path]))
        if depth > MAX_INCLUDE_DEPTH:
            raise ConfigProblem("nested_too_deeply", path=path)
        try:
            tf = read_text(self.target, path)
        except TargetError as e:
            raise ConfigProblem("unreadable", error=str(e)) from e
        self.files.append(path)
        file_active = active
        for n, raw in enumerate(tf.lines, 1):
            where = f"{path}:{n}"
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keyword, args = self._split(line, where)
            kw = keyword.lower()
            if kw not in self.known:
                raise ConfigProblem("bad_option", where=where, keyword=keyword)
            if kw == "match":
                if not args:
                    raise ConfigProblem("match_criteria", where=where)
                # "Match all" returns to settings that apply to everyone.
                file_active = active and [a.lower() for a in args] == ["all"]
                continue
            if not args:
                raise ConfigProblem("missing_argument", where=where, keyword=keyword)
            if kw == "include":
                for pattern in args:
                    full = pattern if pattern.startswith("/") else posixpath.join("/etc/ssh", pattern)
                    for inc in glob(self.target, full):
                        self._parse_file(inc, depth=depth + 1, active=file_active, stack=(*stack, path))
                continue
            self._validate(kw, args, where)
            if not file_active:
                continue
            value = " ".join(args)
            if kw in self.accumulate:
                self.settings.setdefault(kw, []).append(value)
            elif kw not in self.settings:
                self.settings[kw] = [value]

    @staticmethod
    def _split(line: str, where: str) -> tuple[str, list[str]]:
        # sshd accepts "Keyword value" and "Keyword=value".
        head, sep, rest = line.partition("=")
        if sep and " " not in head.strip() and "\t" not in head.strip():
            line = head.strip() + " " + rest.strip()
        try:
            parts = shlex.split(line, comments=True, posix=True)
        except ValueError as e:
            raise ConfigProblem("quoting", where=where) from e
        if not parts:
            raise ConfigProblem("empty_directive", where=where)
        return parts[0], parts[1:]

    def _validate(self, kw: str, args: list[str], where: str) -> None:
        choices = self.table["choices"].get(kw)
        if choices is not None and (len(args) != 1 or args[0].lower() not in choices):
            raise ConfigProblem("unsupported_option", where=where, keyword=kw, value=" ".join(args)[:120])
        if kw in self.table["integers"] and (len(args) != 1 or not args[0].isdigit()):
            raise ConfigProblem("needs_integer", where=where, keyword=kw, value=" ".join(args)[:120])


def with_defaults(settings: dict[str, list[str]]) -> dict[str, list[str]]:
    out = dict(settings)
    for kw, default in data.load("sshd.yaml")["defaults"].items():
        if kw not in out:
            out[kw] = [str(default)]
        elif kw in ("ciphers", "macs", "kexalgorithms", "hostkeyalgorithms"):
            out[kw] = [apply_modifier(str(default), out[kw][0])]
        else:
            out[kw] = [v.lower() if kw in data.load("sshd.yaml")["choices"] else v for v in out[kw]]
    return out


def parse_sshd_t(stdout: bytes) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in stdout.decode("utf-8", "replace").splitlines():
        kw, _, value = line.strip().partition(" ")
        if kw:
            settings.setdefault(kw.lower(), []).append(value.strip())
    return settings


#: sshd options that take an argument (sshd.c getopt string "C:E:b:c:f:g:h:k:o:p:u:46DGQRTdeiqrtV").
_ARG_OPTS = set("CEbcfghkopu")


def listener_options(cmdline: list[str]) -> dict[str, Any] | None:
    """``-f`` and ``-o`` of a listening sshd, from its argv or from the title it sets for itself.

    A running listener rewrites its title to ``sshd: /usr/sbin/sshd -f X [listener] 0 of 10-100
    startups``, so /proc shows one string; before that (and on older versions) it is the plain argv.
    Per-connection processes (``sshd: alice@pts/0``, re-executed ``-R`` children) are not listeners.
    """
    if len(cmdline) == 1 and cmdline[0].startswith("sshd: "):
        title = cmdline[0][len("sshd: "):]
        if "[listener]" not in title:
            return None
        words = title.split("[listener]", 1)[0].split()
    else:
        words = list(cmdline)
    if not words or not words[0].rsplit("/", 1)[-1].startswith("sshd"):
        return None
    config, overrides, port = CONFIG, [], []
    i = 1
    while i < len(words):
        w = words[i]
        if not w.startswith("-") or len(w) < 2:
            return None
        flag = w[1]
        if flag == "R":
            return None  # a re-executed per-connection child
        if flag in _ARG_OPTS:
            value = w[2:] if len(w) > 2 else (words[i + 1] if i + 1 < len(words) else "")
            i += 1 if len(w) > 2 else 2
            if flag == "f":
                config = value
            elif flag == "o":
                overrides.append(value)
            elif flag == "p":
                port.append(value)
            continue
        i += 1
    overrides += [f"Port {p}" for p in port]
    return {"config": config, "overrides": overrides}


class SshdCollector(Collector):
    id = "sshd"
    reads = (CONFIG,)
    lists = ("/etc/ssh", "/etc/ssh/sshd_config.d")
    probes = BINARIES
    version = "3"  # 2: running listeners and their own configuration files; 3: problems are codes

    def collect(self, target: Target) -> Facts:
        facts = self._default(target)
        facts["instances"] = self._running(target, facts.get("binary")) if target.can_run else []
        if facts["instances"]:
            facts["installed"] = True
        return facts

    def _running(self, target: Target, binary: str | None) -> list[dict[str, Any]]:
        """Each distinct running listener, judged by its own configuration: that is what it enforces."""
        from collectors.processes import list_processes

        try:
            procs = list_processes(target)
        except CollectorError:
            return []
        found: dict[tuple[str, str, tuple[str, ...]], dict[str, Any]] = {}
        for p in procs:
            if p["comm"] != "sshd":
                continue
            opts = listener_options(p["cmdline"])
            if opts is None:
                continue
            exe = (p.get("exe") or "").removesuffix(" (deleted)") or binary or BINARIES[0]
            key = (exe, opts["config"], tuple(opts["overrides"]))
            if key in found:
                found[key]["pids"].append(p["pid"])
                continue
            found[key] = {"pids": [p["pid"]], "exe": exe, "config": opts["config"], "overrides": opts["overrides"],
                          **self._effective(target, exe, opts["config"], opts["overrides"])}
        return list(found.values())

    def _effective(self, target: Target, exe: str, config: str, overrides: list[str]) -> dict[str, Any]:
        argv = [exe, "-T", "-f", config]
        for o in overrides:
            argv += ["-o", o]
        try:
            res = target.run(argv, timeout=15)
        except CommandUnavailable:
            res = None
        if res is not None and res.ok and res.stdout.strip():
            return {"source": "sshd -T", "settings": parse_sshd_t(res.stdout), "problem": None}
        if res is not None:
            err = res.stderr.decode("utf-8", "replace").strip()
            if "bad configuration option" in err.lower():
                return {"source": None, "settings": {}, "problem": problem("refused", config=config,
                                                                            output=err.splitlines()[-1][-300:])}
        parser = SshdConfigParser(target)
        try:
            parsed = parser.parse(config, tuple(overrides))
        except ConfigProblem as e:
            return {"source": None, "settings": {}, "problem": e.problem, "files": parser.files}
        return {"source": "config", "settings": with_defaults(parsed), "problem": None, "files": parser.files}

    def _default(self, target: Target) -> Facts:
        facts: dict[str, Any] = {"installed": False, "source": None, "settings": {}, "files": [], "problem": None}
        binary = next((b for b in BINARIES if target.exists(b)), None)
        has_config = target.exists(CONFIG)
        if binary is None and not has_config:
            return facts
        facts["installed"] = True
        facts["binary"] = binary
        if binary is not None and target.can_run:
            try:
                res = target.run([binary, "-T"], timeout=15)
            except CommandUnavailable:
                res = None
            if res is not None and res.ok and res.stdout.strip():
                facts["source"] = "sshd -T"
                facts["settings"] = parse_sshd_t(res.stdout)
                return facts
            if res is not None:
                err = res.stderr.decode("utf-8", "replace").strip()
                facts["sshd_t_error"] = err[-500:]
                if "bad configuration option" in err.lower() or "bad configuration options" in err.lower():
                    facts["problem"] = problem("refused", config=CONFIG, output=err.splitlines()[-1][-300:])
                    return facts
        if not has_config:
            facts["problem"] = problem("missing", path=CONFIG)
            return facts
        parser = SshdConfigParser(target)
        try:
            parsed = parser.parse()
        except ConfigProblem as e:
            facts["problem"] = e.problem
            facts["files"] = parser.files
            return facts
        facts["source"] = "config"
        facts["files"] = parser.files
        facts["settings"] = with_defaults(parsed)
        return facts


COLLECTOR = SshdCollector()
