"""PAM stacks and the settings of the modules that enforce password quality and lockout.

A service's stack is what Linux-PAM builds from ``/etc/pam.d/<service>``
(``/usr/lib/pam.d`` as the vendor fallback, ``other`` when the file is
missing): ``@include`` pulls in every line of a file, ``include`` and
``substack`` only the lines of their own type. Text after ``#`` is a comment,
``\\`` joins lines, ``[...]`` groups a control value or an argument with
spaces. A line PAM would refuse is recorded as a problem, so the checks say
``error`` instead of guessing. Module settings come from their arguments and
from ``pwquality.conf`` (+ ``.d``) and ``faillock.conf``, read the way
libpwquality and pam_faillock read them.

Problems are codes with their parts (``{"code": "unknown_type", "where": ..., "value": ...}``), never
sentences: the checks word them in each language (checks/meta/_facts.yaml).

``login.defs`` is its own collector in this module: PAM ignores most of it,
but shadow-utils' UID ranges and, without PAM, PASS_MIN_LEN come from there.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from agent.targets.base import Target, TargetError
from collectors.base import Collector, Facts
from collectors.textfiles import glob, read_optional, read_text

PAM_DIRS = ("/etc/pam.d", "/usr/lib/pam.d")
#: Services whose stacks the checks judge: password changes, console, SSH and desktop logins.
SERVICES = ("passwd", "login", "sshd", "gdm-password", "lightdm", "sddm", "xrdp-sesman", "other")
TYPES = ("auth", "account", "password", "session")
#: The stacks the checks read: password changes (quality) and logins (lockout).
KEPT_TYPES = ("auth", "password")
CONTROLS = ("required", "requisite", "sufficient", "optional", "include", "substack")
MODULE_DIR_GLOBS = ("/lib/security", "/lib64/security", "/usr/lib/security", "/usr/lib64/security",
                    "/lib/*/security", "/usr/lib/*/security")
MAX_DEPTH = 16
PWQUALITY_CONF = "/etc/security/pwquality.conf"
PWQUALITY_DIR = "/etc/security/pwquality.conf.d"
FAILLOCK_CONF = "/etc/security/faillock.conf"
LOGIN_DEFS = "/etc/login.defs"
# libpwquality's settings (pwquality.conf(5)); an unknown one makes it stop reading the file.
PWQUALITY_INT = {"difok", "minlen", "dcredit", "ucredit", "lcredit", "ocredit", "minclass", "maxrepeat",
                 "maxclassrepeat", "maxsequence", "gecoscheck", "dictcheck", "usercheck", "enforcing", "retry",
                 "usersubstr"}
PWQUALITY_FLAGS = {"enforce_for_root", "local_users_only"}
PWQUALITY_STR = {"dictpath", "badwords"}
FAILLOCK_INT = {"deny", "fail_interval", "unlock_time", "root_unlock_time"}
FAILLOCK_FLAGS = {"audit", "silent", "no_log_info", "local_users_only", "nodelay", "even_deny_root"}
FAILLOCK_STR = {"dir", "admin_group"}
_SECRET_ARG = re.compile(r"(pass(word|wd)?|secret|token|key)=", re.IGNORECASE)


class PamProblem(Exception):
    """PAM would refuse or misread this configuration: a code and its parts."""

    def __init__(self, code: str, **parts: Any) -> None:
        super().__init__(code)
        self.problem = {"code": code, **parts}


def tokenize(line: str, where: str) -> list[str]:
    """Split on blanks, keeping ``[...]`` groups (with ``\\]`` escapes) as one token, as Linux-PAM does."""
    tokens: list[str] = []
    i, n = 0, len(line)
    while i < n:
        if line[i] in " \t":
            i += 1
            continue
        if line[i] == "[":
            j, buf = i + 1, []
            while j < n and line[j] != "]":
                if line[j] == "\\" and j + 1 < n and line[j + 1] == "]":
                    buf.append("]")
                    j += 2
                    continue
                buf.append(line[j])
                j += 1
            if j >= n:
                raise PamProblem("unterminated_bracket", where=where)
            tokens.append("[" + "".join(buf) + "]")
            i = j + 1
            continue
        j = i
        while j < n and line[j] not in " \t":
            j += 1
        tokens.append(line[i:j])
        i = j
    return tokens


def logical_lines(lines: list[str]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    buf, start = "", 0
    for n, raw in enumerate(lines, 1):
        if not buf:
            start = n
        text = raw.split("#", 1)[0]
        if text.rstrip().endswith("\\") and "#" not in raw:
            buf += text.rstrip()[:-1] + " "
            continue
        buf += text
        out.append((start, buf.strip()))
        buf = ""
    if buf.strip():
        out.append((start, buf.strip()))
    return out


def _safe_args(args: list[str]) -> list[str]:
    return [("<redacted>" if _SECRET_ARG.search(a) else a) for a in args]


class PamParser:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.files: list[str] = []

    def locate(self, name: str) -> str | None:
        if name.startswith("/"):
            return name if self.target.exists(name) else None
        for d in PAM_DIRS:
            path = posixpath.join(d, name)
            if self.target.exists(path):
                return path
        return None

    def stack(self, path: str, *, only: str | None = None, depth: int = 0,
              chain: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        if path in chain:
            raise PamProblem("include_loop", chain=" -> ".join([*chain, path]))
        if depth > MAX_DEPTH:
            raise PamProblem("nested_too_deeply", path=path)
        try:
            tf = read_text(self.target, path)
        except TargetError as e:
            raise PamProblem("unreadable", error=str(e)) from e
        if path not in self.files:
            self.files.append(path)
        entries: list[dict[str, Any]] = []
        for n, line in logical_lines(tf.lines):
            if not line:
                continue
            where = f"{path}:{n}"
            tokens = tokenize(line, where)
            if tokens[0].lower() == "@include":
                if len(tokens) != 2:
                    raise PamProblem("include_arity", where=where)
                inc = self.locate(tokens[1])
                if inc is None:
                    raise PamProblem("include_not_found", where=where, file=tokens[1])
                entries += self.stack(inc, only=only, depth=depth + 1, chain=(*chain, path))
                continue
            if len(tokens) < 3:
                raise PamProblem("too_few_fields", where=where)
            raw_type, control, module, args = tokens[0], tokens[1], tokens[2], tokens[3:]
            optional = raw_type.startswith("-")
            ptype = raw_type.lstrip("-").lower()
            if ptype not in TYPES:
                raise PamProblem("unknown_type", where=where, value=raw_type)
            if not (control.lower() in CONTROLS or (control.startswith("[") and control.endswith("]"))):
                raise PamProblem("unknown_control", where=where, value=control)
            if only is not None and ptype != only:
                continue
            if control.lower() in ("include", "substack"):
                inc = self.locate(module)
                if inc is None:
                    raise PamProblem("include_not_found", where=where, file=module)
                sub = self.stack(inc, only=ptype, depth=depth + 1, chain=(*chain, path))
                for sub_entry in sub:
                    sub_entry.setdefault("via", where)
                entries += sub
                continue
            entries.append({"type": ptype, "control": control.lower() if not control.startswith("[") else control,
                            "module": module, "args": _safe_args(args), "optional": optional, "where": where})
        return entries


def module_dirs(target: Target) -> list[str]:
    dirs: list[str] = []
    for pattern in MODULE_DIR_GLOBS:
        for d in glob(target, pattern) if "*" in pattern else ([pattern] if target.exists(pattern) else []):
            if d not in dirs:
                dirs.append(d)
    return dirs


def parse_keyvalue_conf(target: Target, paths: list[str], ints: set[str], flags: set[str],
                        strings: set[str]) -> dict[str, Any]:
    """``key = value`` / bare ``flag`` files (pwquality.conf, faillock.conf), later files overriding."""
    settings: dict[str, Any] = {}
    files: list[str] = []
    for path in paths:
        try:
            tf = read_optional(target, path)
        except TargetError as e:
            return {"files": files, "settings": settings, "problem": {"code": "unreadable", "error": str(e)}}
        if tf is None:
            continue
        files.append(path)
        for n, raw in enumerate(tf.lines, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            key, eq, value = (s.strip() for s in line.partition("="))
            where = f"{path}:{n}"
            if key in flags and not eq:
                settings[key] = True
            elif key in ints and eq:
                if value == "never" and key.endswith("unlock_time"):
                    settings[key] = 0
                elif re.fullmatch(r"-?\d+", value):
                    settings[key] = int(value)
                else:
                    return {"files": files, "settings": settings,
                            "problem": {"code": "needs_number", "where": where, "key": key}}
            elif key in strings and eq:
                settings[key] = value
            else:
                return {"files": files, "settings": settings,
                        "problem": {"code": "unknown_setting", "where": where, "line": line}}
    return {"files": files, "settings": settings, "problem": None}


def _prefetch_pam_files(target: Target) -> None:
    """Every file of the PAM directories in one go: the stacks include each other, one file at a time, and
    over SSH each of those steps would otherwise be a round trip of its own."""
    paths: list[str] = []
    for d in PAM_DIRS:
        try:
            paths += [posixpath.join(d, n) for n in target.list_dir(d)]
        except TargetError:
            continue
    target.prefetch(paths)


class PamCollector(Collector):
    id = "pam"
    reads = (PWQUALITY_CONF, FAILLOCK_CONF)
    lists = (*PAM_DIRS, "/etc/security", PWQUALITY_DIR, "/lib", "/usr/lib")
    version = "2"

    def collect(self, target: Target) -> Facts:
        pam_d = next((d for d in PAM_DIRS if target.exists(d)), None)
        facts: Facts = {"pam_d": pam_d, "services": {}, "files": [], "module_dirs": module_dirs(target)}
        if pam_d is not None:
            _prefetch_pam_files(target)
            parser = PamParser(target)
            for service in SERVICES:
                path = parser.locate(service)
                if path is None:
                    continue
                record: dict[str, Any] = {"file": path, "stack": {}, "problem": None}
                try:
                    entries = parser.stack(path)
                except PamProblem as e:
                    record["problem"] = e.problem
                    entries = []
                for t in KEPT_TYPES:
                    record["stack"][t] = [e for e in entries if e["type"] == t]
                facts["services"][service] = record
            facts["files"] = parser.files
            present = set()
            for d in facts["module_dirs"]:
                try:
                    present.update(target.list_dir(d))
                except TargetError:
                    continue
            for record in facts["services"].values():
                for entries in record["stack"].values():
                    for entry in entries:
                        name = entry["module"]
                        if name.startswith("/"):
                            entry["present"] = target.exists(name)
                        else:
                            entry["present"] = (name in present) if facts["module_dirs"] else None
        pwq_paths = [PWQUALITY_CONF, *glob(target, PWQUALITY_DIR + "/*.conf")]
        facts["pwquality"] = parse_keyvalue_conf(target, pwq_paths, PWQUALITY_INT, PWQUALITY_FLAGS, PWQUALITY_STR)
        facts["faillock"] = parse_keyvalue_conf(target, [FAILLOCK_CONF], FAILLOCK_INT, FAILLOCK_FLAGS, FAILLOCK_STR)
        return facts


def parse_login_defs(lines: list[str]) -> tuple[dict[str, str], list[int]]:
    settings: dict[str, str] = {}
    bad: list[int] = []
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(None, 1)
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", parts[0]):
            bad.append(n)
            continue
        settings[parts[0]] = parts[1].strip().strip('"') if len(parts) == 2 else ""
    return settings, bad


class LoginDefsCollector(Collector):
    id = "login_defs"
    reads = (LOGIN_DEFS,)
    version = "2"

    def collect(self, target: Target) -> Facts:
        try:
            tf = read_optional(target, LOGIN_DEFS)
        except TargetError as e:
            return {"present": True, "settings": {}, "problem": {"code": "unreadable", "error": str(e)}}
        if tf is None:
            return {"present": False, "settings": {}, "problem": None}
        settings, bad = parse_login_defs(tf.lines)
        problem = {"code": "malformed_lines", "path": LOGIN_DEFS, "lines": bad} if bad else None
        return {"present": True, "settings": settings, "problem": problem}


COLLECTOR = PamCollector()
LOGIN_DEFS_COLLECTOR = LoginDefsCollector()
