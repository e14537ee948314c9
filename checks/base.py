"""The check model: metadata from data files, a pure judge function, and fail-closed evaluation.

A check is ``judge(facts, policy) -> Verdict``. Its identity, guideline items,
severity and every user-facing sentence (ja and en) live in
``checks/meta/<ID>.yaml`` so that texts can be reviewed and translated without
reading code. ``Check.evaluate`` wraps the judge so that missing facts or a
bug in a judge become an ``error`` finding, never a crash and never a pass.

A judge never builds a sentence itself: what varies inside a message (a
reason, a list of problems) is a ``Phrase``, a key with its parts, worded per
language when the message is made. Collectors record codes, not sentences
(``_facts.yaml`` words them); errors raised as English text by targets and
collectors are matched and re-worded by ``explain`` (``_errors.yaml``).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
import string
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any, NewType

import yaml

from agent.config.policy import Policy
from agent.config.yamlfile import safe_load

CheckID = NewType("CheckID", str)


class Status(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    NOT_APPLICABLE = "not_applicable"
    MANUAL = "manual"


class Severity(enum.StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


LANGS = ("ja", "en")


@dataclasses.dataclass(frozen=True)
class Text:
    """One sentence in both languages."""

    ja: str
    en: str

    def get(self, lang: str) -> str:
        return self.ja if lang == "ja" else self.en

    def format(self, params: Mapping[str, Any], lookup: Lookup | None = None) -> Text:
        """Fill ``{name}`` fields per language: a ``Text`` or ``Phrase`` value shows in that language."""
        return Text(ja=_safe_format(self.ja, params, "ja", lookup), en=_safe_format(self.en, params, "en", lookup))

    def as_dict(self) -> dict[str, str]:
        return {"ja": self.ja, "en": self.en}


@dataclasses.dataclass(frozen=True)
class Phrase:
    """A sentence named by key, filled with its own params and worded per language only when shown.

    Judges put these in verdict params (and ``error`` reasons) instead of English strings: the key names a
    text in the check's ``messages``, in ``_common.yaml`` or in ``_facts.yaml`` (the wording of collector codes).
    """

    key: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def phrase(key: str, **params: Any) -> Phrase:
    return Phrase(key, params)


#: Finds the text of a ``Phrase`` key (the check's own messages first).
Lookup = Callable[[str], "Text | None"]


class _Missing(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def _safe_format(template: str, params: Mapping[str, Any], lang: str = "en", lookup: Lookup | None = None) -> str:
    """Fill ``{name}`` fields; host data in params is inserted verbatim, never re-interpreted."""
    values = _Missing({k: _display(v, lang, lookup) for k, v in params.items()})
    return string.Formatter().vformat(template, (), values)


def _display(value: Any, lang: str = "en", lookup: Lookup | None = None) -> str:
    """A param as a reader sees it in ``lang``: lists joined (an empty one is a word, not "-"), whole floats
    without ".0", texts and phrases in that language."""
    if isinstance(value, Text):
        return value.get(lang)
    if isinstance(value, Phrase):
        text = (lookup(value.key) if lookup else None) or default_lookup(value.key)
        if text is None:
            raise KeyError(f"no text for phrase {value.key!r}")
        return _safe_format(text.get(lang), value.params, lang, lookup)
    if isinstance(value, list | tuple):
        if not value:
            return common_texts()["none"].get(lang)
        # Sentences are kept apart more clearly than names.
        sep = "; " if any(isinstance(v, Text | Phrase) for v in value) else ", "
        return sep.join(_display(v, lang, lookup) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class MetaError(Exception):
    """A check metadata file is malformed: a packaging bug, reported at load time."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class CheckMeta:
    id: CheckID
    guideline: tuple[str, ...]
    severity: Severity
    platforms: tuple[str, ...]
    title: Text
    rationale: Text
    remediation: Text
    messages: Mapping[str, Text]

    @classmethod
    def from_mapping(cls, data: Any, *, source: str) -> CheckMeta:
        def fail(msg: str) -> MetaError:
            return MetaError(f"{source}: {msg}")

        if not isinstance(data, dict):
            raise fail("top level must be a mapping")
        known = {"id", "guideline", "severity", "platforms", "title", "rationale", "remediation", "messages"}
        extra = set(data) - known
        if extra:
            raise fail(f"unknown keys {sorted(extra)}")
        missing = known - set(data)
        if missing:
            raise fail(f"missing keys {sorted(missing)}")

        def text(value: Any, where: str) -> Text:
            if not isinstance(value, dict) or set(value) != set(LANGS):
                raise fail(f"{where} must have exactly the keys ja and en")
            if not all(isinstance(value[lang], str) and value[lang].strip() for lang in LANGS):
                raise fail(f"{where}: ja and en must be non-empty strings")
            return Text(ja=value["ja"].strip(), en=value["en"].strip())

        guideline = data["guideline"]
        if not isinstance(guideline, list) or not guideline or not all(isinstance(g, str) for g in guideline):
            raise fail("guideline must be a non-empty list of item IDs")
        unknown_items = [g for g in guideline if g not in guideline_items()]
        if unknown_items:
            raise fail(f"unknown guideline items {unknown_items}")
        platforms = data["platforms"]
        if not isinstance(platforms, list) or not all(isinstance(p, str) for p in platforms):
            raise fail("platforms must be a list of strings")
        try:
            severity = Severity(data["severity"])
        except ValueError as e:
            raise fail(f"severity must be one of {[s.value for s in Severity]}") from e
        messages = data["messages"]
        if not isinstance(messages, dict) or not messages:
            raise fail("messages must be a non-empty mapping")
        return cls(
            id=CheckID(str(data["id"])),
            guideline=tuple(guideline),
            severity=severity,
            platforms=tuple(platforms),
            title=text(data["title"], "title"),
            rationale=text(data["rationale"], "rationale"),
            remediation=text(data["remediation"], "remediation"),
            messages={str(k): text(v, f"messages.{k}") for k, v in messages.items()},
        )


def _load_yaml_resource(package: str, name: str) -> Any:
    return safe_load(resources.files(package).joinpath(name).read_bytes())


@functools.cache
def guideline_items() -> Mapping[str, Text]:
    """Guideline item ID -> its title, from checks/meta/_guideline.yaml."""
    data = _load_yaml_resource("checks.meta", "_guideline.yaml")
    return {k: Text(ja=v["ja"], en=v["en"]) for k, v in data.items()}


@functools.cache
def common_texts() -> Mapping[str, Text]:
    """Sentences shared by all checks (error wording, not-applicable reasons)."""
    data = _load_yaml_resource("checks.meta", "_common.yaml")
    return {k: Text(ja=v["ja"], en=v["en"]) for k, v in data.items()}


@functools.cache
def fact_texts() -> Mapping[str, Text]:
    """How the codes that collectors put in facts (problems, reasons, kinds) read in each language."""
    data = _load_yaml_resource("checks.meta", "_facts.yaml")
    return {k: Text(ja=v["ja"], en=v["en"]) for k, v in data.items()}


def default_lookup(key: str) -> Text | None:
    """A phrase key outside the check's own messages: shared sentences, then collector codes."""
    return common_texts().get(key) or fact_texts().get(key)


def load_meta(check_id: str, package: str = "checks.meta") -> CheckMeta:
    source = f"{package}/{check_id}.yaml"
    try:
        data = _load_yaml_resource(package, f"{check_id}.yaml")
    except FileNotFoundError as e:
        raise MetaError(f"{source}: metadata file missing") from e
    except yaml.YAMLError as e:
        raise MetaError(f"{source}: {e}") from e
    meta = CheckMeta.from_mapping(data, source=source)
    if meta.id != check_id:
        raise MetaError(f"{source}: id {meta.id!r} does not match the file name")
    return meta


class FactsUnavailable(Exception):
    """The facts a judge needs are missing; carries the reason to show."""

    def __init__(self, reason: str | Text) -> None:
        super().__init__(reason.en if isinstance(reason, Text) else reason)
        self.reason = reason


@dataclasses.dataclass(frozen=True, kw_only=True)
class Verdict:
    """What a judge decided. ``message`` names a sentence in the check's metadata."""

    status: Status
    message: str
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    evidence: Any = None
    expected: Any = None


class FactSet:
    """The facts of one target, keyed by collector id; errors stay errors."""

    def __init__(self, data: Mapping[str, Any], errors: Mapping[str, str]) -> None:
        self._data = data
        self._errors = errors

    def has(self, collector: str) -> bool:
        """Whether the collector ran on this target (successfully or not)."""
        return collector in self._data or collector in self._errors

    def need(self, collector: str) -> Any:
        if collector in self._data:
            return self._data[collector]
        if collector in self._errors:
            raise FactsUnavailable(common_texts()["collector_failed"].format(
                {"collector": collector, "error": explain(self._errors[collector])}))
        raise FactsUnavailable(common_texts()["collector_not_run"].format({"collector": collector}))


Judge = Callable[[FactSet, Policy], Verdict]


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outcome:
    """A verdict turned into report text."""

    status: Status
    message: Text
    evidence: Any
    expected: Any


@dataclasses.dataclass(frozen=True)
class Check:
    meta: CheckMeta
    needs: tuple[str, ...]
    judge: Judge

    @property
    def id(self) -> CheckID:
        return self.meta.id

    def evaluate(self, facts: FactSet, policy: Policy) -> Outcome:
        """Judge, failing closed: every path out of here that is not the judge's own verdict is ``error``."""
        try:
            verdict = self.judge(facts, policy)
        except FactsUnavailable as e:
            reason = e.reason if isinstance(e.reason, Text) else Text(ja=e.reason, en=e.reason)
            return Outcome(
                status=Status.ERROR,
                message=common_texts()["facts_unavailable"].format({"reason_ja": reason.ja, "reason_en": reason.en}),
                evidence=None,
                expected=None,
            )
        except Exception as e:  # a bug in a judge must not stop the scan or pass silently
            return Outcome(
                status=Status.ERROR,
                message=common_texts()["judge_crashed"].format({"error": f"{type(e).__name__}: {e}"}),
                evidence=None,
                expected=None,
            )
        template = self.meta.messages.get(verdict.message) or common_texts().get(verdict.message)
        if template is None:
            return Outcome(
                status=Status.ERROR,
                message=common_texts()["judge_crashed"].format({"error": f"unknown message {verdict.message!r}"}),
                evidence=verdict.evidence,
                expected=verdict.expected,
            )
        try:
            message = template.format(verdict.params, self.meta.messages.get)
        except KeyError as e:  # a phrase with no text: a packaging bug, never a crash
            return Outcome(
                status=Status.ERROR,
                message=common_texts()["judge_crashed"].format({"error": f"unknown message {e}"}),
                evidence=verdict.evidence,
                expected=verdict.expected,
            )
        return Outcome(status=verdict.status, message=message, evidence=verdict.evidence, expected=verdict.expected)


def check(check_id: str, *, needs: tuple[str, ...], package: str = "checks.meta") -> Callable[[Judge], Check]:
    """Decorator: bind a judge function to its metadata file and the collectors it reads."""

    def wrap(judge: Judge) -> Check:
        return Check(meta=load_meta(check_id, package), needs=needs, judge=judge)

    return wrap


def error(reason_en: str | Text | Phrase, reason_ja: str | None = None, *, evidence: Any = None,
          expected: Any = None) -> Verdict:
    """A verdict of ``error`` with a reason; used when the facts exist but cannot be trusted.

    The reason is a ``Phrase`` (or ``Text``) worded in both languages, or, the older form, an English and a
    Japanese sentence.
    """
    if isinstance(reason_en, Text | Phrase):
        params: dict[str, Any] = {"reason_en": reason_en, "reason_ja": reason_en}
    else:
        params = {"reason_en": reason_en, "reason_ja": reason_ja or reason_en}
    return Verdict(status=Status.ERROR, message="cannot_tell", params=params, evidence=evidence, expected=expected)


def fact_phrase(collector: str, problem: Mapping[str, Any]) -> Phrase:
    """A problem a collector recorded as a code and its parts (``{"code": "keyfile_line", "where": ...}``),
    worded by ``_facts.yaml`` under ``<collector>.<code>``; parts named ``error...`` are raw errors, explained."""
    params = {k: explain(v) if k.startswith("error") and isinstance(v, str) else v
              for k, v in problem.items() if k != "code"}
    return Phrase(f"{collector}.{problem['code']}", params)


@dataclasses.dataclass(frozen=True)
class _ErrorPattern:
    match: re.Pattern[str]
    text: Text


@functools.cache
def _error_patterns() -> tuple[_ErrorPattern, ...]:
    data = _load_yaml_resource("checks.meta", "_errors.yaml")
    return tuple(_ErrorPattern(re.compile(e["match"]), Text(ja=e["ja"], en=e["en"])) for e in data)


def explain(message: str) -> Text:
    """An error a collector, a target or the runner raised (English, as bundles keep it), in both languages.

    Known wordings are matched in ``_errors.yaml`` and re-worded with their parts (paths, names); a named
    part may itself be an error (``{error}``), which is explained in turn. Anything else is shown as it is.
    """
    return _explain(message, 0)


def _explain(message: str, depth: int) -> Text:
    if depth < 4:
        for pattern in _error_patterns():
            m = pattern.match.fullmatch(message)
            if m:
                parts: dict[str, Any] = {k: (_explain(v, depth + 1) if k.startswith("error") else v)
                                         for k, v in m.groupdict().items() if v is not None}
                return pattern.text.format(parts)
    return Text(ja=message, en=message)
