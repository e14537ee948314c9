"""``access_point``: the wireless configuration of an access point, through the vendor parsers.

The target is the AP itself (``ssh://root@192.168.10.1``) or a copy of its
file system (``rootfs:/backup/ap``). Each parser registered under the
``mamoru.ap_parsers`` entry points names the files it reads; the first one
whose file exists is used. When no parser finds a file, the facts say which
were tried, and WL-01 asks a person instead of guessing.
"""

from __future__ import annotations

import functools
from importlib.metadata import entry_points
from typing import Any, ClassVar

from agent.targets.base import FileMissing, Target, TargetError
from collectors.ap_parsers import APConfigError, APParser
from collectors.base import Collector, CollectorError, Facts

GROUP = "mamoru.ap_parsers"
MAX_CONFIG = 1024 * 1024


@functools.cache
def parsers() -> tuple[APParser, ...]:
    found: list[APParser] = []
    for ep in entry_points(group=GROUP):
        obj: Any = ep.load()
        if isinstance(obj, type):
            obj = obj()
        if not isinstance(obj, APParser):
            raise CollectorError(f"AP parser plugin {ep.name!r} ({ep.value}) is not an APParser")
        found.append(obj)
    if not found:  # running from a source tree without the package installed
        from collectors.ap_parsers.openwrt import PARSER

        found.append(PARSER)
    return tuple(sorted(found, key=lambda p: p.name))


class AccessPoint(Collector):
    id = "access_point"
    version = "1"
    platforms: ClassVar[frozenset[str]] = frozenset({"linux"})
    timeout = 60.0

    def collect(self, target: Target) -> Facts:
        tried = []
        for parser in parsers():
            for path in parser.paths:
                try:
                    data = target.read_file(path, max_bytes=MAX_CONFIG)
                except FileMissing:
                    tried.append({"parser": parser.name, "path": path, "result": "missing"})
                    continue
                except TargetError as e:
                    raise CollectorError(f"{path}: {e}") from e
                try:
                    parsed = parser.parse(data, path)
                except APConfigError as e:
                    raise CollectorError(f"{parser.name}: {e}") from e
                return {"found": True, "vendor": parser.name, "source": path, **parsed, "tried": tried}
        return {"found": False, "vendor": None, "source": None, "interfaces": [], "tried": tried}


COLLECTOR = AccessPoint()
