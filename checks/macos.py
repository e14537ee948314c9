"""macOS judges, and the checks that judge Linux, Windows and macOS with one policy.

Each registered check here is the check it extends (same metadata file, same policy keys) with a macOS judge
beside it, chosen by which facts the target produced: only a Mac runs the ``mac_*`` collectors (they declare
``platforms = {"darwin"}``), so a bundle judged later picks the same judge. What counts follows the macOS
Security Compliance Project rules (their IDs go in the evidence, ``mscp``); their texts are not copied.

A judge never reads a tool's words itself: the collectors record answers with a status (``ok``, ``missing``,
``error`` and a problem code), and an answer that is not ``ok`` is never a pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.config.policy import Policy
from checks.base import Check, FactSet, Judge, Phrase, Verdict, error, fact_phrase, phrase


def with_macos(other: Check, collector: str, judge: Judge) -> Check:
    """``other`` (a Linux or Linux+Windows check) plus a macOS judge that runs when ``collector``'s facts exist."""

    def dispatch(facts: FactSet, policy: Policy) -> Verdict:
        if facts.has(collector):
            return judge(facts, policy)
        return other.judge(facts, policy)

    if "darwin" not in other.meta.platforms:
        raise ValueError(f"{other.id}: its metadata must list darwin in platforms to judge macOS")
    dispatch.__doc__ = f"{other.id}: the judge of other platforms, or macOS's when {collector!r} ran."
    return Check(meta=other.meta, needs=(*other.needs, collector), judge=dispatch)


# -- reading answers in facts (collectors/macos/base.py Answer) ----------------------------------------------


def ok(answer: Mapping[str, Any] | None) -> bool:
    return isinstance(answer, Mapping) and answer.get("status") == "ok"


def why_not(answer: Mapping[str, Any] | None) -> Phrase:
    """Why an answer is not ``ok``, worded per language: its problem code (``mac.<code>`` in _facts.yaml)."""
    if not isinstance(answer, Mapping):
        return phrase("mac.not_collected")
    source = str(answer.get("source", "?"))
    prob = answer.get("problem")
    if answer.get("status") == "missing" and not isinstance(prob, Mapping):
        return phrase("mac.absent", source=source)
    if not isinstance(prob, Mapping) or "code" not in prob:
        return phrase("mac.unreadable_source", source=source)
    return phrase("mac.at", source=source, what=fact_phrase("mac", prob))


def cannot_tell(reasons: list[Phrase], *, evidence: Any, expected: Any) -> Verdict:
    """``error``: the settings needed could not be read (never a pass, never a guess)."""
    return error(phrase("mac.cannot_tell", reasons=reasons), evidence=evidence, expected=expected)


def evidence_of(answer: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """An answer as the evidence shows it: what was asked, its status, and the problem code if any."""
    if not isinstance(answer, Mapping):
        return None
    return {k: answer[k] for k in ("source", "status", "exit", "value", "problem") if k in answer}
