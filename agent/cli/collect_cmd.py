"""``mamoru collect``: gather the raw facts of every target into one evidence bundle, judge nothing.

For the consultant on site: collect now, ``mamoru evaluate`` later with the
client's policy, as often as needed, without going back to the machines.

A bundle is made to travel and to be judged together with others (``mamoru
evaluate a.json b.json``), so its targets carry ids that tell machines apart:
``local`` is saved under this host's name, and ``--name`` sets the id of the
one target being collected.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from agent.cli.common import lang_option, say
from agent.cli.remote_options import plan_targets, remote_options, run_fleet

if TYPE_CHECKING:
    from agent.fleet import Job, Saved

#: As an inventory target's ``name`` (agent/config/inventory.schema.json).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}")


def bundle_ids(items: Sequence[Job | Saved], name: str | None) -> list[Job | Saved]:
    """The planned targets with the ids their bundle entries get: ``--name`` for the single target, else
    ``local`` under this host's name (every PC's local collection would otherwise be ``local``, and their
    bundles could not be evaluated together)."""
    import dataclasses

    from agent.fleet import Job, check_unique

    if name is not None:
        if not _NAME.fullmatch(name):
            raise click.UsageError(f"--name {name!r}: use letters, digits and . _ @ : - (at most 128)")
        if len(items) != 1 or not isinstance(items[0], Job):
            raise click.UsageError("--name names the one target being collected: give exactly one --target "
                                   "(not a bundle:FILE, whose targets keep their ids), or name targets in an "
                                   "inventory")
        return [dataclasses.replace(items[0], id=name)]
    host = socket.gethostname() or "local"
    named = [dataclasses.replace(it, id=host) if isinstance(it, Job) and it.spec == "local" and it.id is None
             else it for it in items]
    check_unique(named)
    return named


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
@click.option("--name", "name", default=None, metavar="NAME",
              help="The id of the one target being collected (default: this host's name for local, else the "
                   "target as given): what tells the machines apart when bundles are evaluated together.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@remote_options
@lang_option
def collect(targets: tuple[str, ...], output: str, policy_path: str | None, check_ids: tuple[str, ...],
            guideline: tuple[str, ...], workers: int, active_tests: bool, quiet: bool, name: str | None = None,
            lang: str = "en", **remote: Any) -> int:
    """Gather facts from targets into an evidence bundle (judge them later with mamoru evaluate)."""
    import agent
    from agent.config.policy import load_policy
    from agent.registry import collectors, select_checks
    from agent.runner import needed_collectors, new_run_id, now_iso, operator, unjudgeable
    from reports.bundle import Bundle, BundleTarget, write_bundle

    items = bundle_ids(plan_targets(targets, remote), name)
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
                    partial=fleet.partial, collectors={c.id: c.version for c in wanted},
                    targets=[BundleTarget(facts=tf, policy=dict(fleet.policies.get(tf.id, {}))) for tf in fleet.facts])
    write_bundle(output, bundle)
    failed = [tf for tf in fleet.facts if tf.status == "error"]
    # Reached, but nothing this run could judge there (a Windows image, an empty directory): the bundle keeps it
    # as it is (evaluate says why), and collecting it told nothing, so it counts as not collected.
    blind = [(tf, problem) for tf in fleet.facts if (problem := unjudgeable(tf, chosen)) is not None]
    from checks.base import explain
    from reports.notes import note

    say(note("bundle_written", count=len(fleet.facts), path=output), lang)
    if failed or blind:
        say(note("bundle_some_failed", count=len(failed) + len(blind)), lang)
    if fleet.interrupted:
        say(note("interrupted_bundle"), lang)
    for tf in failed:
        say(note("target_failed", target=tf.id, reason=tf.reason, error=explain(tf.error or "").get(lang)), lang)
    for tf, (reason, text) in blind:
        say(note("target_failed", target=tf.id, reason=reason, error=text.get(lang)), lang)
    return 3 if failed or blind else 0
