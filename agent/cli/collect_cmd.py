"""``mamoru collect``: gather the raw facts of every target into one evidence bundle, judge nothing.

For the consultant on site: collect now, ``mamoru evaluate`` later with the
client's policy, as often as needed, without going back to the machines.
"""

from __future__ import annotations

from typing import Any

import click

from agent.cli.common import note
from agent.cli.remote_options import plan_targets, remote_options, run_fleet


@click.command("collect")
@click.option("--target", "targets", multiple=True, default=(),
              help="local (the default without --inventory), rootfs:DIR, ssh://user@host:port, bundle:FILE "
                   "(repeatable).")
@click.option("--output", "output", type=click.Path(dir_okay=False, writable=True), required=True,
              help="The bundle file to write (atomically, mode 0600), e.g. facts.bundle.json.")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
              help="Policy whose inputs steer collection (e.g. which folders hold personal data).")
@click.option("--check", "check_ids", multiple=True, help="Collect only what this check needs (repeatable).")
@click.option("--guideline", "guideline", multiple=True, help="Collect only for this guideline item (repeatable).")
@click.option("--workers", type=click.IntRange(1, 256), default=8, show_default=True,
              help="At most this many targets at once (and at most 4 per CPU: see README, Remote audits).")
@click.option("--active-tests", "active_tests", is_flag=True,
              help="Also run active collectors that act on the target (see scan --help).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@remote_options
def collect(targets: tuple[str, ...], output: str, policy_path: str | None, check_ids: tuple[str, ...],
            guideline: tuple[str, ...], workers: int, active_tests: bool, quiet: bool, **remote: Any) -> int:
    """Gather facts from targets into an evidence bundle (judge them later with mamoru evaluate)."""
    import agent
    from agent.config.policy import load_policy
    from agent.registry import collectors, select_checks
    from agent.runner import needed_collectors, new_run_id, now_iso, operator
    from reports.bundle import Bundle, BundleTarget, write_bundle

    items = plan_targets(targets, remote)
    policy = load_policy(policy_path)
    from agent.scope import check_specs

    check_specs(targets, policy)  # a network outside network.scope is refused before any packet (exit 2)
    chosen = select_checks(ids=check_ids, guideline=guideline)
    from reports.atomic import check_writable_output

    check_writable_output(output, series=False)  # refused now (exit 2), not after the collection
    wanted = needed_collectors(chosen, collectors(n for c in chosen for n in c.needs), active=active_tests)
    run_id, started = new_run_id(), now_iso()
    fleet = run_fleet(items, wanted, workers=workers, policy=policy, quiet=quiet)
    bundle = Bundle(run_id=run_id, started=started, finished=now_iso(),
                    tool={"name": "mamoru", "version": agent.version()}, operator=operator(),
                    partial=fleet.interrupted, collectors={c.id: c.version for c in wanted},
                    targets=[BundleTarget(facts=tf, policy=dict(fleet.policies.get(tf.id, {}))) for tf in fleet.facts])
    write_bundle(output, bundle)
    failed = [tf for tf in fleet.facts if tf.status == "error"]
    note(f"facts of {len(fleet.facts)} target(s) written to {output}"
         + (f"; {len(failed)} could not be collected" if failed else ""))
    if fleet.interrupted:
        note("interrupted: the bundle holds the targets that finished and is marked partial")
    for tf in failed:
        from reports.safe_text import printable

        note(f"  {printable(tf.id)}: {tf.reason}: {printable(tf.error or '')}")
    return 3 if failed else 0
