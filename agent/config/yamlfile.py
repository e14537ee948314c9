"""Load a user's YAML config file safely, as JSON data, and explain every error with file and line.

One loader serves every file a user hands mamoru (policy, inventory, and later answers or waivers):
``load_config_yaml(path) -> (value, node)``. It

1. reads at most ``MAX_CONFIG_BYTES`` (the size is looked at before a byte is read);
2. composes the document once, with libyaml when it is there, into a node tree: no Python object is
   constructed yet, and an alias is only a second reference to the same node, so a few hundred bytes of
   nested aliases (a "billion laughs") cost a few hundred bytes here;
3. walks that tree once to build the value, refusing on the way, with file and line:
   - aliases (``*name``). User configs do not need them (an inventory has ``defaults:``; a policy names only
     what it changes), an alias would make an error inside shared text point at the anchor rather than at
     the place it is used, and refusing them outright needs no expansion budget to tune. The refusal happens
     at the first node reached twice, before anything is expanded;
   - duplicate keys. PyYAML keeps the last one silently, so ``max_auth_tries: 3`` followed by
     ``max_auth_tries: 100`` would turn a failing finding into a pass; both lines are named;
   - anything that is not JSON data: ``!!binary``, ``!!set``, ``!!omap``, merge keys (``<<``), ``.nan`` and
     ``.inf``, numbers beyond Python's integer conversion limit, keys that are not strings (``1:``, ``~:``,
     ``yes:``), unknown tags. An unquoted date (``name: 2024-01-01``) stays the text as written: a config
     never wants a date object, and a string is what every schema here expects;
   - nesting deeper than ``MAX_DEPTH`` (libyaml stops at 1000 levels; Python's recursion would not).

The node tree is returned too, so that a schema error found on the value can point at the line the user
has to fix (``line_of``). Schema errors never quote the user's value (an address can carry a password,
``audit:secret@host``): they say where, which key, and what was expected.

Internal data files (``checks/meta/*.yaml``, ``collectors/data/*.yaml``) are ours and read on every run;
they keep the plain ``safe_load`` (a test holds them to the same rules).
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from agent.errors import ConfigError
from reports.notes import note

#: A policy is a few KB and a 300-host inventory about 30 KB. The cap bounds what composing may cost: a 1 MiB
#: YAML list of one-character items composes to ~150 MB of nodes (4 MiB took 620 MB and 7 s).
MAX_CONFIG_BYTES = 1024 * 1024
#: Deepest nesting of lists and mappings a config file may have (the deepest real one, a device of a
#: per-target policy override in an inventory, ``targets.0.policy.network.devices.0.mac``, is 7).
MAX_DEPTH = 64
#: ``yaml.safe_load``'s loader, in C when libyaml is there: the same safe constructor, ten times faster
#: (measured: 10.6 ms against 0.9 ms for the default policy, parsed on every run).
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_T = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL, _TIMESTAMP = (f"{_T}{t}" for t in ("str", "int", "float", "bool", "null",
                                                                    "timestamp"))
_SEQ, _MAP, _MERGE = f"{_T}seq", f"{_T}map", f"{_T}merge"
#: Tags whose plain text is the value we keep: a date-like scalar is not turned into a date.
_TEXT_TAGS = frozenset({_STR, _TIMESTAMP})
#: PyYAML's own scalar conversions (YAML 1.1 ints: ``0x1F``, ``1_000``; floats; yes/no), without its loader.
_SCALARS = yaml.constructor.SafeConstructor()


def safe_load(data: str | bytes) -> Any:
    """``yaml.safe_load``, with libyaml's loader when it is there: for mamoru's own data files only."""
    return yaml.load(data, Loader=SAFE_LOADER)  # noqa: S506 - the safe loader


def read_config_bytes(path: Path, *, limit: int = MAX_CONFIG_BYTES, what: str = "config file") -> bytes:
    """A user-named input file, bounded: a missing, unreadable or oversized file is a ConfigError (exit 2).

    The size is taken from the open file before reading, so a 50 GB file is refused without reading half a
    gigabyte first; the read stays bounded anyway (a pipe or a device has no size, a file may grow).
    """
    try:
        with path.open("rb") as fh:
            st = os.fstat(fh.fileno())
            if stat.S_ISREG(st.st_mode) and st.st_size > limit:
                raise ConfigError(note=note("too_large_sized", path=str(path), size=st.st_size, limit=limit,
                                            what=what))
            data = fh.read(limit + 1)
    except FileNotFoundError as e:
        raise ConfigError(note=note("no_such_file", path=str(path))) from e
    except OSError as e:
        raise ConfigError(note=note("cannot_read", path=str(path), why=e.strerror)) from e
    if len(data) > limit:
        raise ConfigError(note=note("too_large", path=str(path), limit=limit, what=what))
    return data


def load_config_yaml(path: str | Path, *, what: str = "config file") -> tuple[Any, yaml.Node | None]:
    """A user's YAML file as JSON data plus its node tree (for lines), or a ConfigError naming file and line."""
    p = Path(path)
    return parse_yaml(read_config_bytes(p, what=what), str(p))


def parse_yaml(data: bytes, source: str) -> tuple[Any, yaml.Node | None]:
    """The hardened parse of ``load_config_yaml``, for bytes already read (the policy hashes them too)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ConfigError(note=note("not_utf8", where=f"{source}:{line}")) from None
    try:
        node = yaml.compose(text, Loader=SAFE_LOADER)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}" if mark else source
        raise ConfigError(note=note("yaml_syntax", where=where, problem=e.problem or str(e))) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: YAML error: {e}") from None
    except RecursionError:  # the pure-Python composer, without libyaml's nesting limit
        raise ConfigError(f"{source}: nested deeper than {MAX_DEPTH} levels; not a config file") from None
    if node is None:
        return None, None
    return _Builder(source, text).build(node, (), 0), node


class _Builder:
    """One walk over a composed tree: JSON data out, or the first thing that is not, with its line."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.text = text
        self.seen: set[int] = set()

    def fail(self, node: yaml.Node, path: Sequence[Any], why: str) -> ConfigError:
        where = ".".join(map(str, path))
        return ConfigError(f"{self.source}:{node.start_mark.line + 1}: {where + ': ' if where else ''}{why}")

    def build(self, node: yaml.Node, path: tuple[Any, ...], depth: int) -> Any:
        if id(node) in self.seen:
            raise self.alias_error(path)
        self.seen.add(id(node))
        if depth > MAX_DEPTH:
            raise self.fail(node, path, f"nested deeper than {MAX_DEPTH} levels; not a config file")
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node, path)
        if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
            return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP:
            return self.mapping(node, path, depth)
        raise self.fail(node, path, f"{_tag_name(node.tag)} is not accepted in a config file "
                                    "(lists and mappings of text, numbers, true/false and null only)")

    def mapping(self, node: yaml.MappingNode, path: tuple[Any, ...], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        lines: dict[str, int] = {}
        for knode, vnode in node.value:
            if id(knode) in self.seen:
                raise self.alias_error(path)
            self.seen.add(id(knode))
            if knode.tag == _MERGE:
                raise self.fail(knode, path, "YAML merge keys (<<) are not accepted in a config file: "
                                             "write the keys out")
            if not isinstance(knode, yaml.ScalarNode) or knode.tag not in _TEXT_TAGS:
                shown = repr(knode.value) if isinstance(knode, yaml.ScalarNode) else "a list or mapping"
                raise self.fail(knode, path, f"key {shown} is not text: keys are names (quote it if it is "
                                             "one: '1':, 'yes':)")
            key: str = knode.value
            line = knode.start_mark.line + 1
            if key in lines:
                raise ConfigError(note=note("duplicate_key", where=f"{self.source}:{line}",
                                            path=".".join(map(str, (*path, key))), first=lines[key]))
            lines[key] = line
            out[key] = self.build(vnode, (*path, key), depth + 1)
        return out

    def scalar(self, node: yaml.ScalarNode, path: tuple[Any, ...]) -> Any:
        tag = node.tag
        if tag in _TEXT_TAGS:
            return node.value
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return _SCALARS.construct_yaml_bool(node)
        if tag == _INT:
            try:
                return _SCALARS.construct_yaml_int(node)
            except ValueError:  # beyond int()'s digit limit
                raise self.fail(node, path, "number too long") from None
        if tag == _FLOAT:
            number = _SCALARS.construct_yaml_float(node)
            if not math.isfinite(number):
                raise self.fail(node, path, "not a finite number (.nan and .inf are not JSON numbers)")
            return number
        raise self.fail(node, path, f"{_tag_name(tag)} is not accepted in a config file "
                                    "(text, numbers, true/false and null only; quote it if it is text)")

    def alias_error(self, path: Sequence[Any]) -> ConfigError:
        """A node reached twice is an alias; find the first alias's own line (rare path: parse events again)."""
        line, name = 0, ""
        for event in yaml.parse(self.text, Loader=SAFE_LOADER):
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else 0
                name = event.anchor or ""
                break
        where = ".".join(map(str, path))
        return ConfigError(note=note("yaml_alias", where=f"{self.source}:{line}", path=where + ": " if where else "",
                                     name=name))


def _tag_name(tag: str) -> str:
    return f"YAML type !!{tag.removeprefix(_T)}" if tag.startswith(_T) else f"YAML tag {tag}"


def line_of(node: yaml.Node | None, path: Sequence[Any]) -> int | None:
    """1-based line of the value at ``path`` (keys and list indexes) in a composed YAML tree."""
    best: int | None = node.start_mark.line + 1 if node is not None else None
    for key in path:
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(key):
                    best = k.start_mark.line + 1
                    node = v
                    break
            else:
                return best
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            best = node.start_mark.line + 1
        else:
            return best
    return best


def load_schema(package: str, name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(resources.files(package).joinpath(name).read_text("utf-8"))
    return schema


def schema_errors(value: Any, schema: dict[str, Any]) -> list[Any]:
    """Every JSON Schema (2020-12) error of ``value``, in document order.

    jsonschema-rs, not the pure-Python jsonschema: importing the latter costs ~40 ms on every run that is
    given an inventory or a policy (measured here), about a tenth of a whole one-host SSH scan.
    """
    import jsonschema_rs

    errors = list(jsonschema_rs.validator_for(schema).iter_errors(value))
    return sorted(errors, key=lambda e: ([str(p) for p in e.instance_path], e.message))


def _schema_at(schema: dict[str, Any], path: Sequence[str | int]) -> Any:
    """The schema node a keyword's path leads to, following local ``$ref``s."""
    node: Any = schema
    for part in path:
        if isinstance(node, dict) and "$ref" in node and part not in node:
            node = _resolve(schema, node["$ref"])
        if part == "$ref" and isinstance(node, dict):
            node = _resolve(schema, node["$ref"])
            continue
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return None
    return node


def _resolve(schema: dict[str, Any], ref: str) -> Any:
    node: Any = schema
    for part in ref.removeprefix("#/").split("/") if ref.startswith("#/") else []:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "text"
    return "list" if isinstance(value, list) else "mapping"


def _quoted(values: Sequence[Any]) -> str:
    return ", ".join(json.dumps(v, ensure_ascii=False) for v in values)


def describe(err: Any, schema: dict[str, Any]) -> str:
    """What a schema error expects, in words built from its kind: never the user's value.

    jsonschema-rs's own message starts with the value (``"audit:Hunter2@10.0.0.5" does not match …``), and
    a value can be a secret pasted into the wrong field; the key path and the line say which value it is.
    """
    kind = err.kind
    name = kind.name
    owner = _schema_at(schema, list(err.schema_path)[:-1])
    about = f"; {owner['description']}" if isinstance(owner, dict) and owner.get("description") else ""
    limits = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "more than",
              "exclusiveMaximum": "less than"}
    sizes = {"minLength": ("at least", "characters"), "maxLength": ("at most", "characters"),
             "minItems": ("at least", "entries"), "maxItems": ("at most", "entries"),
             "minProperties": ("at least", "keys"), "maxProperties": ("at most", "keys")}
    if name == "type":
        types = " or ".join(f'"{t}"' for t in kind.types)
        return f"is not of type {types} (it is {_json_type(err.instance)}){about}"
    if name == "enum":
        return f"is not one of the accepted values: {_quoted(kind.options)}{about}"
    if name == "const":
        return f"must be {json.dumps(kind.expected_value, ensure_ascii=False)}"
    if name == "pattern":
        return f"does not have the expected form (pattern {kind.pattern}){about}"
    if name in limits:
        return f"must be {limits[name]} {kind.limit}{about}"
    if name in sizes:
        most, unit = sizes[name]
        return f"must have {most} {kind.limit} {unit}{about}"
    if name == "required":
        return f"the key {kind.property!r} is missing{about}"
    if name == "additionalProperties" and kind.unexpected:
        allowed = ", ".join(sorted(owner.get("properties", {}))) if isinstance(owner, dict) else ""
        return f"unknown key {sorted(kind.unexpected)[0]!r} (allowed here: {allowed or 'none'})"
    if name == "uniqueItems":
        return "lists the same value twice"
    return f"is not accepted here (schema keyword {name!r}){about}"


def validate(value: Any, node: yaml.Node | None, schema: dict[str, Any], source: str) -> None:
    """Check ``value`` against a JSON Schema; the first error becomes a ConfigError naming file and line."""
    errors = schema_errors(value, schema)
    if not errors:
        return
    err = errors[0]
    path = list(err.instance_path)
    line = line_of(node, path)
    where = f"{source}:{line}" if line else source
    dotted = ".".join(str(p) for p in path) or "(top level)"
    if err.kind.name == "additionalProperties" and err.kind.unexpected:
        extra = sorted(err.kind.unexpected)[0]
        line = line_of(node, [*path, extra]) or line
        where = f"{source}:{line}" if line else source
        dotted = ".".join([*map(str, path), extra])
        owner = _schema_at(schema, list(err.schema_path)[:-1])
        allowed = sorted(owner.get("properties", {})) if isinstance(owner, dict) else []
        raise ConfigError(note=note("unknown_key", where=where, key=dotted, allowed=allowed))
    raise ConfigError(f"{where}: {dotted}: {describe(err, schema)}")
