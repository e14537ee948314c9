"""What every collector is, and the one error type it raises.

A collector reads a target through the Target interface only and returns
plain JSON-able data (dicts, lists, str, int, float, bool, None), so facts can
be saved to an evidence bundle and judged later with another policy. Secrets
never enter facts: a collector that reads /etc/shadow returns "empty",
"locked" or "set", never the hash.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

from agent.targets.base import Target

Facts = dict[str, Any]


class CollectorError(Exception):
    """The collector could not produce its facts at all; the reason is shown to the user."""


class Collector(abc.ABC):
    #: Stable name used by checks in ``needs`` and in bundles.
    id: ClassVar[str]
    #: Bumped whenever the shape or meaning of the facts changes (recorded in bundles).
    version: ClassVar[str] = "1"
    #: Platforms (PlatformInfo.system values) the collector serves.
    platforms: ClassVar[frozenset[str]] = frozenset({"linux"})
    #: Seconds the runner allows before giving up on this collector.
    timeout: ClassVar[float] = 30.0
    #: An *active* collector acts on the target (e.g. feeds a test marker to the
    #: anti-malware engine) instead of only reading it. It runs only when the
    #: operator asks for it (``mamoru scan --active-tests``); otherwise it is not
    #: run at all and the checks that need it say so.
    active: ClassVar[bool] = False
    #: Dotted policy keys whose values tell the collector *what* to look at (``data_paths``): a
    #: policy decides which folders hold personal data, and nothing on the host can. The runner
    #: passes their values to ``collect_with``; the facts echo them, so that a later evaluation
    #: with another policy can tell what was, and what was not, looked at.
    inputs: ClassVar[tuple[str, ...]] = ()
    #: Files this collector reads on every target, paths it only checks for (programs: is auditd there?)
    #: and directories it lists. Announced to the target for all collectors at once, before any of them
    #: starts (``Target.prefetch``): over SSH they then arrive in a few batched round trips instead of a
    #: chain of round trips per collector. Only a hint: what is not declared is simply fetched when asked
    #: for, and nothing changes on targets where a read costs no round trip.
    reads: ClassVar[tuple[str, ...]] = ()
    probes: ClassVar[tuple[str, ...]] = ()
    lists: ClassVar[tuple[str, ...]] = ()

    def announce(self, target: Target) -> None:
        """A hint before any collector starts, beside ``reads``: what this collector will ask the target in
        batches of its own (the Windows PowerShell parts and registry keys). Never raises."""

    @abc.abstractmethod
    def collect(self, target: Target) -> Facts: ...

    def collect_with(self, target: Target, inputs: Mapping[str, Any]) -> Facts:
        """Collect given the policy values named in ``inputs``; collectors without inputs need only ``collect``."""
        return self.collect(target)
