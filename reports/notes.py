"""The lines a person running mamoru reads on stderr — closing lines, warnings, errors — in ja and en.

Findings carry both languages in the report; these lines are said once, to the operator, in the language
of ``--lang``. They live in ``reports/notes.yaml`` (reviewable and translatable without reading code), and
code hands around ``Note`` values (a key and its parameters) rather than finished English sentences, so the
choice of language is made where the line is printed. Every parameter is shown through ``printable``: file
names, run ids and host error texts come from places an attacker may write to.
"""

from __future__ import annotations

import dataclasses
import functools
import string
from collections.abc import Mapping
from importlib import resources
from typing import Any

from reports.safe_text import printable


@functools.cache
def _table() -> Mapping[str, Mapping[str, str]]:
    from agent.config.yamlfile import safe_load

    data = safe_load(resources.files("reports").joinpath("notes.yaml").read_bytes())
    assert isinstance(data, dict)
    return data


class _Keep(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


class Escaped(str):
    """Text already made safe line by line (``printable_lines``): shown as it is, its newlines kept."""


class Status(str):
    """A finding status (``fail``, ``error``, …): shown in the note's language with the terminal's status words
    (``reports/terminal.yaml``), so a Japanese line never says ``error``."""


def _show(value: Any, lang: str) -> str:
    if isinstance(value, Escaped):
        return str(value)
    if isinstance(value, Note):
        return value.render(lang)
    if isinstance(value, Status):
        from reports.terminal import labels

        return printable(str(labels("ja" if lang == "ja" else "en")["status"].get(str(value), str(value))))
    if isinstance(value, list | tuple):
        return ", ".join(_show(v, lang) for v in value) if value else _table()["none"][lang]
    return printable(str(value))


@dataclasses.dataclass(frozen=True)
class Note:
    """One line for the operator: ``key`` in ``reports/notes.yaml`` and the values it names."""

    key: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def render(self, lang: str) -> str:
        texts = _table().get(self.key)
        if texts is None:  # a programming error, but the operator must still learn what happened
            return f"{self.key}: " + ", ".join(f"{k}={_show(v, lang)}" for k, v in self.params.items())
        template = texts["ja" if lang == "ja" else "en"]
        values = _Keep({k: _show(v, lang) for k, v in self.params.items()})
        return string.Formatter().vformat(template, (), values)

    def __str__(self) -> str:
        return self.render("en")


def note(key: str, /, **params: Any) -> Note:
    return Note(key, params)


def render(lines: list[Note], lang: str) -> list[str]:
    return [n.render(lang) for n in lines]
