"""The one error family the CLI catches.

Modelled on sigstore-python: every error a user can meet carries a plain
``diagnostics()`` text and its own exit code, so that "your policy file is
wrong" (2) and "the scan could not run" (3) never look the same to a script.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reports.notes import Note


class MamoruError(Exception):
    """Base of every error mamoru reports to a user.

    ``note`` (optional) is the same message as a key of ``reports/notes.yaml`` with its values, so that it
    can be said in the operator's language; ``str()`` stays the English text, for logs and tests.
    """

    exit_code = 3
    hint = ""

    def __init__(self, message: str = "", *, note: Note | None = None) -> None:
        super().__init__(message or (note.render("en") if note is not None else ""))
        self.note = note

    def diagnostics(self, lang: str = "en") -> str:
        """The message, its cause and a hint, every line escaped (an error may quote a file's content)."""
        from reports.notes import note
        from reports.safe_text import printable_lines

        text = self.note.render(lang) if self.note is not None else str(self)
        lines = [text]
        cause = self.__cause__
        if cause is not None and str(cause) and str(cause) not in str(self):
            lines.append(note("cause", detail=f"{type(cause).__name__}: {cause}").render(lang))
        if self.hint:
            lines.append(note("hint", detail=self.hint).render(lang))
        return printable_lines("\n".join(lines))


class ConfigError(MamoruError):
    """A policy, inventory or command-line value is wrong. Exit 2."""

    exit_code = 2


class ScanError(MamoruError):
    """The scan could not run at all. Exit 3."""

    exit_code = 3
