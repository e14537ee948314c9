"""What every Windows collector shares: its declared registry reads, read in one batch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from agent.targets.base import Target
from agent.targets.registry import RegAnswer, RegistryReader, RegQuery
from collectors.base import Collector, Facts


class Answers:
    """The answers of one batch, looked up by the query that asked for them."""

    def __init__(self, answers: Sequence[RegAnswer]) -> None:
        self._all = list(answers)

    def one(self, query: RegQuery) -> RegAnswer:
        for a in self._all:
            if a.query == query:
                return a
        raise KeyError(query.key)

    def per_user(self, query: RegQuery) -> list[RegAnswer]:
        return [a for a in self._all if a.query == query]


class WindowsCollector(Collector):
    platforms: ClassVar[frozenset[str]] = frozenset({"windows"})
    #: Keys and values read on every target, in one batch (``HKU\\*``: every user profile).
    registry_reads: ClassVar[tuple[RegQuery, ...]] = ()

    def collect(self, target: Target) -> Facts:
        reader = target.registry()  # RegistryUnavailable etc. are TargetErrors: the fact becomes an error
        facts = self.build(target, reader, Answers(reader.read(self.registry_reads)))
        facts["source"] = reader.source()
        return facts

    def build(self, target: Target, reader: RegistryReader, answers: Answers) -> dict[str, Any]:
        raise NotImplementedError
