"""Data files used by collectors (keyword tables, compiled-in defaults)."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import yaml


@functools.cache
def load(name: str) -> Any:
    raw = resources.files(__name__).joinpath(name).read_bytes()
    return yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - safe loader
