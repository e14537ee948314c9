"""``mamoru scan``: collect, judge, write the report, show the summary."""

from __future__ import annotations

from typing import Any

import click

from agent.cli.common import lang_option
from agent.cli.delivery import verbose_option
from agent.cli.organisation_opts import organisation_options, plan_organisation
from agent.cli.remote_options import plan_targets, remote_options


@click.command("scan")
@click.option("--target", "targets", multiple=True, default=(),
              help="local (the default without --inventory), rootfs:DIR, ssh://user@host:port, bundle:FILE "
                   "(repeatable).")
@click.option("--network", "networks", multiple=True, metavar="CIDR",
              help="Sweep this office network (must lie in the policy's network.scope); same as "
                   "--target network:CIDR (repeatable).")
@click.option("--wifi", "wifi", is_flag=True,
              help="Survey the Wi-Fi networks this machine's radios see; same as --target wifi:.")
@click.option("--wifi-capture", "wifi_captures", multiple=True, type=click.Path(dir_okay=False, exists=True),
              metavar="FILE", help="Analyse an 802.11 capture (pcap/pcapng, .gz); same as --target "
                                   "wifi-capture:FILE (repeatable).")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
              help="Policy YAML laid over the built-in default.")
@click.option("--waivers", "waivers_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Accepted risks (YAML): a failure a waiver in force covers stays FAIL in the report but does "
                   "not fail the run (see README, Waivers).")
@click.option("--output", "output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the full JSON report here (atomically).")
@click.option("--check", "check_ids", multiple=True, help="Run only this check ID (repeatable).")
@click.option("--guideline", "guideline", multiple=True, help="Run only checks for this guideline item (repeatable).")
@click.option("--workers", type=click.IntRange(1, 256), default=8, show_default=True,
              help="At most this many targets at once (and at most 4 per CPU: see README, Remote audits).")
@click.option("--scope", default="",
              help="Name of the report series (hash chain) in the output directory; default: that directory.")
@click.option("--sign-key", "sign_key", type=click.Path(dir_okay=False), default=None,
              help="Ed25519 OpenSSH private key: also write OUTPUT.sig, checkable with ssh-keygen -Y verify.")
@click.option("--quiet", is_flag=True, help="No terminal summary.")
@verbose_option
@click.option("--active-tests", "active_tests", is_flag=True,
              help="Also run active tests that act on the target (AV-05 feeds the EICAR test string to the "
                   "anti-malware engine). Off by default: a scan only reads.")
@remote_options
@organisation_options
@lang_option
def scan(targets: tuple[str, ...], policy_path: str | None, output: str | None, check_ids: tuple[str, ...],
         guideline: tuple[str, ...], workers: int, scope: str, quiet: bool, lang: str,
         active_tests: bool = False, sign_key: str | None = None, networks: tuple[str, ...] = (),
         wifi: bool = False, wifi_captures: tuple[str, ...] = (), waivers_path: str | None = None,
         answers_path: str | None = None, no_organisation: bool = False, **remote: Any) -> int:
    """Audit targets against the policy and report the findings."""
    from agent.cli.pipeline import judge_and_deliver
    from agent.config.policy import load_policy
    from agent.config.waivers import load_waivers
    from agent.registry import collectors, select_checks
    from agent.runner import needed_collectors
    from agent.scope import check_specs

    targets = (*targets, *(f"network:{n}" for n in networks), *(("wifi:",) if wifi else ()),
               *(f"wifi-capture:{f}" for f in wifi_captures))
    items = plan_targets(targets, remote)  # every target checked (kind, URI, inventory) before any work
    policy = load_policy(policy_path)
    waivers = load_waivers(waivers_path) if waivers_path is not None else []  # a bad file is exit 2 before any work
    check_specs(targets, policy)  # a network outside network.scope is refused before any packet (exit 2)
    chosen = select_checks(ids=check_ids, guideline=guideline)
    organisation = plan_organisation(answers_path=answers_path, no_organisation=no_organisation,
                                     check_ids=check_ids, guideline=guideline, items=items)
    if output is not None:  # what could not be written at the end is refused now (exit 2), not after the scan
        from reports.atomic import check_writable_output

        check_writable_output(output)
    if sign_key is not None and output is None:
        raise click.UsageError("--sign-key needs --output: the signature is written beside the report file")
    key = None
    if sign_key is not None:  # a bad key fails before the scan
        from agent.cli.keygen_cmd import load_key_for_cli

        key = load_key_for_cli(sign_key)
    wanted = needed_collectors(chosen, collectors(n for c in chosen for n in c.needs), active=active_tests)
    return judge_and_deliver(items, checks=chosen, policy=policy, collectors=wanted, workers=workers, output=output,
                             scope=scope, key=key, quiet=quiet, lang=lang, waivers=waivers,
                             organisation=organisation)
