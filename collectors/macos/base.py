"""What every macOS collector shares: one answer per tool run or plist read, with its status and problem.

An ``Answer`` says what was asked (``source``: the argv or the path), whether it was answered (``ok``),
does not exist there (``missing``: a tool an older release lacks, a managed-preferences file no profile
installed) or could not be read or understood (``error``, with a problem code). Judges tell "not configured"
from "could not be read" by the status alone, so a tool that failed is never mistaken for a setting that is
off. Outputs are capped (a 1 MiB answer from ``fdesetup`` is an attack or an accident, never parsed).
"""

from __future__ import annotations

import json
import plistlib
import posixpath
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal, NotRequired, TypedDict

from agent.targets.base import CommandResult, CommandUnavailable, FileMissing, Target, TargetError
from collectors.base import Collector
from collectors.problems import Problem, problem, tool_failed, unreadable

#: Every answer of a macOS tool is small; more than this is refused, not parsed.
MAX_OUTPUT = 1024 * 1024
MAX_PLIST = 4 * 1024 * 1024
TIMEOUT = 20.0
#: Where configuration profiles (MDM or installed by hand) put the settings they enforce, per domain:
#: computer-level first, then per user. mSCP reads the same layer through NSUserDefaults/``objectForKey``.
MANAGED = "/Library/Managed Preferences"

Status = Literal["ok", "missing", "error"]


class Answer(TypedDict):
    """One tool run or plist read, as facts keep it."""

    source: str
    status: Status
    value: NotRequired[Any]
    exit: NotRequired[int]
    problem: NotRequired[dict[str, Any]]


class MacCollector(Collector):
    platforms: ClassVar[frozenset[str]] = frozenset({"darwin"})
    #: Several tools in a row over SSH (each one round trip): more than a single file read.
    timeout: ClassVar[float] = 60.0


def _shown(argv: Sequence[str]) -> str:
    return " ".join(argv)


def output(res: CommandResult) -> bytes:
    """stdout, or stderr when stdout is empty: some Apple tools (sysadminctl) log their answer to stderr."""
    return res.stdout if res.stdout.strip() else res.stderr


def text(res: CommandResult) -> str:
    """A tool's answer as text (UTF-8; a byte that is not is replaced, never fatal)."""
    return output(res).decode("utf-8", "replace")


def parse_plist(data: bytes, where: str) -> Any:
    """A property list (XML or binary), or Problem ``plist_garbage``; never an XML entity expanded."""
    try:
        return plistlib.loads(data)
    except Exception as e:  # plistlib raises InvalidFileException, ExpatError, ValueError, ...
        raise Problem("plist_garbage", where=where, detail=type(e).__name__) from e


def parse_json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise Problem("json_garbage", where=where, detail=type(e).__name__) from e


def jsonable(value: Any) -> Any:
    """A plist value as JSON facts keep it: dates as ISO text, data as its length (never its bytes)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return {"data_bytes": len(value)}
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN cannot be saved in a bundle
        return None
    return value


def run_tool(target: Target, argv: Sequence[str], parse: Callable[[CommandResult], Any], *,
             ok_exit: Sequence[int] = (0,), timeout: float = TIMEOUT) -> Answer:
    """Run ``argv`` (never a shell string) and parse its answer; every failure is a status, never a raise.

    ``parse`` gets the whole result (some tools answer on stderr, some by exit code) and raises ``Problem``
    for an answer it does not recognise: an unknown answer is an error, never a default."""
    source = _shown(argv)
    try:
        res = target.run(list(argv), timeout=timeout, max_output=MAX_OUTPUT)
    except CommandUnavailable as e:
        return {"source": source, "status": "missing", "problem": unreadable(e)}
    except TargetError as e:
        return {"source": source, "status": "error", "problem": unreadable(e)}
    if res.truncated:
        return {"source": source, "status": "error", "exit": res.returncode,
                "problem": problem("too_long", tool=source, cap=MAX_OUTPUT)}
    if res.returncode == 127 and not res.stdout.strip():  # the shell's "command not found"
        return {"source": source, "status": "missing", "exit": 127,
                "problem": problem("not_found", tool=argv[0])}
    if res.returncode not in ok_exit:
        return {"source": source, "status": "error", "exit": res.returncode,
                "problem": tool_failed(source, res.returncode, text(res))}
    try:
        value = parse(res)
    except Problem as p:
        return {"source": source, "status": "error", "exit": res.returncode, "problem": p.problem}
    return {"source": source, "status": "ok", "exit": res.returncode, "value": jsonable(value)}


def read_plist(target: Target, path: str) -> Answer:
    """A plist file: ``missing`` when it does not exist (nothing installed it), ``error`` when unreadable."""
    try:
        data = target.read_file(path, max_bytes=MAX_PLIST)
    except FileMissing:
        return {"source": path, "status": "missing"}
    except TargetError as e:
        return {"source": path, "status": "error", "problem": unreadable(e)}
    try:
        return {"source": path, "status": "ok", "value": jsonable(parse_plist(data, path))}
    except Problem as p:
        return {"source": path, "status": "error", "problem": p.problem}


def managed_preferences(target: Target, domain: str) -> list[Answer]:
    """The managed-preferences layer of ``domain``: the computer-level file, then each user's.

    A profile scoped to the computer lands in ``/Library/Managed Preferences/<domain>.plist``; one scoped
    to a user in ``/Library/Managed Preferences/<user>/<domain>.plist``. Only existing files are returned
    after the computer-level answer (which is always there, ``missing`` or not)."""
    found = [read_plist(target, posixpath.join(MANAGED, f"{domain}.plist"))]
    try:
        names = target.list_dir(MANAGED)
    except FileMissing:
        return found
    except TargetError as e:
        found.append({"source": MANAGED, "status": "error", "problem": unreadable(e)})
        return found
    for name in names:
        if name.endswith(".plist") or name.startswith("."):
            continue
        path = posixpath.join(MANAGED, name, f"{domain}.plist")
        answer = read_plist(target, path)
        if answer["status"] != "missing":
            found.append(answer)
    return found


def value_of(answer: Answer) -> Any:
    """The parsed value of an ``ok`` answer, else None."""
    return answer.get("value") if answer["status"] == "ok" else None
