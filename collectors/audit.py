"""The Linux audit system: is it on, is auditd receiving, and which files are watched.

The kernel's loaded rules (``auditctl -l``) and status (``auditctl -s``: enabled,
the PID of the daemon receiving events) are the truth on a running machine;
rule files can say anything and are only loaded when augenrules/auditctl run.
On an image nothing is loaded, so the facts hold the configured rules
(``/etc/audit/rules.d/*.rules``, else ``audit.rules``) and whether auditd is
enabled at boot, and the check decides what that can prove. A ``problem`` is a code with its parts
(collectors/problems.py).
"""

from __future__ import annotations

import shlex
from typing import Any

from agent.targets.base import CommandTimeout, CommandUnavailable, Target, TargetError
from collectors.base import Collector, Facts
from collectors.problems import Problem, problem, tool_failed, unreadable
from collectors.textfiles import glob, read_optional
from collectors.units import unit_enabled

RULES_DIR = "/etc/audit/rules.d"
RULES_FILE = "/etc/audit/audit.rules"
BINARIES = ("/sbin/auditd", "/usr/sbin/auditd")
MAX_RULES = 5000


class RuleProblem(Problem):
    """auditctl would refuse this rule (or there are too many to read): a code and its parts."""


def parse_rule(line: str, where: str) -> dict[str, Any] | None:
    """A file-watch rule as {path, perms, recursive, action}; None for other rules (syscalls, controls)."""
    try:
        words = shlex.split(line)
    except ValueError as e:
        raise RuleProblem("quoting", where=where) from e
    if not words:
        return None
    if words[0] == "-w":
        if len(words) < 2 or not words[1].startswith("/"):
            raise RuleProblem("watch_path", where=where)
        perms = "rwxa"  # auditctl's default when -p is not given
        if "-p" in words:
            i = words.index("-p")
            if i + 1 >= len(words) or not set(words[i + 1]) <= set("rwxa"):
                raise RuleProblem("watch_perms", where=where)
            perms = words[i + 1]
        # A watch on a directory covers its whole subtree; the rule text cannot say which it is.
        return {"path": words[1], "perms": perms, "recursive": None, "action": "always", "where": where}
    if words[0] in ("-a", "-A"):
        if len(words) < 2:
            raise RuleProblem("rule_list", where=where, option=words[0])
        parts = set(words[1].split(","))
        action = "never" if "never" in parts else "always"
        fields: dict[str, str] = {}
        for i, w in enumerate(words):
            if w == "-F" and i + 1 < len(words):
                key, _, value = words[i + 1].partition("=")
                fields[key.rstrip("!<>")] = value
        if "dir" in fields or "path" in fields:
            path = fields.get("dir") or fields["path"]
            return {"path": path, "perms": fields.get("perm", "rwxa"), "recursive": "dir" in fields,
                    "action": action, "where": where}
    return None


def parse_rules(lines: list[str], source: str) -> tuple[list[dict[str, Any]], int]:
    watches, count = [], 0
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#") or line == "No rules":
            continue
        count += 1
        if count > MAX_RULES:
            raise RuleProblem("too_many_rules", source=source, max=MAX_RULES)
        rule = parse_rule(line, f"{source}:{n}")
        if rule is not None:
            watches.append(rule)
    return watches, count


def parse_status(text: str) -> dict[str, Any]:
    status: dict[str, Any] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            status[key] = int(value) if value.strip().lstrip("-").isdigit() else value.strip()
    if "enabled" not in status or "pid" not in status:
        raise RuleProblem("status_incomplete")
    return status


def configured(target: Target) -> dict[str, Any]:
    files = glob(target, RULES_DIR + "/*.rules") or ([RULES_FILE] if target.exists(RULES_FILE) else [])
    out: dict[str, Any] = {"files": files, "watches": [], "rules": 0, "problem": None,
                           "installed": any(target.exists(b) for b in BINARIES),
                           "enabled_at_boot": unit_enabled(target, "auditd.service")}
    target.prefetch(files)
    for path in files:
        try:
            tf = read_optional(target, path)
            if tf is None:
                continue
            watches, count = parse_rules(tf.lines, path)
        except TargetError as e:
            out["problem"] = unreadable(e)
            return out
        except RuleProblem as e:
            out["problem"] = e.problem
            return out
        out["watches"] += watches
        out["rules"] += count
    return out


def _permission(text: str) -> bool:
    low = text.lower()
    return "must be root" in low or "operation not permitted" in low or "permission denied" in low


class AuditCollector(Collector):
    id = "audit"
    reads = (RULES_FILE,)
    lists = (RULES_DIR, "/etc/systemd/system")
    probes = BINARIES
    version = "2"  # 2: problems are codes with their parts

    def collect(self, target: Target) -> Facts:
        facts: Facts = {"live": target.can_run, "status": None, "loaded": [], "loaded_rules": 0, "problem": None,
                        "permission_denied": False, "tool": True}
        try:
            facts["configured"] = configured(target)
        except TargetError as e:  # e.g. /etc/audit/rules.d is root-only
            facts["configured"] = {"files": [], "watches": [], "rules": 0, "problem": unreadable(e), "installed": None,
                                   "enabled_at_boot": None}
        if not target.can_run:
            return facts
        outputs = {}
        for argv in (["auditctl", "-s"], ["auditctl", "-l"]):
            try:
                res = target.run(argv, timeout=15)
            except CommandUnavailable:
                facts["tool"] = False  # the audit userspace is not installed
                return facts
            except CommandTimeout as e:
                facts["problem"] = problem("command_failed", error=str(e))
                return facts
            text = res.stdout.decode("utf-8", "replace")
            err = res.stderr.decode("utf-8", "replace").strip()
            if not res.ok or _permission(text + err):
                facts["problem"] = tool_failed(" ".join(argv), res.returncode, err or text)
                facts["permission_denied"] = _permission(text + err)
                return facts
            outputs[argv[1]] = text
        try:
            facts["status"] = parse_status(outputs["-s"])
            facts["loaded"], facts["loaded_rules"] = parse_rules(outputs["-l"].splitlines(), "auditctl -l")
        except RuleProblem as e:
            facts["problem"] = e.problem
        return facts


COLLECTOR = AuditCollector()
