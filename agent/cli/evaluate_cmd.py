"""``mamoru evaluate BUNDLE``: judge saved facts with a policy, as if the scan happened now.

The report is the one a direct ``scan`` with that policy would have produced
(same findings, statuses and evidence); only run id and times differ. Facts
collected by another version of a collector become errors, never guesses.
"""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.common import lang_option
from agent.cli.delivery import deliver


@click.command("evaluate")
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(dir_okay=False))
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
              help="Policy YAML laid over the built-in default.")
@click.option("--output", "output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the full JSON report here (atomically).")
@click.option("--check", "check_ids", multiple=True, help="Judge only this check ID (repeatable).")
@click.option("--guideline", "guideline", multiple=True, help="Judge only checks for this guideline item (repeatable).")
@click.option("--scope", default="",
              help="Name of the report series (hash chain) in the output directory; default: that directory.")
@click.option("--sign-key", "sign_key", type=click.Path(dir_okay=False), default=None,
              help="Ed25519 OpenSSH private key: also write OUTPUT.sig, checkable with ssh-keygen -Y verify.")
@click.option("--quiet", is_flag=True, help="No terminal summary.")
@lang_option
def evaluate(bundle_path: str, policy_path: str | None, output: str | None, check_ids: tuple[str, ...],
             guideline: tuple[str, ...], scope: str, sign_key: str | None, quiet: bool, lang: str) -> int:
    """Judge an evidence bundle (from mamoru collect) against a policy and report the findings."""
    from agent.cli.keygen_cmd import load_key_for_cli
    from agent.cli.scan import exit_code_for
    from agent.config.policy import load_policy
    from agent.registry import collectors, select_checks
    from agent.runner import build_report, new_run_id, now_iso
    from reports.bundle import check_versions, load_bundle

    bundle = load_bundle(bundle_path)
    policy = load_policy(policy_path)
    chosen = select_checks(ids=check_ids, guideline=guideline)
    if output is not None:  # what could not be written at the end is refused now (exit 2)
        from reports.atomic import check_writable_output

        check_writable_output(output)
    if sign_key is not None and output is None:
        raise click.UsageError("--sign-key needs --output: the signature is written beside the report file")
    key = load_key_for_cli(sign_key) if sign_key is not None else None
    check_versions(bundle, {c.id: c.version for c in collectors().values()})
    overrides = {t.facts.id: t.policy for t in bundle.targets}
    report = build_report(run_id=new_run_id(), started=now_iso(), target_facts=[t.facts for t in bundle.targets],
                          checks=chosen, policy=policy, partial=bundle.partial,
                          scope=scope or (str(Path(output).resolve().parent) if output else ""),
                          policy_for=lambda tf: policy.overlay(overrides.get(tf.id, {})))
    deliver(report, output=output, key=key, quiet=quiet, lang=lang)
    return exit_code_for(report.has_failures, any(t.status == "error" for t in report.targets))
