"""A report file read back (``mamoru report``, ``mamoru diff``, the dashboard): bounded, strict, validated.

A report handed over by someone else is input like any other: it may be damaged, hostile or from another
version. It is read with the same strict JSON reader as bundles (no duplicate keys, UTF-8 only), checked
against ``reports/schema/report.schema.json``, and only then turned into the model. Any problem is a
``ConfigError`` (exit 2) naming the file, never a traceback and never a partly-read report shown as whole.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from importlib import resources
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from reports.model import SCHEMA_VERSION, Report

MAX_REPORT_BYTES = 512 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class LoadedReport:
    path: Path
    data: bytes  # the exact bytes read: what a signature covers
    report: Report


@functools.cache
def report_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        resources.files("reports").joinpath("schema/report.schema.json").read_text("utf-8"))
    return schema


def parse_report(data: bytes, source: str) -> Report:
    from agent.config.yamlfile import describe, schema_errors
    from reports.bundle import parse_json

    doc = parse_json(data, source, what="mamoru report")
    if not isinstance(doc, dict) or not str(doc.get("schema", "")).startswith("mamoru-report/"):
        raise ConfigError(f"{source}: not a mamoru report (no 'schema: mamoru-report/…')")
    if doc["schema"] != SCHEMA_VERSION:
        raise ConfigError(f"{source}: report format {str(doc['schema'])[:40]!r} is not supported by this mamoru "
                          f"(it reads {SCHEMA_VERSION})")
    errors = schema_errors(doc, report_schema())
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.instance_path) or "(top level)"
        raise ConfigError(f"{source}: not a valid mamoru report: {where}: {describe(err, report_schema())}")
    return Report.from_dict(doc)


def load_report(path: str | Path) -> LoadedReport:
    from agent.config.yamlfile import read_config_bytes

    p = Path(path)
    data = read_config_bytes(p, limit=MAX_REPORT_BYTES, what="mamoru report")
    return LoadedReport(path=p, data=data, report=parse_report(data, str(p)))
