"""Intrusion and integrity monitoring tools: installed, and the evidence that they work.

Daemon tools (auditd, fail2ban, Wazuh/OSSEC agents, osquery) are judged
running from the ``processes`` facts; this collector records what only files
show: which tools are installed, audit rules configured, fail2ban jails
enabled, and for scheduled tools (AIDE, Tripwire) whether a baseline database
exists and a cron job or timer runs the check. An integrity checker with no
baseline, or one nobody runs, monitors nothing.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
from typing import Any

from agent.targets.base import Target, TargetError
from collectors import data
from collectors.base import Collector, Facts
from collectors.schedule_state import jobs_mentioning
from collectors.textfiles import glob, read_text

AUDIT_RULES = ("/etc/audit/audit.rules", "/etc/audit/rules.d/*.rules")
FAIL2BAN = ("/etc/fail2ban/jail.conf", "/etc/fail2ban/jail.d/*.conf", "/etc/fail2ban/jail.local",
            "/etc/fail2ban/jail.d/*.local")


def tools() -> dict[str, Any]:
    table: dict[str, Any] = data.load("monitoring_tools.yaml")
    return table


def audit_rules(target: Target) -> dict[str, Any]:
    files: list[str] = []
    rules = 0
    for pattern in AUDIT_RULES:
        for path in glob(target, pattern) if "*" in pattern else [pattern]:
            try:
                lines = read_text(target, path).lines
            except TargetError:
                continue
            files.append(path)
            rules += sum(1 for ln in lines if ln.strip().startswith(("-w", "-a")))
    return {"files": files, "rules": rules}


def fail2ban_jails(target: Target) -> list[str]:
    """Jails with ``enabled = true``, later files overriding earlier ones (fail2ban's reading order)."""
    state: dict[str, bool] = {}
    for pattern in FAIL2BAN:
        for path in glob(target, pattern) if "*" in pattern else [pattern]:
            try:
                lines = read_text(target, path).lines
            except TargetError:
                continue
            section = ""
            for raw in lines:
                line = raw.strip()
                if line.startswith("[") and line.endswith("]"):
                    section = line[1:-1].strip()
                elif section and section not in ("DEFAULT", "INCLUDES") and re.match(r"enabled\s*=", line):
                    state[section] = line.split("=", 1)[1].strip().lower() in ("true", "yes", "1", "on")
    return sorted(j for j, on in state.items() if on)


class MonitoringCollector(Collector):
    id = "monitoring"
    reads = (AUDIT_RULES[0],)
    lists = ("/etc/audit/rules.d", "/var/ossec/bin", "/opt")
    version = "1"

    def collect(self, target: Target) -> Facts:
        out: dict[str, Any] = {}
        target.prefetch((p for tool in tools().values() for p in tool["paths"]), op="stat")
        for key, tool in tools().items():
            found = [p for p in tool["paths"] if target.exists(p)]
            entry: dict[str, Any] = {"installed": bool(found), "paths": found}
            if found and "schedule" in tool:
                dbs = [p for p in tool.get("databases", []) if target.exists(p)]
                if "databases_in" in tool:
                    with contextlib.suppress(TargetError):
                        dbs += [posixpath.join(tool["databases_in"], n) for n in target.list_dir(tool["databases_in"])
                                if n.endswith(".twd")]
                entry["databases"] = []
                for p in dbs:
                    st = target.stat(p)
                    entry["databases"].append({"path": p, "mtime": st.mtime if st else None})
                entry["jobs"] = jobs_mentioning(target, re.compile(tool["schedule"]))
            if found and key == "auditd":
                entry["rules"] = audit_rules(target)
            if found and key == "fail2ban":
                entry["jails"] = fail2ban_jails(target)
            out[key] = entry
        return {"tools": out}


COLLECTOR = MonitoringCollector()
