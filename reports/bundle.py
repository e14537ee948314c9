"""Evidence bundles: the raw facts of every target, saved on site and judged later.

``mamoru collect`` writes one; ``mamoru evaluate`` (or ``--target bundle:FILE``)
judges it with any policy and gets the report a direct scan would have given.
A bundle records which mamoru and which collector versions gathered each fact
and when, so a fact is never judged by checks that expect another shape: a
fact whose collector version differs from this mamoru's is turned into an
error on load, never silently reinterpreted. Written atomically, mode 0600
(facts name accounts and hosts, though never secrets).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from agent.config.yamlfile import read_config_bytes
from agent.errors import ConfigError
from agent.runner import FactRecord, TargetFacts
from reports.atomic import write_atomic

BUNDLE_SCHEMA = "mamoru-bundle/1"
#: A bundle of a large office is a few MB; anything far bigger is not ours.
MAX_BUNDLE_BYTES = 512 * 1024 * 1024


@dataclasses.dataclass(kw_only=True)
class BundleTarget:
    facts: TargetFacts
    #: The inventory's policy overrides for this target, so evaluate judges it as scan would have.
    policy: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(kw_only=True)
class Bundle:
    run_id: str
    started: str
    finished: str
    tool: dict[str, str]
    operator: dict[str, str]
    partial: bool
    collectors: dict[str, str]
    targets: list[BundleTarget]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": BUNDLE_SCHEMA,
            "run": {"id": self.run_id, "started": self.started, "finished": self.finished, "tool": self.tool,
                    "operator": self.operator, "partial": self.partial},
            "collectors": dict(sorted(self.collectors.items())),
            "targets": [{"facts": t.facts.to_dict(), "policy": t.policy} for t in self.targets],
        }

    def to_json(self) -> bytes:
        doc = self.to_dict()
        try:
            return (json.dumps(doc, ensure_ascii=False, indent=1, allow_nan=False) + "\n").encode("utf-8")
        except UnicodeEncodeError:  # undecodable host bytes kept as lone surrogates
            return (json.dumps(doc, ensure_ascii=True, indent=1, allow_nan=False) + "\n").encode("ascii")

    @classmethod
    def from_dict(cls, doc: Any, source: str) -> Bundle:
        if not isinstance(doc, dict) or not str(doc.get("schema", "")).startswith("mamoru-bundle/"):
            raise ConfigError(f"{source}: not a mamoru evidence bundle (no 'schema: mamoru-bundle/…')")
        if doc["schema"] != BUNDLE_SCHEMA:
            raise ConfigError(f"{source}: bundle format {doc['schema']!r} is not supported by this mamoru "
                              f"(it reads {BUNDLE_SCHEMA})")
        _validate(doc, source)
        run = doc["run"]
        targets = []
        for t in doc["targets"]:
            raw = t["facts"]
            facts = {k: FactRecord(**v) for k, v in raw["facts"].items()}
            tf = TargetFacts(**{**raw, "facts": facts})
            targets.append(BundleTarget(facts=tf, policy=t["policy"]))
        return cls(run_id=run["id"], started=run["started"], finished=run["finished"], tool=run["tool"],
                   operator=run["operator"], partial=run["partial"], collectors=doc["collectors"], targets=targets)


def _validate(doc: Any, source: str) -> None:
    from agent.config.policy import policy_schema
    from agent.config.yamlfile import describe, schema_errors

    schema = json.loads(resources.files("reports").joinpath("schema/bundle.schema.json").read_text("utf-8"))
    errors = schema_errors(doc, schema)
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.instance_path) or "(top level)"
        raise ConfigError(f"{source}: not a valid mamoru bundle: {where}: {describe(err, schema)}")
    for i, t in enumerate(doc["targets"]):
        for perr in schema_errors(t["policy"], policy_schema()):
            where = ".".join(str(p) for p in perr.instance_path) or "(top level)"
            raise ConfigError(f"{source}: targets.{i}.policy.{where}: {describe(perr, policy_schema())}")


def write_bundle(path: str | Path, bundle: Bundle) -> None:
    write_atomic(path, bundle.to_json(), mode=0o600)


def load_bundle(path: str | Path) -> Bundle:
    p = Path(path)
    data = read_config_bytes(p, limit=MAX_BUNDLE_BYTES, what="mamoru bundle file")
    return Bundle.from_dict(parse_json(data, str(p)), str(p))


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json``'s object hook: a key given twice is refused (``json`` alone keeps the last, silently)."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def parse_json(data: bytes, source: str, *, what: str = "mamoru bundle") -> Any:
    """A bundle's (or report's: ``what``) bytes as JSON, or a ConfigError (exit 2) saying why, never a traceback.

    Strict where ``json.loads`` is lenient: UTF-8 only (not UTF-16/32 guessed from the first bytes), no
    duplicate keys, no ``NaN``/``Infinity``; nesting beyond the interpreter's recursion limit, or an integer
    beyond its digit limit, is a damaged file like any other.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(f"{source}:{line}: not a {what} (not valid UTF-8)") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except _DuplicateKey as e:
        raise ConfigError(f"{source}: not a {what}: the key {e.key[:80]!r} appears twice in one object "
                          "(JSON readers disagree on which one counts)") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{source}:{e.lineno}: not a {what} (not JSON: {e.msg})") from None
    except RecursionError:
        raise ConfigError(f"{source}: not a {what} (nested too deeply)") from None
    except ValueError as e:  # NaN/Infinity, or an integer past int()'s digit limit
        raise ConfigError(f"{source}: not a {what} ({str(e)[:120]})") from None


def check_versions(bundle: Bundle, current: Mapping[str, str]) -> None:
    """Turn facts gathered by another version of a collector into errors (fail closed, never reinterpret)."""
    for t in bundle.targets:
        for cid, rec in t.facts.facts.items():
            want = current.get(cid)
            if rec.error is None and want is not None and rec.version != want:
                rec.error = (f"collected by {cid} collector version {rec.version}; this mamoru's checks read "
                             f"version {want}: collect again with this mamoru")
                rec.data = None
