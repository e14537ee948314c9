"""Make the pinned OCSF Compliance Finding JSON Schema that the tests validate mamoru's OCSF output against.

Run once per OCSF version bump, not at build or test time (see README.md next to this file):

    pip install ocsf-json-schema==1.2.0
    python reports/schema/ocsf/make_schema.py [--repo PATH-TO-ocsf-schema-GIT]

Why this way: the OCSF server (schema.ocsf.io) compiles ``ocsf/ocsf-schema`` (dictionary.json, events/, objects/,
profiles/) into one export per version and from it serves a per-class JSON Schema. ``ocsf-json-schema`` ships
those server exports for every 1.x release and turns one into a JSON Schema (draft 2020-12) the same way,
including required attributes, enums, ``additionalProperties: false`` and the ``at_least_one`` constraints
(``device``, ``evidences``): nothing here is hand-written. ``--repo`` cross-checks the enums mamoru maps to
(compliance.status_id, status_id, severity_id, os.type_id) against the OCSF repository at the pinned tag.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

VERSION = "1.8.0"
CLASS = "compliance_finding"
PROFILES = ["host"]  # ``device`` (the audited host) belongs to the host profile
HERE = Path(__file__).resolve().parent
OUT = HERE / f"{CLASS}-{VERSION}.schema.json"


def generate() -> dict[str, Any]:
    lib = importlib.import_module("ocsf_json_schema")  # only needed here, not a mamoru dependency
    schema = lib.OcsfJsonSchemaEmbedded(lib.get_ocsf_schema(version=VERSION))
    doc: dict[str, Any] = schema.get_class_schema(class_name=CLASS, profiles=PROFILES)
    return doc


def _enum_keys(repo: Path, path: str, *keys: str) -> set[int]:
    doc = json.loads(subprocess.run(["git", "-C", str(repo), "show", f"{VERSION}:{path}"], check=True,
                                    capture_output=True).stdout)
    node: Any = doc["attributes"]
    for key in keys:
        node = node[key]
    return {int(k) for k in node["enum"]}


def cross_check(doc: dict[str, Any], repo: Path) -> list[str]:
    """Enum values mamoru uses that the repository at the tag defines but the generated schema lacks."""
    defs, props = doc["$defs"], doc["properties"]
    pairs = [
        ("objects/compliance.json", ("status_id",), set(defs["compliance"]["properties"]["status_id"]["enum"])),
        ("events/findings/finding.json", ("status_id",), set(props["status_id"]["enum"])),
        ("dictionary.json", ("severity_id",), set(props["severity_id"]["enum"])),
        ("objects/os.json", ("type_id",), set(defs["os"]["properties"]["type_id"]["enum"])),
    ]
    return [f"{path}: {keys[-1]} {sorted(_enum_keys(repo, path, *keys) - have)} missing"
            for path, keys, have in pairs if not _enum_keys(repo, path, *keys) <= have]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--repo", type=Path, help="a clone of github.com/ocsf/ocsf-schema with its tags")
    args = ap.parse_args()
    doc = generate()
    if args.repo is not None:
        problems = cross_check(doc, args.repo)
        if problems:
            print("\n".join(problems), file=sys.stderr)
            return 1
    OUT.write_text(json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {OUT.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
