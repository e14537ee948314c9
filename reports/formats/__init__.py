"""Output formats: one module per format, found by name and imported only when used.

A format is a ``Format``: a name, a file suffix, a media type and ``render(report, ctx) -> bytes``. Adding
one touches its own module and one line in ``FORMATS``. Renderers are pure functions of the report model and
the context; none reads the system or the network (an HTML report fetches nothing either).
Everything host-supplied in a report (hostnames, SSIDs, file contents, user names, evidence) is hostile text:
each format escapes it for its own syntax (HTML autoescape, CSV cells, XML, terminal control characters).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from reports.model import Report
    from reports.signature_status import SignatureInfo

#: name -> "module:attribute" of its Format. Order is the order ``--format`` lists them in.
FORMATS: dict[str, str] = {
    "json": "reports.formats.json_format:FORMAT",
    "terminal": "reports.formats.terminal_format:FORMAT",
    "html": "reports.formats.html:FORMAT",
    "ocsf": "reports.formats.ocsf:FORMAT",
    "csv": "reports.formats.csv_format:FORMAT",
    "junit": "reports.formats.junit:FORMAT",
    "markdown": "reports.formats.markdown:FORMAT",
}


@dataclasses.dataclass(frozen=True, kw_only=True)
class RenderContext:
    lang: str  # "ja" | "en"
    verbose: bool = False  # evidence too, where a format shows it only on request (terminal)
    width: int | None = None  # terminal columns; None: the terminal's own, or 100 in a file
    signature: SignatureInfo | None = None  # as checked by ``mamoru report`` now; None: not checked
    source: str | None = None  # the report file's name, for a cover page


class Format(Protocol):
    name: str
    suffix: str  # ".html", with the dot
    media_type: str

    def render(self, report: Report, ctx: RenderContext) -> bytes: ...


class UnknownFormat(ValueError):
    pass


def names() -> list[str]:
    return list(FORMATS)


def get(name: str) -> Format:
    ref = FORMATS.get(name)
    if ref is None:
        raise UnknownFormat(f"unknown format {name!r}: one of {', '.join(FORMATS)}")
    module, _, attr = ref.partition(":")
    fmt: Format = getattr(importlib.import_module(module), attr)
    return fmt
