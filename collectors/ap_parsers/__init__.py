"""Access-point configuration parsers: one per vendor, found through the ``mamoru.ap_parsers`` entry points.

A parser names the files where its vendor keeps the wireless configuration
and turns them into one shape (``interfaces`` with SSID, mode, security,
MAC filter and MAC list). A vendor package registers its own parser in its
``pyproject.toml`` exactly as mamoru registers OpenWrt's::

    [project.entry-points."mamoru.ap_parsers"]
    openwrt = "collectors.ap_parsers.openwrt:PARSER"

Parsers never copy a key, passphrase or RADIUS secret into their output: they
say only whether one is set.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar


class APConfigError(Exception):
    """The vendor's file exists but is not a configuration this parser can read."""


class APParser(abc.ABC):
    #: Stable vendor name, also the entry-point name.
    name: ClassVar[str]
    #: Paths on the target where this vendor keeps its wireless configuration, most likely first.
    paths: ClassVar[tuple[str, ...]]

    @abc.abstractmethod
    def parse(self, data: bytes, path: str) -> dict[str, Any]:
        """``{"interfaces": [...], ...}`` from the file's bytes; raises APConfigError."""
