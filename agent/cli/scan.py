"""``mamoru scan``: collect, judge, write the report, show the summary."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from agent.cli.common import lang_option, note


def exit_code_for(report_has_failures: bool, any_target_failed: bool) -> int:
    """0 clean · 1 a finding failed · 3 nothing failed but a target could not be scanned."""
    if report_has_failures:
        return 1
    if any_target_failed:
        return 3
    return 0


@click.command("scan")
@click.option("--target", "targets", multiple=True, default=("local",), show_default=True,
              help="local, rootfs:DIR (repeatable).")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
              help="Policy YAML laid over the built-in default.")
@click.option("--output", "output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the full JSON report here (atomically).")
@click.option("--check", "check_ids", multiple=True, help="Run only this check ID (repeatable).")
@click.option("--guideline", "guideline", multiple=True, help="Run only checks for this guideline item (repeatable).")
@click.option("--workers", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Targets scanned at once.")
@click.option("--scope", default="", help="Name of the series this report belongs to (hash chain).")
@click.option("--quiet", is_flag=True, help="No terminal summary.")
@lang_option
def scan(targets: tuple[str, ...], policy_path: str | None, output: str | None, check_ids: tuple[str, ...],
         guideline: tuple[str, ...], workers: int, scope: str, quiet: bool, lang: str) -> int:
    """Audit targets against the policy and report the findings."""
    from agent.config.policy import load_policy
    from agent.registry import collectors, select_checks
    from agent.runner import build_report, collect_all, needed_collectors, new_run_id, now_iso
    from agent.targets import check_spec
    from reports.atomic import write_atomic
    from reports.json_report import render_json

    for spec in targets:
        check_spec(spec)  # reject an unknown kind before any work
    policy = load_policy(policy_path)
    chosen = select_checks(ids=check_ids, guideline=guideline)
    if output is not None and Path(output).is_dir():
        raise click.UsageError(f"--output {output} is a directory")
    run_id, started = new_run_id(), now_iso()
    facts = collect_all(list(targets), needed_collectors(chosen, collectors()), workers=workers)
    report = build_report(run_id=run_id, started=started, target_facts=facts, checks=chosen, policy=policy,
                          scope=scope or (str(Path(output).resolve().parent) if output else ""))
    data = render_json(report)
    if output is not None:
        write_atomic(output, data)
    if not quiet:
        from reports.terminal import render_terminal

        render_terminal(report, lang=lang, file=sys.stdout)
    if output is not None:
        note(f"report written to {output}")
    any_target_failed = any(t.status == "error" for t in report.targets)
    return exit_code_for(report.has_failures, any_target_failed)
