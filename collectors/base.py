"""What every collector is, and the one error type it raises.

A collector reads a target through the Target interface only and returns
plain JSON-able data (dicts, lists, str, int, float, bool, None), so facts can
be saved to an evidence bundle and judged later with another policy. Secrets
never enter facts: a collector that reads /etc/shadow returns "empty",
"locked" or "set", never the hash.
"""

from __future__ import annotations

import abc
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

    @abc.abstractmethod
    def collect(self, target: Target) -> Facts: ...
