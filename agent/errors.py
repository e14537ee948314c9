"""The one error family the CLI catches.

Modelled on sigstore-python: every error a user can meet carries a plain
``diagnostics()`` text and its own exit code, so that "your policy file is
wrong" (2) and "the scan could not run" (3) never look the same to a script.
"""

from __future__ import annotations


class MamoruError(Exception):
    """Base of every error mamoru reports to a user."""

    exit_code = 3
    hint = ""

    def diagnostics(self) -> str:
        text = str(self)
        cause = self.__cause__
        if cause is not None and str(cause) and str(cause) not in text:
            text += f"\n  cause: {type(cause).__name__}: {cause}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class ConfigError(MamoruError):
    """A policy, inventory or command-line value is wrong. Exit 2."""

    exit_code = 2


class ScanError(MamoruError):
    """The scan could not run at all. Exit 3."""

    exit_code = 3
