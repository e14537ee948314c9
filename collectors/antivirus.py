"""Which anti-malware products are installed, by the files they ship.

Whether they *run* is judged from the ``processes`` facts, against the same
table (``collectors/data/av_products.yaml``), so this collector only reads a
few paths and works unchanged on a directory target.
"""

from __future__ import annotations

from typing import Any

from agent.targets.base import Target
from collectors import data
from collectors.base import Collector, Facts


def products() -> dict[str, Any]:
    table: dict[str, Any] = data.load("av_products.yaml")
    return table


class AntivirusCollector(Collector):
    id = "antivirus"
    lists = ("/opt",)
    version = "1"

    def collect(self, target: Target) -> Facts:
        installed = {}
        target.prefetch((p for product in products().values() for p in product["paths"]), op="stat")
        for key, product in products().items():
            found = [p for p in product["paths"] if target.exists(p)]
            if found:
                installed[key] = found
        return {"installed": installed}


COLLECTOR = AntivirusCollector()
