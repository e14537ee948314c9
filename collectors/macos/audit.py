"""How long a Mac keeps its audit trail, where login and authentication events are recorded (LG-02).

macOS's BSM audit (auditd) writes login/logout (``lo``) and authentication (``aa``) events to trail files
under ``dir:`` (``/var/audit``) as ``/etc/security/audit_control`` says, and deletes old trail files by its
``expire-after:`` condition: a time (``60d``), a size (``10M``, the shipped value) or both joined by AND/OR
(audit_control(5); mSCP rules audit_retention_configure, audit_flags_lo_configure, audit_flags_aa_configure).
``audit -c`` tells whether auditing is on now (``AUC_AUDITING``; mSCP audit_auditd_enabled). The trail files
are named by the UTC times they start and end (``20240101120000.20240108120000``), so the oldest file's
name says how far back the trail really reaches; the facts keep it and the time of collection.

The unified log (``log show``) also holds login events, but its retention is per subsystem and by size,
with no single setting to read: it is not judged here.
"""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

from agent.targets.base import CommandResult, FileMissing, Target, TargetError
from collectors.base import Facts
from collectors.macos.base import MacCollector, run_tool, text
from collectors.problems import Problem, unreadable

CONTROL = "/etc/security/audit_control"
DEFAULT_DIR = "/var/audit"
AUDIT_C = ("/usr/sbin/audit", "-c")
MSCP = ["audit_retention_configure", "audit_flags_lo_configure", "audit_flags_aa_configure", "audit_auditd_enabled"]
#: Keys of audit_control(5) the judge reads; the others (masks, policy) are not about retention.
KEYS = ("dir", "flags", "naflags", "expire-after", "filesz", "minfree")
_TRAIL = re.compile(r"^(\d{14})\.(\d{14}|not_terminated|crash_recovery)$")


def parse_control(data: bytes) -> dict[str, str]:
    """``key: value`` lines of audit_control (``#`` comments); the last value of a key wins, as in auditd."""
    out: dict[str, str] = {}
    for raw in data.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        if key.strip() in KEYS:
            out[key.strip()] = value.strip()
    return out


def oldest_trail(names: list[str]) -> dict[str, Any]:
    """The oldest trail file among a directory's names (by the start time in its name), and how many there are."""
    starts = sorted(m.group(1) for n in names if (m := _TRAIL.match(n)))
    if not starts:
        return {"files": 0, "oldest_start": None}
    s = starts[0]
    return {"files": len(starts), "oldest_start": f"{s[0:4]}-{s[4:6]}-{s[6:8]}T{s[8:10]}:{s[10:12]}:{s[12:14]}Z"}


def _auditing(res: CommandResult) -> str:
    """mSCP audit_auditd_enabled counts auditing as on only when ``audit -c`` says ``AUC_AUDITING``; any
    other answer (auditd not running, no trail configured) is "not auditing", never "on"."""
    said = text(res).strip()
    if "AUC_AUDITING" in said:
        return "auditing"
    if said:
        return "not_auditing"
    raise Problem("unknown_answer", tool="audit -c", output="")


class AuditCollector(MacCollector):
    id: ClassVar[str] = "mac_audit"
    reads: ClassVar[tuple[str, ...]] = (CONTROL,)

    def collect(self, target: Target) -> Facts:
        facts: dict[str, Any] = {"mscp": MSCP, "collected_at": time.time()}
        try:
            control: dict[str, Any] = {"source": CONTROL, "status": "ok",
                                        "value": parse_control(target.read_file(CONTROL))}
        except FileMissing:
            control = {"source": CONTROL, "status": "missing"}
        except TargetError as e:
            control = {"source": CONTROL, "status": "error", "problem": unreadable(e)}
        facts["control"] = control
        facts["auditing"] = run_tool(target, AUDIT_C, _auditing, ok_exit=(0, 1))
        trail_dir = (control.get("value") or {}).get("dir") or DEFAULT_DIR
        try:
            facts["trail"] = {"source": trail_dir, "status": "ok", "value": oldest_trail(target.list_dir(trail_dir))}
        except FileMissing:
            facts["trail"] = {"source": trail_dir, "status": "missing"}
        except TargetError as e:
            facts["trail"] = {"source": trail_dir, "status": "error", "problem": unreadable(e)}
        return facts


COLLECTOR = AuditCollector()
