"""Collect a Windows target the way the runner does, for tests that judge replayed or built facts.

The runner announces every collector's registry reads and PowerShell parts first (so the one batch asks
everything at once), then runs the collectors concurrently. Tests that feed a replay straight to collectors
must do the same, or they would test a batch order the runner never produces.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from agent.runner import TargetFacts, announce_reads, run_collector


def collect_windows(target: Any, collectors: Sequence[Any], policy: Any = None, *,
                    timeout: float = 60) -> TargetFacts:
    announce_reads(target, list(collectors))
    records: dict[str, Any] = {}
    threads = [threading.Thread(target=lambda c=c: records.__setitem__(c.id, run_collector(c, target, policy)))
               for c in collectors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    return TargetFacts(id=target.id, kind=target.kind, system="windows", facts=records)
