"""Data files used by collectors (keyword tables, compiled-in defaults)."""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

from agent.config.yamlfile import safe_load


@functools.cache
def load(name: str) -> Any:
    raw = resources.files(__name__).joinpath(name).read_bytes()
    return safe_load(raw)
