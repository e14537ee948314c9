"""Options and helpers shared by subcommands."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from reports.notes import Note

LANG_ENV = "MAMORU_LANG"


def default_lang() -> str:
    """--lang default: $MAMORU_LANG, else ja when the user's locale is Japanese, else en."""
    explicit = os.environ.get(LANG_ENV)
    if explicit in ("ja", "en"):
        return explicit
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if value:
            return "ja" if value.startswith("ja") else "en"
    return "en"


lang_option = click.option(
    "--lang",
    type=click.Choice(["ja", "en"]),
    default=default_lang,
    show_default="from $MAMORU_LANG or the locale",
    help="Language of the terminal summary (the report always holds both).",
)


def note(message: str) -> None:
    """A one-line remark for the user on stderr (stdout stays machine-readable)."""
    click.echo(message, err=True)


def say(line: Note, lang: str) -> None:
    """``note``, in the operator's language (``reports/notes.yaml``)."""
    click.echo(line.render(lang), err=True)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def start_work() -> None:
    """Everything is loaded: freeze what exists (it lives until exit; the collector need never walk it again)
    and let the cyclic garbage collector run for the work itself, which on a fleet lasts minutes."""
    import gc

    if not gc.isenabled():
        gc.freeze()
        gc.enable()
