"""Collectors and checks are plugins, found through package entry points.

Built-ins register in mamoru's own ``pyproject.toml`` exactly as a third party
would in theirs (``mamoru.collectors`` / ``mamoru.checks``), so a vendor can
ship a collector for its router without touching mamoru.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from importlib.metadata import EntryPoint, entry_points

from agent.errors import ScanError
from checks.base import Check
from collectors.base import Collector

COLLECTOR_GROUP = "mamoru.collectors"
CHECK_GROUP = "mamoru.checks"


def _load_collector(ep: EntryPoint) -> Collector:
    try:
        obj = ep.load()
    except Exception as e:
        raise ScanError(f"collector plugin {ep.name!r} ({ep.value}) failed to load: {e}") from e
    if isinstance(obj, type):
        obj = obj()
    if not isinstance(obj, Collector):
        raise ScanError(f"collector plugin {ep.name!r} ({ep.value}) is not a Collector")
    if obj.id != ep.name:
        raise ScanError(f"collector plugin {ep.name!r} declares id {obj.id!r}")
    return obj


@functools.cache
def _collector_entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=COLLECTOR_GROUP)}


@functools.cache
def _collector(name: str) -> Collector:
    return _load_collector(_collector_entry_points()[name])


def collectors(names: Iterable[str] | None = None) -> dict[str, Collector]:
    """The registered collectors, or only those named (the rest are not even imported: a host scan
    loads no Wi-Fi or LAN code)."""
    available = _collector_entry_points()
    if not available:
        raise ScanError("no collectors are registered")
    wanted = available if names is None else [n for n in dict.fromkeys(names) if n in available]
    return {name: _collector(name) for name in wanted}


@functools.cache
def checks() -> dict[str, Check]:
    found: dict[str, Check] = {}
    for ep in entry_points(group=CHECK_GROUP):
        try:
            obj = ep.load()
        except Exception as e:
            raise ScanError(f"check plugin {ep.name!r} ({ep.value}) failed to load: {e}") from e
        if not isinstance(obj, Check):
            raise ScanError(f"check plugin {ep.name!r} ({ep.value}) is not a Check")
        if obj.id != ep.name:
            raise ScanError(f"check plugin {ep.name!r} declares id {obj.id!r}")
        found[obj.id] = obj
    if not found:
        raise ScanError("no checks are registered: is mamoru installed (pip install .)?")
    return dict(sorted(found.items()))


def select_checks(*, ids: tuple[str, ...] = (), guideline: tuple[str, ...] = ()) -> list[Check]:
    """All checks, or those named by ID, or those mapped to the given guideline items."""
    from agent.errors import ConfigError

    every = checks()
    unknown = [i for i in ids if i not in every]
    if unknown:
        raise ConfigError(f"unknown check ID(s): {', '.join(unknown)} (see: mamoru checks list)")
    chosen = [every[i] for i in ids] if ids else list(every.values())
    if guideline:
        from checks.base import guideline_items

        bad = [g for g in guideline if g not in guideline_items()]
        if bad:
            raise ConfigError(f"unknown guideline item(s): {', '.join(bad)}")
        chosen = [c for c in chosen if set(c.meta.guideline) & set(guideline)]
    return chosen
