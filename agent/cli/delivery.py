"""Hand a finished report to the user: written (and signed) first, then shown, for scan and evaluate alike."""

from __future__ import annotations

import sys
from typing import Any

import click

from agent.cli.common import say
from reports.model import Report

_VERBOSE = "mamoru.verbose"


def _remember_verbose(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    ctx.meta[_VERBOSE] = value


#: ``--verbose`` of scan and evaluate. Kept in the click context and read where the summary is shown, so the
#: commands and the pipeline between them need no new parameter.
verbose_option = click.option("--verbose", is_flag=True, expose_value=False, callback=_remember_verbose,
                              help="Also show each finding's evidence and expected value.")


def deliver(report: Report, *, output: str | None, key: Any, quiet: bool, lang: str) -> None:
    """Write the report atomically (signed when a key is given) before anything is printed, so a broken
    terminal never costs the evidence.

    A report that could be written but not linked to its predecessor is kept, shown and explained; only
    then does the run end with ``ReportNotLinked`` (exit 3), so a script sees that the series needs a look.
    """
    from reports.notes import note
    from reports.signing.publish import ReportNotLinked, publish, publish_notes

    published = publish(report, output, key) if output is not None else None
    if not quiet:
        from reports.terminal import render_terminal

        ctx = click.get_current_context(silent=True)
        render_terminal(report, lang=lang, file=sys.stdout, verbose=bool(ctx and ctx.meta.get(_VERBOSE)))
    if published is not None:
        say(note("report_written", path=str(output)), lang)
        for line in publish_notes(published, key):
            say(line, lang)
        if published.link_error:
            raise ReportNotLinked(note=note("report_not_linked", path=str(output)))
