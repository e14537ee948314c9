"""The organisation as a target: questions no program can answer, asked once per report.

Half of the guideline's Art. 9 belongs to the business, not to a host: a manager appointed, rules written,
staff trained, doors locked, contractors bound by contract. Those items are questions (``checks/questions/
OR-NN.yaml``, ja/en, with what evidence satisfies each). In a report they are the findings of one target,
``organisation``, so that a fleet of 30 PCs asks them once, not 30 times.

Without an answer a question is ``manual``, and its message is the question. An answer (``--answers``,
``agent.config.answers``) turns it into ``pass`` (yes) or ``fail`` (no, and partly: a measure half in
place is not in place), always with an ``attestation`` naming who declared it, when, on what evidence and
until when, so that a declaration is never read as a machine's result. An answer past its ``valid_until``
(dates in Japan time) is ``manual`` again, with a note saying whose answer lapsed.

Everything here is pure: the same questions, answers and day give the same findings (no times, no
durations), so two runs diff cleanly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from typing import Any, Literal

from agent.config.yamlfile import safe_load
from checks.base import LANGS, MetaError, Severity, Text, guideline_items
from reports.model import Finding, TargetRecord

#: The organisation target's id and kind: one per report.
ORGANISATION_ID = "organisation"
ORGANISATION_KIND = "organisation"
#: Question ids share the report's check pattern (``^[A-Z]{2}-\d{2}$``), in their own prefix.
QUESTION_ID = re.compile(r"^OR-\d{2}$")
#: Dates of answers are read in Japan time (no daylight saving since 1951: a fixed offset is exact).
JST = dt.timezone(dt.timedelta(hours=9), "JST")
PACKAGE = "checks.questions"

AnswerValue = Literal["yes", "no", "partly"]
#: What an answer makes of a question: a half-done measure is not done (fail closed).
STATUS_OF: Mapping[str, str] = {"yes": "pass", "no": "fail", "partly": "fail"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Question:
    id: str
    guideline: tuple[str, ...]
    severity: Severity
    #: Checks whose manual part this question asks (WL-01: the AP's MAC allow-list when no AP config can
    #: be read); ``--check`` on one of them selects the question too.
    completes: tuple[str, ...]
    title: Text
    question: Text
    evidence: Text
    remediation: Text

    @classmethod
    def from_mapping(cls, data: Any, *, source: str) -> Question:
        def fail(msg: str) -> MetaError:
            return MetaError(f"{source}: {msg}")

        known = {"id", "guideline", "severity", "completes", "title", "question", "evidence", "remediation"}
        if not isinstance(data, dict) or set(data) != known:
            raise fail(f"must be a mapping with exactly the keys {sorted(known)}")

        def text(key: str) -> Text:
            value = data[key]
            if not isinstance(value, dict) or set(value) != set(LANGS) or not all(
                    isinstance(value[lang], str) and value[lang].strip() for lang in LANGS):
                raise fail(f"{key} must have non-empty ja and en texts")
            return Text(ja=value["ja"].strip(), en=value["en"].strip())

        qid = data["id"]
        if not isinstance(qid, str) or not QUESTION_ID.match(qid):
            raise fail("id must look like OR-01")
        guideline = data["guideline"]
        if not isinstance(guideline, list) or not guideline or any(g not in guideline_items() for g in guideline):
            raise fail("guideline must be a non-empty list of known guideline items")
        completes = data["completes"]
        if not isinstance(completes, list) or not all(isinstance(c, str) for c in completes):
            raise fail("completes must be a list of check IDs")
        try:
            severity = Severity(data["severity"])
        except ValueError as e:
            raise fail("unknown severity") from e
        return cls(id=qid, guideline=tuple(guideline), severity=severity, completes=tuple(completes),
                   title=text("title"), question=text("question"), evidence=text("evidence"),
                   remediation=text("remediation"))


@functools.cache
def questions() -> Mapping[str, Question]:
    """Every question, by id, in id order (``checks/questions/OR-NN.yaml``)."""
    found: dict[str, Question] = {}
    for entry in resources.files(PACKAGE).iterdir():
        name = entry.name
        if not (name.startswith("OR-") and name.endswith(".yaml")):
            continue
        source = f"{PACKAGE}/{name}"
        q = Question.from_mapping(safe_load(entry.read_bytes()), source=source)
        if f"{q.id}.yaml" != name:
            raise MetaError(f"{source}: id {q.id!r} does not match the file name")
        found[q.id] = q
    return dict(sorted(found.items()))


@functools.cache
def texts() -> Mapping[str, Text]:
    """The sentences organisation findings and the questionnaire share (``_texts.yaml``)."""
    data = safe_load(resources.files(PACKAGE).joinpath("_texts.yaml").read_bytes())
    return {k: Text(ja=v["ja"], en=v["en"]) for k, v in data.items()}


def select_questions(*, ids: Iterable[str] = (), guideline: Iterable[str] = ()) -> list[Question]:
    """The questions a run asks: all of them, as ``select_checks`` takes all checks, unless narrowed.

    ``--check`` names checks: a question is chosen only when it completes one of them (``WL-01``), so
    ``--check IA-01`` asks nothing of the organisation. ``--guideline`` chooses the questions of those items.
    """
    ids, guideline = tuple(ids), tuple(guideline)
    chosen = list(questions().values())
    if ids:
        chosen = [q for q in chosen if set(q.completes) & set(ids)]
    if guideline:
        chosen = [q for q in chosen if set(q.guideline) & set(guideline)]
    return chosen


@dataclasses.dataclass(frozen=True, kw_only=True)
class Answer:
    """One answered question from an answers file (``agent.config.answers`` has checked every field)."""

    item: str
    answer: AnswerValue
    evidence: str
    by: str
    at: dt.date
    until: dt.date
    #: ``file:line`` of the entry, so a reader can find the declaration behind a finding.
    source: str


def tokyo_today(now: dt.datetime | None = None) -> dt.date:
    """The calendar day in Japan (where the office is, and where ``valid_until`` is meant), at ``now``."""
    moment = now if now is not None else dt.datetime.now(dt.UTC)
    if moment.tzinfo is None:
        raise ValueError("now must carry a time zone")
    return moment.astimezone(JST).date()


def expired(answer: Answer, today: dt.date) -> bool:
    """An answer holds through its ``valid_until`` day and lapses the day after."""
    return today > answer.until


@dataclasses.dataclass(frozen=True, kw_only=True)
class Organisation:
    """What a run asks of the organisation and what it was told: the input of ``findings``."""

    questions: Sequence[Question]
    answers: Mapping[str, Answer] = dataclasses.field(default_factory=dict)
    today: dt.date = dataclasses.field(default_factory=tokyo_today)

    def record(self) -> TargetRecord:
        """The report's line for the organisation: never an error (an unanswered question is ``manual``)."""
        return TargetRecord(id=ORGANISATION_ID, kind=ORGANISATION_KIND, hostname="", os="", status="ok",
                            error=None, reason=None)

    def findings(self) -> list[Finding]:
        return [finding(q, self.answers.get(q.id), self.today) for q in self.questions]


def finding(q: Question, answer: Answer | None, today: dt.date) -> Finding:
    """One question as a finding: the question (unanswered, lapsed) or the attested answer."""
    words = texts()
    expected: dict[str, Any] = {"answer": "yes", "evidence": q.evidence.as_dict()}
    status = "manual"
    evidence: dict[str, Any] | None = None
    attestation: dict[str, Any] | None = None
    if answer is None:
        message = words["unanswered"].format({"question": q.question})
    else:
        parts = {"by": answer.by, "at": answer.at.isoformat(), "until": answer.until.isoformat(),
                 "question": q.question}
        declared = {"answer": answer.answer, "evidence": answer.evidence, "answered_by": answer.by,
                    "answered_at": answer.at.isoformat(), "valid_until": answer.until.isoformat(),
                    "source": answer.source}
        if expired(answer, today):
            message = words["expired"].format(parts)
            evidence = {"expired_answer": declared}
        else:
            status = STATUS_OF[answer.answer]
            message = words[f"attested_{answer.answer}"].format(parts)
            evidence = {"answer": answer.answer, "evidence": answer.evidence}
            attestation = {"by": answer.by, "at": answer.at.isoformat(), "evidence": answer.evidence,
                           "valid_until": answer.until.isoformat(), "source": answer.source}
    return Finding(check=q.id, target=ORGANISATION_ID, status=status, severity=q.severity.value,
                   guideline=list(q.guideline), title=q.title.as_dict(), message=message.as_dict(),
                   remediation=q.remediation.as_dict(), evidence=evidence, expected=expected, duration_ms=0.0,
                   attestation=attestation)
