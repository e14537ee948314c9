"""``mamoru evaluate BUNDLE...``: judge saved facts with a policy, as if the scan happened now.

The report is the one a direct ``scan`` with that policy would have produced
(same findings, statuses and evidence); only run id and times differ. Facts
collected by another version of a collector become errors, never guesses.
Several bundles (one per PC collected on site) make one report; two targets
with the same id in them are refused (exit 2), never merged or renamed.
It is ``scan`` with bundles only: the same pipeline (``agent.cli.pipeline``).
"""

from __future__ import annotations

import click

from agent.cli.common import lang_option
from agent.cli.delivery import verbose_option
from agent.cli.organisation_opts import organisation_options, plan_organisation


@click.command("evaluate")
@click.argument("bundle_paths", metavar="BUNDLE...", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
              help="Policy YAML laid over the built-in default.")
@click.option("--waivers", "waivers_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Accepted risks (YAML): a failure a waiver in force covers stays FAIL in the report but does "
                   "not fail the run (see README, Waivers).")
@click.option("--output", "output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the full JSON report here (atomically).")
@click.option("--check", "check_ids", multiple=True, help="Judge only this check ID (repeatable).")
@click.option("--guideline", "guideline", multiple=True, help="Judge only checks for this guideline item (repeatable).")
@click.option("--scope", default="",
              help="Name of the report series (hash chain) in the output directory; default: that directory.")
@click.option("--sign-key", "sign_key", type=click.Path(dir_okay=False), default=None,
              help="Ed25519 OpenSSH private key: also write OUTPUT.sig, checkable with ssh-keygen -Y verify.")
@click.option("--quiet", is_flag=True, help="No terminal summary.")
@verbose_option
@organisation_options
@lang_option
def evaluate(bundle_paths: tuple[str, ...], policy_path: str | None, output: str | None, check_ids: tuple[str, ...],
             guideline: tuple[str, ...], scope: str, sign_key: str | None, quiet: bool, lang: str,
             waivers_path: str | None = None, answers_path: str | None = None, no_organisation: bool = False) -> int:
    """Judge evidence bundles (from mamoru collect) against a policy and report the findings in one report."""
    from agent.cli.keygen_cmd import load_key_for_cli
    from agent.cli.pipeline import judge_and_deliver
    from agent.config.policy import load_policy
    from agent.config.waivers import load_waivers
    from agent.fleet import check_unique, saved_targets
    from agent.registry import select_checks

    items = [saved for path in bundle_paths for saved in saved_targets(path)]
    check_unique(items)
    policy = load_policy(policy_path)
    waivers = load_waivers(waivers_path) if waivers_path is not None else []  # a bad file is exit 2 before any work
    chosen = select_checks(ids=check_ids, guideline=guideline)
    organisation = plan_organisation(answers_path=answers_path, no_organisation=no_organisation,
                                     check_ids=check_ids, guideline=guideline, items=items)
    if output is not None:  # what could not be written at the end is refused now (exit 2)
        from reports.atomic import check_writable_output

        check_writable_output(output)
    if sign_key is not None and output is None:
        raise click.UsageError("--sign-key needs --output: the signature is written beside the report file")
    key = load_key_for_cli(sign_key) if sign_key is not None else None
    return judge_and_deliver(items, checks=chosen, policy=policy, collectors=[], workers=1, output=output,
                             scope=scope, key=key, quiet=quiet, lang=lang, waivers=waivers,
                             organisation=organisation)
