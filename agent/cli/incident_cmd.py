"""``mamoru incident draft``: the safeguards part of a breach report (Act Art. 26), drafted from a signed report.

The report is read strictly (``reports.load``) and its signature checked now, against the allowed_signers
file if one is given: the draft never repeats what a report says about itself (``reports.incident``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group("incident")
def incident_group() -> None:
    """Help after a personal-data leak (漏えい等)."""


@incident_group.command("draft")
@click.option("--report", "report_path", required=True, type=click.Path(dir_okay=False),
              help="The last signed report (JSON) from before the event.")
@click.option("--allowed-signers", "allowed_signers", type=click.Path(dir_okay=False), default=None,
              help="OpenSSH allowed_signers file: check REPORT.json.sig against the keys you trust. Without it, "
                   "a valid signature is shown as made by a key not established as trusted.")
@click.option("--signature", "signature", type=click.Path(dir_okay=False), default=None,
              help="The signature file (default: the report's path + .sig).")
@click.option("--lang", type=click.Choice(["ja", "en"]), default="ja", show_default=True,
              help="Language of the draft (a report to the PPC is written in Japanese).")
@click.option("--output", "output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the Markdown draft here (atomically); default: standard output.")
def draft(report_path: str, allowed_signers: str | None, signature: str | None, lang: str,
          output: str | None) -> int:
    """Draft the safeguards part of a breach report to the PPC, as Markdown."""
    from reports.incident import render_draft
    from reports.load import load_report
    from reports.signature_status import signature_info

    loaded = load_report(report_path)
    sig = signature_info(loaded.data, Path(signature) if signature else Path(report_path + ".sig"),
                         allowed_signers=allowed_signers)
    data = render_draft(loaded.report, loaded.data, sig, lang=lang,
                        source=Path(report_path).name).encode("utf-8", "backslashreplace")
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        from reports.atomic import write_atomic

        write_atomic(output, data)
    _tell(lang, sig.status, output)
    return 0


def _tell(lang: str, status: str, output: str | None) -> None:
    """On stderr, in the draft's language: where it went, and that the report is not verified when it is not."""
    from agent.cli.common import note
    from reports.incident import texts
    from reports.safe_text import printable

    words = texts(lang)["stderr"]
    if output is not None:
        note(str(words["written"]).format(path=printable(output)))
    if status != "verified":
        note(str(words[status]))
