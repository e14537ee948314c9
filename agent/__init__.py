"""mamoru (守る): audit agent for the technical safeguards of the MLIT personal-information guideline."""

from __future__ import annotations

import functools


@functools.cache
def version() -> str:
    """The installed version. Asked for when a report is written, not at import: importlib.metadata costs
    ~25 ms of start-up that a scanner process never needs."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("mamoru")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0.0.0+source"


def __getattr__(name: str) -> str:
    if name == "__version__":
        return version()
    raise AttributeError(f"module 'agent' has no attribute {name!r}")
