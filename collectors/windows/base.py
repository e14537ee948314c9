"""What every Windows collector shares: its declared registry reads, read in one batch."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, ClassVar

from agent.targets.base import Target, TargetError
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
    #: Parts of the PowerShell batch (``agent/targets/powershell.py``) read on a live Windows target.
    powershell_parts: ClassVar[tuple[str, ...]] = ()
    #: Waiting for the batch (PowerShell start-up plus the slowest part) takes longer than a file read.
    timeout: ClassVar[float] = 90.0

    def announce(self, target: Target) -> None:
        """Announce the registry keys and PowerShell parts, so that a live target asks for all in one batch."""
        with contextlib.suppress(TargetError):
            if self.registry_reads:
                target.registry().prefetch(self.registry_reads)
            if self.powershell_parts:
                target.powershell().want(self.powershell_parts)

    def collect(self, target: Target) -> Facts:
        reader = target.registry()  # RegistryUnavailable etc. are TargetErrors: the fact becomes an error
        facts = self.build(target, reader, Answers(reader.read(self.registry_reads)))
        facts["source"] = reader.source()
        return facts

    def build(self, target: Target, reader: RegistryReader, answers: Answers) -> dict[str, Any]:
        raise NotImplementedError
