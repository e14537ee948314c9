"""The terminal summary as plain text (no colour codes): what ``scan`` shows, for a file or a pipe."""

from __future__ import annotations

import io

from reports.formats import RenderContext
from reports.model import Report


class TerminalFormat:
    name = "terminal"
    suffix = ".txt"
    media_type = "text/plain; charset=utf-8"

    def render(self, report: Report, ctx: RenderContext) -> bytes:
        from reports.terminal import render_terminal

        out = io.StringIO()
        render_terminal(report, lang=ctx.lang, file=out, width=ctx.width or 100, verbose=ctx.verbose)
        return out.getvalue().encode("utf-8")


FORMAT = TerminalFormat()
