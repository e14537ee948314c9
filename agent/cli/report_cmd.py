"""``mamoru report REPORT.json --format F``: the same findings for another reader.

The JSON report is the record (hashed, chained, signed); every other format is rendered from it, so an HTML
page or an OCSF feed can always be made again from the signed file and compared. The signature is checked
here, now, and the result is what a format shows: a report never vouches for itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from agent.cli.common import lang_option


def _format_names() -> list[str]:
    from reports.formats import names

    return names()


@click.command("report")
@click.argument("report_path", metavar="REPORT.json", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(_format_names()), default="terminal", show_default=True,
              help="Output format.")
@click.option("--output", "output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write here (atomically); default: standard output.")
@click.option("--allowed-signers", "allowed_signers", type=click.Path(dir_okay=False), default=None,
              help="OpenSSH allowed_signers file: check REPORT.json.sig against the keys you trust, and say so "
                   "in the output. Without it, a valid signature is shown as made by an unestablished key.")
@click.option("--identity", default=None, help="With --allowed-signers: the signer principal to require.")
@click.option("--signature", "signature", type=click.Path(dir_okay=False), default=None,
              help="The signature file (default: REPORT.json.sig).")
@click.option("--verbose", is_flag=True, help="Terminal: show each finding's evidence and expected value.")
@lang_option
def report(report_path: str, fmt: str, output: str | None, allowed_signers: str | None, identity: str | None,
           signature: str | None, verbose: bool, lang: str) -> int:
    """Render a JSON report as terminal text, HTML, OCSF, CSV, JUnit or Markdown."""
    from reports import formats
    from reports.load import load_report
    from reports.signature_status import signature_info

    if identity is not None and allowed_signers is None:
        raise click.UsageError("--identity needs --allowed-signers")
    loaded = load_report(report_path)
    sig = signature_info(loaded.data, Path(signature) if signature else Path(report_path + ".sig"),
                         allowed_signers=allowed_signers, identity=identity)
    ctx = formats.RenderContext(lang=lang, verbose=verbose, signature=sig, source=Path(report_path).name)
    data = formats.get(fmt).render(loaded.report, ctx)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        from reports.atomic import write_atomic

        write_atomic(output, data)
    return 0
