"""The one pipeline behind ``scan`` and ``evaluate``: planned targets -> facts -> report -> exit code.

``scan`` collects its live targets and takes bundles as they are; ``evaluate`` has only bundles. Everything
else is this one function, so a bundle gets the same findings, the same target outcomes and the same exit
code whichever command judges it: its facts were version-guarded when it was loaded
(``agent.fleet.saved_targets``), each target is judged with its own policy overrides, a partial bundle makes
a partial report, and the exit code comes from the report alone (``Report.exit_code``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agent.cli.common import say

if TYPE_CHECKING:
    from agent.config.policy import Policy
    from agent.config.waivers import Waiver
    from agent.fleet import Job, Saved
    from checks.base import Check
    from checks.organisation import Organisation
    from collectors.base import Collector


def judge_and_deliver(items: Sequence[Job | Saved], *, checks: Sequence[Check], policy: Policy,
                      collectors: Sequence[Collector], workers: int, output: str | None, scope: str, key: Any,
                      quiet: bool, lang: str, waivers: Sequence[Waiver] = (),
                      organisation: Organisation | None = None) -> int:
    """Collect what must be collected, judge every target, write (and sign) the report, show it.

    ``items`` come from ``agent.fleet.plan`` (or ``saved_targets``). Returns the exit code, which depends on
    the report only — never on whether anyone was still reading stdout.
    """
    from pathlib import Path

    from agent.cli.delivery import deliver
    from agent.cli.remote_options import run_fleet
    from agent.runner import build_report, new_run_id, now_iso

    run_id, started = new_run_id(), now_iso()
    fleet = run_fleet(items, collectors, workers=workers, policy=policy, quiet=quiet)
    report = build_report(run_id=run_id, started=started, target_facts=fleet.facts, checks=checks, policy=policy,
                          scope=scope or (str(Path(output).resolve().parent) if output else ""),
                          partial=fleet.partial, policy_for=fleet.policy_for(policy), organisation=organisation)
    waiver_notes = []
    if waivers:  # before the report is written and signed: a waiver is part of what it says
        from agent.config.waivers import apply_waivers

        waiver_notes = apply_waivers(report, waivers)
    code = report.exit_code()
    from reports.signing.publish import ReportNotLinked

    try:
        deliver(report, output=output, key=key, quiet=quiet, lang=lang)
    except ReportNotLinked as e:
        # Written and shown, but outside its series: a script must see it, and "a finding failed" still
        # says more than "could not be linked", as everywhere else 1 wins over 3.
        from reports.notes import Escaped, note

        say(note("error", detail=Escaped(e.diagnostics(lang))), lang)
        code = 1 if code == 1 else e.exit_code
    for line in waiver_notes:
        say(line, lang)
    if fleet.interrupted:
        from reports.notes import note

        say(note("interrupted_report"), lang)
    return code
