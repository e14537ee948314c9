"""One PowerShell process per scan: the parts collectors declare, run together, answered as JSON per part.

PowerShell costs 0.3-1 s to start on an office PC, so collectors never start it themselves: each declares
the *parts* it needs (``WindowsCollector.powershell_parts``, like ``reads``), the runner announces them all
(``Collector.announce``), and the first collector to ask runs every announced part in ONE
``powershell.exe -NoProfile -NonInteractive -Command -`` process; the others wait and read the cache.

The parts are fixed scripts shipped as data (``agent/targets/ps/*.ps1``). What is sent on stdin is one line
that decodes the driver (``ps/batch.ps1``) from base64 and runs it with the parameters, also base64 JSON:
nothing typed at PowerShell is ever assembled from data, and one line avoids ``-Command -``'s
line-by-line parsing of multi-line statements. Inside, each part runs in its own runspace under its own
timeout and try/catch, and answers in a frame of its own (``MAMORU-PART <nonce> <part> <status> <b64>``),
base64 so that a Japanese console code page cannot mangle it.

How the process is started is the target's business (``Runner``): ``subprocess`` on the PC itself, an
exec session over SSH, a replay program in the tests. Everything after the bytes come back (frames,
JSON, errors) is this module's, the same for all of them.

A part that timed out, failed, or answered garbage (bad base64, bad JSON, a duplicated frame, no frame at
all) is an error for the collectors that need that part only: ``PartError`` with a ``kind``.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from agent.targets.base import CommandResult, CommandTimeout, TargetError

#: The command line that starts the batch: a constant, never built from data.
POWERSHELL_ARGV = ("powershell.exe", "-NoProfile", "-NonInteractive", "-Command", "-")
#: Seconds on top of the slowest part for PowerShell to start and the frames to arrive.
STARTUP_GRACE = 20.0
MAX_OUTPUT = 16 * 1024 * 1024

#: ``runner(stdin, timeout)``: start PowerShell with ``POWERSHELL_ARGV``, feed it ``stdin``, return its output.
Runner = Callable[[bytes, float], CommandResult]


class PartError(TargetError):
    """One part of the batch has no usable answer; ``kind``: timeout, error, garbage, missing, unavailable."""

    def __init__(self, part: str, kind: str, detail: str) -> None:
        super().__init__(f"PowerShell part {part!r}: {detail}")
        self.part, self.kind, self.detail = part, kind, detail


@dataclass(frozen=True)
class PartSpec:
    name: str
    script: str
    timeout: float


@cache
def part_specs() -> dict[str, PartSpec]:
    table = json.loads(resources.files("agent.targets.ps").joinpath("parts.json").read_text("utf-8"))
    return {name: PartSpec(name, row["script"], float(row["timeout"]))
            for name, row in table.items() if not name.startswith("_")}


@cache
def _script(name: str) -> str:
    return resources.files("agent.targets.ps").joinpath(name).read_text("utf-8")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def batch_stdin(nonce: str, parts: Sequence[tuple[str, Any]]) -> bytes:
    """The one line sent to PowerShell: the driver and its base64 JSON parameters (parts with their args)."""
    specs = part_specs()
    params = {"nonce": nonce, "parts": [{"name": name, "timeout_ms": int(specs[name].timeout * 1000),
                                         "script": _b64(_script(specs[name].script)), "args": args}
                                        for name, args in parts]}
    driver = _b64(_script("batch.ps1"))
    line = (f"& ([scriptblock]::Create([Text.Encoding]::UTF8.GetString([Convert]::FromBase64String('{driver}'))))"
            f" '{_b64(json.dumps(params, separators=(',', ':')))}'\n")
    return line.encode("ascii")


def parse_frames(result: CommandResult | None, nonce: str, names: Sequence[str],
                 failure: str | None = None) -> dict[str, Any | PartError]:
    """Each requested part's JSON value, or its PartError. ``failure``: why the process itself gave no result."""
    out: dict[str, Any | PartError] = {}
    seen: set[str] = set()
    ended = False
    text = result.stdout.decode("ascii", "replace") if result is not None else ""
    for line in text.splitlines():
        fields = line.split(" ")
        if len(fields) == 2 and fields == ["MAMORU-END", nonce]:
            ended = True
            continue
        if len(fields) != 5 or fields[0] != "MAMORU-PART" or fields[1] != nonce:
            continue  # a profile's or a stand-in's chatter is never a frame (the nonce is random per batch)
        name, status, payload = fields[2], fields[3], fields[4]
        if name not in names:
            continue
        if name in seen:  # two answers for one part: trust neither
            out[name] = PartError(name, "garbage", "answered twice")
            continue
        seen.add(name)
        try:
            body = base64.b64decode(payload, validate=True).decode("utf-8")
        except (binascii.Error, ValueError) as e:
            out[name] = PartError(name, "garbage", f"undecodable frame ({e})")
            continue
        if status == "timeout":
            out[name] = PartError(name, "timeout", "did not answer within its timeout")
        elif status == "error":
            # PowerShell's message may be localized prose: shown to the user, never parsed.
            out[name] = PartError(name, "error", body.strip()[:500] or "failed")
        elif status == "ok":
            try:
                out[name] = json.loads(body)
            except ValueError as e:
                out[name] = PartError(name, "garbage", f"not JSON ({e})")
        else:
            out[name] = PartError(name, "garbage", f"unknown status {status[:40]!r}")
    for name in names:
        if name in out:
            continue
        if failure is not None:
            out[name] = PartError(name, "timeout" if "timeout" in failure else "error", failure)
        elif result is not None and not ended:
            err = result.stderr.decode("utf-8", "replace").strip().splitlines()
            out[name] = PartError(name, "missing", f"PowerShell stopped before this part answered (exit code "
                                  f"{result.returncode}{': ' + err[0][:200] if err else ''})")
        else:
            out[name] = PartError(name, "missing", "no answer for this part")
    return out


class PowerShellBatch:
    """One target's PowerShell parts: announced by collectors, run once in one process, cached per part."""

    def __init__(self, runner: Runner, *, where: str) -> None:
        self._runner = runner
        self.where = where  # "local", "ssh (cmd.exe)", ... for evidence
        self._lock = threading.Lock()
        self._wanted: dict[str, None] = {}
        self._reg_wanted: dict[str, Any] = {}
        self._results: dict[str, Any | PartError] = {}
        self._registry: dict[str, Any | PartError] = {}  # one entry per query (JSON key), its answers
        self.runs = 0

    def want(self, parts: Iterable[str] = (), registry: Iterable[dict[str, Any]] = ()) -> None:
        """Announce parts (and registry queries) to run together in the first batch; a hint, never raises."""
        specs = part_specs()
        with self._lock:
            for p in parts:
                if p in specs and p != "registry":
                    self._wanted.setdefault(p)
            for q in registry:
                self._reg_wanted.setdefault(json.dumps(q, sort_keys=True), q)

    def part(self, name: str) -> Any:
        """The part's JSON value; raises PartError for a failed, timed-out or garbled part."""
        if name not in part_specs() or name == "registry":
            raise PartError(name, "unavailable", "no such part")
        with self._lock:
            if name not in self._results:
                self._wanted.setdefault(name)
                self._run_locked()
            value = self._results[name]
        if isinstance(value, PartError):
            raise value
        return value

    def registry(self, queries: Sequence[dict[str, Any]]) -> tuple[list[Any], list[Any | PartError]]:
        """(users, one answer list or PartError per query) from the registry part."""
        keys = [json.dumps(q, sort_keys=True) for q in queries]
        with self._lock:
            for k, q in zip(keys, queries, strict=True):
                if k not in self._registry:
                    self._reg_wanted.setdefault(k, q)
            if any(k not in self._registry for k in keys):
                self._run_locked()
            users = self._registry.get("__users__")
            return (users if isinstance(users, list) else []), [self._registry[k] for k in keys]

    def _run_locked(self) -> None:
        names = [n for n in self._wanted if n not in self._results]
        reg_keys = [k for k in self._reg_wanted if k not in self._registry]
        parts: list[tuple[str, Any]] = [(n, None) for n in names]
        if reg_keys:
            parts.append(("registry", {"queries": [self._reg_wanted[k] for k in reg_keys]}))
        if not parts:
            return
        nonce = secrets.token_hex(8)
        timeout = max(part_specs()[n].timeout for n, _ in parts) + STARTUP_GRACE
        result: CommandResult | None = None
        failure: str | None = None
        self.runs += 1
        try:
            result = self._runner(batch_stdin(nonce, parts), timeout)
        except CommandTimeout:
            failure = f"timeout: the PowerShell process did not finish within {timeout:g} s"
        except TargetError as e:
            failure = f"PowerShell could not be run: {e}"
        answers = parse_frames(result, nonce, [n for n, _ in parts], failure)
        for n in names:
            self._results[n] = answers[n]
        if reg_keys:
            self._store_registry(reg_keys, answers["registry"])

    def _store_registry(self, keys: list[str], value: Any | PartError) -> None:
        if isinstance(value, PartError):
            for k in keys:
                self._registry[k] = value
            return
        answers = value.get("answers") if isinstance(value, dict) else None
        users = value.get("users") if isinstance(value, dict) else None
        if not isinstance(answers, list) or not isinstance(users, list):
            bad = PartError("registry", "garbage", "the answer has no 'answers' and 'users' lists")
            for k in keys:
                self._registry[k] = bad
            return
        self._registry["__users__"] = users
        for i, k in enumerate(keys):
            self._registry[k] = [a for a in answers if isinstance(a, dict) and a.get("query") == i]
