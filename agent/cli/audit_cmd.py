"""``mamoru audit``: the on-site audit in one command (issue 13, item 4).

An engagement at an office covers its hosts (the inventory, over SSH), its LAN (``--network``), the air
(``--wifi``, ``--wifi-capture``), the PCs without SSH (bundles made with ``mamoru collect`` on them) and the
organisation (the questions a person answers, ``--answers``), in one signed report whose summary covers every
guideline item. That is ``scan`` with mixed items — live jobs and saved bundles — so ``audit`` is a front to
it, not a second pipeline: it passes its options on to ``scan`` and adds only its opinions:

- ``--output`` is required: an engagement needs its record (``--sign-key`` signs it);
- the organisation target is always in (no ``--no-organisation``); without ``--answers`` its questions are
  ``manual``, so the report still lists what a person has yet to answer;
- every check runs (no ``--check``/``--guideline``: a narrowed audit would not cover Art. 9), and this
  machine is not audited unless named (an auditor's laptop is not the office's);
- a network outside ``network.scope`` is refused before any packet (exit 2), as in ``scan``;
- at the end, a table of the report's ``summary.coverage``: per item covered / partly / uncovered / absent.
"""

from __future__ import annotations

from typing import Any

import click

from agent.cli.common import lang_option
from agent.cli.delivery import verbose_option
from agent.cli.remote_options import remote_options


@click.command("audit")
@click.option("--network", "networks", multiple=True, metavar="CIDR",
              help="Sweep this office network (must lie in the policy's network.scope; repeatable).")
@click.option("--wifi", "wifi", is_flag=True, help="Survey the Wi-Fi networks this machine's radios see.")
@click.option("--wifi-capture", "wifi_captures", multiple=True, type=click.Path(dir_okay=False, exists=True),
              metavar="FILE", help="An 802.11 capture (pcap/pcapng, .gz) made on site (repeatable).")
@click.option("--bundle", "bundles", multiple=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="Facts collected with mamoru collect on a PC without SSH (repeatable).")
@click.option("--answers", "answers_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Answers to the organisation's questions (YAML; write one with: mamoru answers template). "
                   "Without it the questions are manual.")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False), default=None,
              help="Policy YAML laid over the built-in default (network.scope, the device ledger, wifi.ssids).")
@click.option("--waivers", "waivers_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Accepted risks (YAML; see README, Waivers).")
@click.option("--output", "output", type=click.Path(dir_okay=False, writable=True), required=True,
              help="Write the engagement's JSON report here (atomically). Required: an audit needs its record.")
@click.option("--sign-key", "sign_key", type=click.Path(dir_okay=False), default=None,
              help="Ed25519 OpenSSH private key: also write OUTPUT.sig, checkable with ssh-keygen -Y verify.")
@click.option("--scope", default="",
              help="Name of the report series (hash chain) in the output directory; default: that directory.")
@click.option("--workers", type=click.IntRange(1, 256), default=8, show_default=True,
              help="At most this many targets at once.")
@click.option("--quiet", is_flag=True, help="No terminal summary and no coverage table.")
@verbose_option
@remote_options
@lang_option
@click.pass_context
def audit(ctx: click.Context, /, networks: tuple[str, ...], wifi: bool, wifi_captures: tuple[str, ...],
          bundles: tuple[str, ...], answers_path: str | None, policy_path: str | None, waivers_path: str | None,
          output: str, sign_key: str | None, scope: str, workers: int, quiet: bool, lang: str,
          **remote: Any) -> int:
    """Audit an office in one run: its hosts, LAN, Wi-Fi, collected PCs and organisation, into one report."""
    from agent.cli.scan import scan

    if not (remote.get("inventory") or networks or wifi or wifi_captures or bundles):
        raise click.UsageError("nothing to audit: name the office's --inventory, --network, --wifi, "
                               "--wifi-capture or --bundle (an audit never scans this machine by itself)")
    code: int = ctx.invoke(scan, targets=tuple(f"bundle:{b}" for b in bundles), networks=networks, wifi=wifi,
                           wifi_captures=wifi_captures, policy_path=policy_path, waivers_path=waivers_path,
                           output=output, check_ids=(), guideline=(), workers=workers, scope=scope,
                           sign_key=sign_key, quiet=quiet, lang=lang, active_tests=False,
                           answers_path=answers_path, no_organisation=False, **remote)
    if not quiet:
        show_coverage(output, lang)
    return code


def show_coverage(output: str, lang: str) -> None:
    """The coverage of the report as written (read back: the table shows what the record says)."""
    import sys

    from reports.coverage_view import render_coverage
    from reports.load import load_report

    render_coverage(load_report(output).report.summary()["coverage"], lang=lang, file=sys.stdout)
