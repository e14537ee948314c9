"""How each guideline item was covered in a report: ``summary.coverage``.

"Covered all of Art. 9" must be a fact a reader can check in the report, not a claim. For every item of
the guideline (``checks/meta/_guideline.yaml``, which is ``ITEMS.md``) the summary says

- ``automated``: on how many targets a program judged it, and with what statuses;
- ``attested``: which organisation questions a person answered, by whom, with what result;
- ``unanswered``: which questions are still open (``manual``, or an answer that lapsed);
- ``state``: ``covered`` (judged or attested, nothing open), ``partly`` (some judged, something open:
  a question unanswered, a check ``error`` or ``manual``), ``uncovered`` (findings, but none judged:
  all open or not applicable) or ``absent`` (no finding names it: narrowed by ``--check``, or the
  organisation was left out).

Computed from the findings alone, like the rest of the summary, so a report loaded later shows the same.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reports.model import Finding, TargetRecord

#: The statuses a program reached a verdict with.
JUDGED = ("pass", "fail")
#: The statuses that leave an item open: nobody could tell.
OPEN = ("error", "manual")


def all_items() -> list[str]:
    """Every guideline item, in the guideline's order."""
    from checks.base import guideline_items

    return list(guideline_items())


def coverage(findings: Sequence[Finding], targets: Sequence[TargetRecord],
             items: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    from reports.model import STATUSES

    organisation = {t.id for t in targets if t.kind == "organisation"}
    wanted = list(items) if items is not None else all_items()
    for f in findings:  # an item this mamoru does not know (a report from a newer one) still shows
        wanted += [g for g in f.guideline if g not in wanted]
    out: dict[str, dict[str, Any]] = {}
    for item in wanted:
        mine = [f for f in findings if item in f.guideline]
        machine = [f for f in mine if f.attestation is None and f.target not in organisation]
        asked = [f for f in mine if f.attestation is None and f.target in organisation]
        attested = [f for f in mine if f.attestation is not None]
        by_status = Counter({s: 0 for s in STATUSES})
        by_status.update(f.status for f in machine)
        judged = any(f.status in JUDGED for f in machine) or bool(attested)
        still_open = any(f.status in OPEN for f in machine) or bool(asked)
        if not mine:
            state = "absent"
        elif judged:
            state = "partly" if still_open else "covered"
        else:
            state = "uncovered"
        out[item] = {
            "state": state,
            "automated": {"targets": len({f.target for f in machine if f.status in JUDGED}),
                          "by_status": dict(by_status)},
            "attested": [{"check": f.check, "status": f.status, "by": str((f.attestation or {}).get("by", "")),
                          "at": str((f.attestation or {}).get("at", ""))} for f in attested],
            "unanswered": sorted({f.check for f in asked}),
        }
    return out
