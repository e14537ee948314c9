"""A Mac replayed from recorded outputs: a Target whose ``run`` and ``read_file`` answer from a fixture case.

No Mac exists here, so the lowest boundary is faked and nothing above it: collectors call ``target.run(argv)``
and ``target.read_file(path)`` exactly as on a Mac, and this target answers from
``tests/fixtures/macos/<case>/case.yaml`` (sources of every output in ``tests/fixtures/macos/README.md``)::

    extends: sonoma            # optional: start from another case's commands and files
    platform: {hostname: mac01, version: "14.5"}
    commands:                  # argv (exact) -> what the tool printed; anything else: "command not found"
      - argv: [/usr/bin/fdesetup, status]
        stdout: outputs/fdesetup/on.txt     # a file under tests/fixtures/macos/ (or stdout_text: "...")
        stderr_text: ""
        exit: 0
      - argv: [/usr/bin/xprotect, version]
        missing: true          # the tool does not exist on this release
    files:                     # absolute path on the Mac -> where its bytes come from; anything else: no such file
      /Library/Preferences/com.apple.alf.plist: {plist: {globalstate: 1}}        # written as a binary plist
      /Library/Managed Preferences/com.apple.screensaver.plist:
        {corpus: macos/profiledocs__com.apple.screensaver.mobileconfig, key: screensaver}
      /x/Info.plist: {file: outputs/xprotect/Info.plist}

``corpus`` files are read from ``/work/shared/corpus`` at test time (never copied): a configuration profile
becomes the managed-preferences plist macOS writes when it installs it (the payload of ``payload_type``, or
the dict under ``key``, without the ``Payload*`` keys). A command or file the case does not record raises
``CommandUnavailable`` / ``FileMissing`` as a real target does; ``calls`` records what was asked.
"""

from __future__ import annotations

import datetime as dt
import plistlib
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from agent.targets.base import (
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_OUTPUT_BYTES,
    CommandResult,
    CommandUnavailable,
    FileMissing,
    FileStat,
    FileTooLarge,
    PlatformInfo,
    Target,
)
from tests.conftest import require_corpus

ROOT = Path(__file__).resolve().parent / "fixtures" / "macos"


def managed_plist_from_profile(profile: bytes, *, payload_type: str | None = None, key: str | None = None) -> bytes:
    """What installing ``profile`` writes to /Library/Managed Preferences/<domain>.plist: the payload's keys."""
    doc = plistlib.loads(profile)
    if key is not None:
        payload = doc[key]
    else:
        payload = next(p for p in doc["PayloadContent"] if p.get("PayloadType") == payload_type)
    settings = {k: v for k, v in payload.items() if not k.startswith("Payload")}
    return plistlib.dumps(settings, fmt=plistlib.FMT_BINARY)


class Case:
    """One fixture case, with what it extends folded in."""

    def __init__(self, name: str) -> None:
        self.name = name
        data = yaml.safe_load((ROOT / name / "case.yaml").read_text("utf-8")) or {}
        base = Case(data["extends"]) if data.get("extends") else None
        self.platform: dict[str, Any] = {**(base.platform if base else {}), **(data.get("platform") or {})}
        self.commands: dict[tuple[str, ...], dict[str, Any]] = dict(base.commands) if base else {}
        for c in data.get("commands") or []:
            self.commands[tuple(str(a) for a in c["argv"])] = c
        self.files: dict[str, dict[str, Any] | None] = dict(base.files) if base else {}
        self.files.update(data.get("files") or {})
        self.files = {p: spec for p, spec in self.files.items() if spec is not None}  # null: gone in this case


def _bytes(spec: dict[str, Any], stem: str) -> bytes:
    if f"{stem}_text" in spec:
        return str(spec[f"{stem}_text"]).encode("utf-8")
    if stem in spec:
        return (ROOT / spec[stem]).read_bytes()
    return b""


def _naive_utc(value: Any) -> Any:
    """YAML times are aware; a plist <date> is UTC without a zone (plistlib refuses aware ones)."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, dict):
        return {k: _naive_utc(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_naive_utc(v) for v in value]
    return value


def file_bytes(spec: dict[str, Any]) -> bytes:
    if "plist" in spec:
        return plistlib.dumps(_naive_utc(spec["plist"]), fmt=plistlib.FMT_BINARY)
    if "file" in spec:
        return (ROOT / spec["file"]).read_bytes()
    if "text" in spec:
        return str(spec["text"]).encode("utf-8")
    if "corpus" in spec:
        raw = require_corpus(*spec["corpus"].split("/")).read_bytes()
        if "payload_type" in spec or "key" in spec:
            return managed_plist_from_profile(raw, payload_type=spec.get("payload_type"), key=spec.get("key"))
        return raw
    raise ValueError(f"file spec {spec!r} names no source")


class ReplayTarget(Target):
    """A Mac as a recorded case shows it (see the module docstring)."""

    kind = "replay"

    def __init__(self, case: str) -> None:
        super().__init__(f"replay:macos/{case}")
        self.case = Case(case)
        self.calls: list[tuple[str, ...]] = []
        self.reads: list[str] = []

    def platform(self) -> PlatformInfo:
        p = self.case.platform
        return PlatformInfo(system="darwin", hostname=str(p.get("hostname", "mac")), distro="macOS",
                            version=str(p.get("version", "")))

    def run(self, argv: Sequence[str], *, timeout: float = DEFAULT_COMMAND_TIMEOUT,
            max_output: int = DEFAULT_MAX_OUTPUT_BYTES, stdin: bytes | None = None) -> CommandResult:
        key = tuple(argv)
        self.calls.append(key)
        spec = self.case.commands.get(key)
        if spec is None or spec.get("missing"):
            raise CommandUnavailable(f"{argv[0]}: command not found")
        out, err = _bytes(spec, "stdout"), _bytes(spec, "stderr")
        truncated = len(out) > max_output or len(err) > max_output
        return CommandResult(argv=key, returncode=int(spec.get("exit", 0)), stdout=out[:max_output],
                             stderr=err[:max_output], truncated=truncated)

    def _file(self, path: str) -> bytes:
        spec = self.case.files.get(path)
        if spec is None:
            raise FileMissing(f"{path}: no such file")
        return file_bytes(spec)

    def read_file(self, path: str, *, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
        self.reads.append(path)
        data = self._file(path)
        if len(data) > max_bytes:
            raise FileTooLarge(f"{path}: {len(data)} bytes, larger than the {max_bytes}-byte cap")
        return data

    def _children(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return sorted({p[len(prefix):].split("/")[0] for p in self.case.files if p.startswith(prefix)})

    def list_dir(self, path: str) -> list[str]:
        names = self._children(path)
        if not names:
            raise FileMissing(f"{path}: no such directory")
        return names

    def stat(self, path: str) -> FileStat | None:
        if path in self.case.files:
            spec = self.case.files[path] or {}
            when = spec.get("mtime", 0.0)
            mtime = when.replace(tzinfo=when.tzinfo or dt.UTC).timestamp() if isinstance(when, dt.datetime) else float(when)
            return FileStat(mode=stat.S_IFREG | 0o644, uid=0, gid=0, size=len(self._file(path)), mtime=mtime)
        if self._children(path):
            return FileStat(mode=stat.S_IFDIR | 0o755, uid=0, gid=0, size=0, mtime=0.0)
        return None


def cases() -> list[str]:
    """Every recorded case (a folder with a case.yaml)."""
    return sorted(p.parent.name for p in ROOT.glob("*/case.yaml"))
