"""Waivers (``--waivers FILE``): failures a named person accepted, each for a reason and until a date.

A waiver never changes what the facts say. A failing finding it covers stays ``fail`` in every format and
carries ``waiver = {reason, approver, expires, state, source}`` (plus ``id``/``ticket`` when given); only
``Report.exit_code`` reads ``state``, and lets a failure under a waiver in force (``valid``, ``expiring``) pass.

Decisions, each for a reason:

- **Only failures are waivable.** An ``error`` means "mamoru could not tell": a waiver on it would hide a blind
  spot as accepted risk, and the day the check can judge again nobody would see it fail. A waiver that
  matches only pass/error/not_applicable/manual findings is not applied, and a note says so: a stale waiver
  must be visible, or it outlives the risk it was written for.
- **Days are Asia/Tokyo days.** The office and the approver are in Japan, and "expires 2026-03-31" means the
  end of that day there, whatever zone the scanning machine is set to. The expiry date itself is still
  valid; the waiver is ``expired`` from 00:00 JST the day after. It is ``expiring`` (still in force, with a
  warning) from 14 days before the expiry date.
- **The clock is the report's.** State is judged at ``run.finished`` unless a ``now`` is passed, so a report
  can be re-judged by anyone from what it holds, and tests pass their own times instead of patching clocks.
- **Patterns** are ``fnmatch`` patterns (``*``, ``?``, ``[...]``), matched against the finding's target id as
  the report names it (``ssh://audit@10.0.0.5:22``, an inventory ``name``, ``rootfs:/mnt/pc``), exactly and
  case-sensitively, or against the target's host name case-insensitively (host names are). Either matching
  is enough.
- **Several waivers on one failure**: the one that lasts longest applies (ties: the first in the file), so a
  renewed waiver added below an expired one is the one that counts.

The file goes through the project's hardened YAML loader (duplicate keys, aliases, non-JSON values, size,
all with file and line) and a JSON Schema; a check ID that does not exist or a date that is not a date is
refused with its line too. All of it happens before any scan work (exit 2).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, TypedDict
from zoneinfo import ZoneInfo

from agent.config.yamlfile import line_of, load_config_yaml, load_schema, validate
from agent.errors import ConfigError
from reports.model import Finding, Report
from reports.notes import Note, Status, note

#: Where a waiver's days begin and end (see the module's docstring). Needs the IANA database: the system's,
#: or the ``tzdata`` package where there is none (Windows, slim containers); pyproject.toml depends on it.
ZONE = "Asia/Tokyo"
#: A waiver is ``expiring`` (still in force, with a warning) from this many days before its expiry date.
WARN_DAYS = 14


class WaiverRecord(TypedDict, total=False):
    """``Finding.waiver`` as written to the report (reports/schema/report.schema.json)."""

    reason: str
    approver: str
    expires: str
    state: str
    source: str
    id: str
    ticket: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Waiver:
    """One entry of a waivers file, checked."""

    check: str
    target: str
    reason: str
    approver: str
    expires: dt.date
    source: str  # file:line of the entry
    id: str | None = None
    ticket: str | None = None

    def matches(self, finding: Finding, hostname: str) -> bool:
        if finding.check != self.check:
            return False
        return fnmatchcase(finding.target, self.target) or (
            bool(hostname) and fnmatchcase(hostname.casefold(), self.target.casefold()))

    def state(self, now: dt.datetime) -> str:
        """valid | expiring | expired at ``now`` (an aware time), counted in Tokyo days."""
        left = days_left(self.expires, now)
        if left < 0:
            return "expired"
        return "expiring" if left <= WARN_DAYS else "valid"

    def record(self, now: dt.datetime) -> WaiverRecord:
        out = WaiverRecord(reason=self.reason, approver=self.approver, expires=self.expires.isoformat(),
                           state=self.state(now), source=self.source)
        if self.id is not None:
            out["id"] = self.id
        if self.ticket is not None:
            out["ticket"] = self.ticket
        return out

    def label(self) -> str:
        """How a note names this waiver: its id when it has one, else check and pattern."""
        return f"{self.id} ({self.check} {self.target})" if self.id else f"{self.check} {self.target}"


@functools.cache
def zone() -> ZoneInfo:
    return ZoneInfo(ZONE)


def days_left(expires: dt.date, now: dt.datetime) -> int:
    """Whole Tokyo days from ``now`` to the expiry date: 0 on the expiry date itself, -1 the day after."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime (a naive one has no zone to count days in)")
    return (expires - now.astimezone(zone()).date()).days


def waivers_schema() -> dict[str, Any]:
    return load_schema("agent.config", "waivers.schema.json")


def load_waivers(path: str | Path, *, known_checks: Iterable[str] | None = None) -> list[Waiver]:
    """A waivers file, checked through and through, or a ConfigError naming file and line (exit 2).

    ``known_checks``: the check IDs that exist (default: the registry's), so that a typo (``AC-1O``) is an
    error here rather than a waiver that silently never applies.
    """
    p = Path(path)
    source = str(p)
    value, node = load_config_yaml(p, what="waivers file")
    if not isinstance(value, dict):
        raise ConfigError(f"{source}:{line_of(node, []) or 1}: a waivers file is a mapping with a 'waivers' list")
    validate(value, node, waivers_schema(), source)
    if known_checks is None:
        from agent.registry import checks

        known_checks = checks()
    known = set(known_checks)
    out: list[Waiver] = []
    for i, raw in enumerate(value["waivers"]):
        if raw["check"] not in known:
            line = line_of(node, ["waivers", i, "check"])
            raise ConfigError(note=note("waiver_unknown_check", where=f"{source}:{line}", check=raw["check"]))
        try:
            expires = dt.date.fromisoformat(raw["expires"])
        except ValueError:
            line = line_of(node, ["waivers", i, "expires"])
            raise ConfigError(note=note("waiver_bad_date", where=f"{source}:{line}")) from None
        out.append(Waiver(check=raw["check"], target=raw["target"], reason=raw["reason"].strip(),
                          approver=raw["approver"].strip(), expires=expires,
                          source=f"{source}:{line_of(node, ['waivers', i])}",
                          id=raw.get("id"), ticket=raw.get("ticket")))
    return out


def report_time(report: Report) -> dt.datetime:
    """The report's own clock: when it was finished (UTC, ``...Z``)."""
    return dt.datetime.fromisoformat(report.run.finished.replace("Z", "+00:00"))


def apply_waivers(report: Report, waivers: Sequence[Waiver], *, now: dt.datetime | None = None) -> list[Note]:
    """Put each failing finding's waiver on it (in place) and say what the operator must hear.

    Returns the notes, in file order: waivers that are expiring or expired, waivers that matched only
    findings that are not failures, waivers that matched nothing, and how many failures are accepted.
    """
    when = now if now is not None else report_time(report)
    hosts = {t.id: t.hostname for t in report.targets}
    matched: set[int] = set()  # waivers that matched a failure
    applied: dict[int, int] = {}  # waiver index -> failures it is the waiver of
    other: dict[int, set[str]] = {}  # waiver index -> statuses of the other findings it matched
    for f in report.findings:
        f.waiver = None
        hits = [i for i, w in enumerate(waivers) if w.matches(f, hosts.get(f.target, ""))]
        if not hits:
            continue
        if f.status != "fail":
            for i in hits:
                other.setdefault(i, set()).add(f.status)
            continue
        matched.update(hits)
        best = max(hits, key=lambda i: (waivers[i].expires, -i))
        applied[best] = applied.get(best, 0) + 1
        f.waiver = dict(waivers[best].record(when))
    notes: list[Note] = []
    for i, w in enumerate(waivers):
        state, expires = w.state(when), w.expires.isoformat()
        if i in applied:
            if state == "expiring":
                notes.append(note("waiver_expiring", source=w.source, waiver=w.label(), expires=expires,
                                  days=days_left(w.expires, when), count=applied[i]))
            elif state == "expired":
                notes.append(note("waiver_expired", source=w.source, waiver=w.label(), expires=expires,
                                  count=applied[i]))
        elif i in matched:
            notes.append(note("waiver_superseded", source=w.source, waiver=w.label()))
        elif i in other:
            statuses = [Status(s) for s in sorted(other[i])]  # in the note's language, not "error"
            notes.append(note("waiver_not_failure", source=w.source, waiver=w.label(), statuses=statuses))
        else:
            notes.append(note("waiver_unused", source=w.source, waiver=w.label()))
    accepted = sum(1 for f in report.findings if f.waived)
    if accepted:
        notes.append(note("waivers_accepted", count=accepted))
    return notes
