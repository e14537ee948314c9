"""The answers file (``--answers FILE``): a person's answers to the organisation's questions.

Read through the hardened loader (``agent.config.yamlfile``: size cap, no aliases, no duplicate keys,
JSON data only) and ``answers.schema.json``; then what a schema cannot say, each with file and line (exit 2):
an item that is no question, the same item answered twice, a date that is no calendar day, an answer dated
after it lapses or in the future. An entry whose ``answer`` is left empty is unanswered (the fresh
questionnaire loads as it is); an answered one needs who, when and until when, and a ``yes`` its evidence.

``answer: yes`` written without quotes is YAML 1.1's true (and ``no`` its false): both mean what they say.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import yaml

from agent.config.yamlfile import line_of, load_config_yaml, load_schema, validate
from agent.errors import ConfigError
from checks.organisation import Answer, AnswerValue, questions, tokyo_today

#: YAML 1.1 reads an unquoted yes/no as true/false; the answer is the word the person wrote.
_WORDS: dict[Any, AnswerValue] = {True: "yes", False: "no", "yes": "yes", "no": "no", "partly": "partly"}


#: Characters a name or an evidence reference never needs, which would act on a terminal (escape sequences).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: A URL that carries a password (``https://user:secret@host/``): the report is handed over, the password
#: would go with it.
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/@\s]*:[^/@\s]*@")


def answers_schema() -> dict[str, Any]:
    return load_schema("agent.config", "answers.schema.json")


def load_answers(path: str | Path, *, today: dt.date | None = None) -> dict[str, Answer]:
    """Question id -> its answer, for the entries that carry one; a ConfigError (exit 2) names file and line."""
    source = str(path)
    value, node = load_config_yaml(path, what="answers file")
    if value is None:
        raise ConfigError(f"{source}: empty answers file (write one with: mamoru answers template)")
    validate(value, node, answers_schema(), source)
    day = today if today is not None else tokyo_today()
    known = questions()
    out: dict[str, Answer] = {}
    lines: dict[str, int] = {}
    for i, entry in enumerate(value["answers"]):
        line = line_of(node, ["answers", i, "item"]) or 0
        item = entry["item"]
        if item not in known:
            raise ConfigError(f"{source}:{line}: answers.{i}.item: {item} is not a question "
                              f"(the questions are {min(known)} to {max(known)}: mamoru answers template)")
        if item in lines:
            raise ConfigError(f"{source}:{line}: answers.{i}.item: {item} is answered twice "
                              f"(first at line {lines[item]})")
        lines[item] = line
        _plain_text(entry, source, node, i)
        if entry.get("answer") is None:
            continue  # left blank: the question stays open
        at = _date(entry["answered_at"], source, node, i, "answered_at")
        until = _date(entry["valid_until"], source, node, i, "valid_until")
        if until < at:
            raise ConfigError(f"{source}:{line_of(node, ['answers', i, 'valid_until'])}: answers.{i}.valid_until: "
                              "ends before answered_at")
        if at > day:
            raise ConfigError(f"{source}:{line_of(node, ['answers', i, 'answered_at'])}: answers.{i}.answered_at: "
                              f"is later than today ({day.isoformat()}, Japan time)")
        out[item] = Answer(item=item, answer=_WORDS[entry["answer"]], evidence=(entry.get("evidence") or "").strip(),
                           by=entry["answered_by"].strip(), at=at, until=until, source=f"{source}:{line}")
    return out


def _date(text: str, source: str, node: yaml.Node | None, i: int, key: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        line = line_of(node, ["answers", i, key])
        raise ConfigError(f"{source}:{line}: answers.{i}.{key}: not a calendar date (YYYY-MM-DD)") from None


def _plain_text(entry: dict[str, Any], source: str, node: yaml.Node | None, i: int) -> None:
    """Names and evidence references go into a signed report that is handed over: plain text only, and no
    password inside a URL. The value is never quoted back (it may be the secret)."""
    for key in ("evidence", "answered_by"):
        value = entry.get(key)
        if not isinstance(value, str):
            continue
        where = f"{source}:{line_of(node, ['answers', i, key])}: answers.{i}.{key}"
        if _CONTROL.search(value):
            raise ConfigError(f"{where}: holds control characters; write plain text")
        if _URL_PASSWORD.search(value):
            raise ConfigError(f"{where}: a URL with a password in it; the report is handed over, so leave the "
                              "password out")
