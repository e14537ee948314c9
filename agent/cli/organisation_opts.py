"""``--answers`` and ``--no-organisation``, shared by ``scan`` and ``evaluate``.

When the organisation target is added (a decision, README "The organisation"): on every ``scan`` and
``evaluate`` whose selection reaches a question: all of them by default, those of the named items with
``--guideline``, WL-01's with ``--check WL-01``, none with ``--check IA-01``. ``--no-organisation`` leaves it
out. Unanswered questions are ``manual``, which no exit code counts: a scheduled scan of one PC keeps
exiting 0 when its machine checks pass, and its report still lists, every time, what a person has yet to
answer. The organisation target is never an ``error`` (issue 10's rule is about targets that could not be
judged; an open question is judged to be open). An attested ``no`` or ``partly`` is a ``fail`` (exit 1),
like any other measure not in place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from agent.fleet import Job, Saved
    from checks.organisation import Organisation

F = TypeVar("F", bound=Callable[..., Any])


def organisation_options(fn: F) -> F:
    fn = click.option("--no-organisation", "no_organisation", is_flag=True,
                      help="Leave out the organisation target (the questions a person answers).")(fn)
    fn = click.option("--answers", "answers_path", type=click.Path(dir_okay=False), default=None, metavar="FILE",
                      help="Answers to the organisation's questions (YAML; write one with: mamoru answers "
                           "template).")(fn)
    return fn


def plan_organisation(*, answers_path: str | None, no_organisation: bool, check_ids: Sequence[str],
                      guideline: Sequence[str], items: Sequence[Job | Saved] = ()) -> Organisation | None:
    """The organisation part of a run, checked before any work: a bad answers file is exit 2 now."""
    if no_organisation:
        if answers_path is not None:
            raise click.UsageError("--answers needs the organisation target: drop --no-organisation")
        return None
    from agent.config.answers import load_answers
    from agent.errors import ConfigError
    from agent.fleet import Job
    from checks.organisation import ORGANISATION_ID, Organisation, select_questions, tokyo_today

    today = tokyo_today()
    answers = load_answers(answers_path, today=today) if answers_path is not None else {}
    chosen = select_questions(ids=check_ids, guideline=guideline)
    if not chosen:
        return None
    for item in items:
        if (item.label if isinstance(item, Job) else item.facts.id) == ORGANISATION_ID:
            raise ConfigError(f"a target is named {ORGANISATION_ID!r}, the name of the organisation target: "
                              "rename it, or use --no-organisation")
    return Organisation(questions=chosen, answers=answers, today=today)
