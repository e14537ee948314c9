"""What a finding set contributes to the overview, computed once when the set is stored.

Finding sets never change, and at 1,000 hosts most latest sets are distinct (host names sit in messages and
evidence), so grouping their findings' guideline items at every overview request read ~100,000 rows. Kept
with the set instead, the overview reads one small JSON value per host's latest set.

The rules are the grid's: a failure under a waiver in force is its own column (an accepted risk, still a
failure); a host is non-compliant on an item when a finding for it is an unwaived failure, an error or an
open manual question.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

GRID_STATUSES = ("fail", "waived", "error", "manual", "pass", "not_applicable")


class ItemSummary(TypedDict):
    bad: bool
    counts: dict[str, int]


def column(status: str, waived: bool) -> str:
    if status == "fail":
        return "waived" if waived else "fail"
    return status


def is_bad(status: str, waived: bool) -> bool:
    return (status == "fail" and not waived) or status in ("error", "manual")


def summarise(findings: Iterable[tuple[str, bool, Iterable[str]]]) -> tuple[dict[str, ItemSummary], bool]:
    """(status, waived, guideline items) of every finding → (per item summary, whether any finding is bad)."""
    items: dict[str, ItemSummary] = {}
    any_bad = False
    for status, waived, guideline in findings:
        bad = is_bad(status, waived)
        any_bad = any_bad or bad
        col = column(status, waived)
        for item in guideline:
            entry = items.setdefault(str(item)[:64], {"bad": False, "counts": {}})
            entry["bad"] = entry["bad"] or bad
            entry["counts"][col] = entry["counts"].get(col, 0) + 1
    return items, any_bad
