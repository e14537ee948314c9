"""``bundle:FILE``: the saved facts of an evidence bundle, as a ``--target``.

A bundle holds facts, not files: there is nothing to read or run, so the
runner never collects from it; the fleet feeds its TargetFacts straight to
``evaluate_target`` (see ``agent.fleet``). This class exists so that the kind
is known up front (``check_spec``) and so that anything that does try to
collect from a bundle gets a clear error instead of empty facts.
"""

from __future__ import annotations

from agent.errors import ConfigError
from agent.targets.base import (
    DEFAULT_MAX_FILE_BYTES,
    FileStat,
    FileUnreadable,
    PlatformInfo,
    Target,
    TargetUnreachable,
)

_NOT_A_HOST = "a bundle holds saved facts, not a machine: it is evaluated, not collected from"


def bundle_path(spec: str) -> str:
    path = spec.split(":", 1)[1]
    if path.startswith("//"):
        path = path[2:]
    if not path:
        raise ConfigError("a bundle target needs a file: bundle:facts.bundle.json")
    return path


class BundleTarget(Target):
    kind = "bundle"

    def __init__(self, spec: str) -> None:
        super().__init__(spec)
        self.path = bundle_path(spec)

    @classmethod
    def from_spec(cls, spec: str) -> BundleTarget:
        return cls(spec)

    def platform(self) -> PlatformInfo:
        raise TargetUnreachable(_NOT_A_HOST)

    def read_file(self, path: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
        raise FileUnreadable(_NOT_A_HOST)

    def list_dir(self, path: str) -> list[str]:
        raise FileUnreadable(_NOT_A_HOST)

    def stat(self, path: str) -> FileStat | None:
        raise FileUnreadable(_NOT_A_HOST)
