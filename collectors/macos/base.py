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
    except CommandUnavailable as e:  # the tool is not there (an older release), or nothing runs on this target
        prob = problem("not_found", tool=argv[0]) if str(e).endswith("command not found") else unreadable(e)
        return {"source": source, "status": "missing", "problem": prob}
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


def read_plist(target: Target, path: str, keep: Sequence[str] | None = None, *,
               max_bytes: int = MAX_PLIST) -> Answer:
    """A plist file: ``missing`` when it does not exist (nothing installed it), ``error`` when unreadable.

    ``keep``: the only top-level keys the facts keep (a dict is expected then). A preferences file may hold
    anything a vendor put there, tokens included; a collector keeps the settings it judges and no more."""
    try:
        data = target.read_file(path, max_bytes=max_bytes)
    except FileMissing:
        return {"source": path, "status": "missing"}
    except TargetError as e:
        return {"source": path, "status": "error", "problem": unreadable(e)}
    try:
        value = parse_plist(data, path)
    except Problem as p:
        return {"source": path, "status": "error", "problem": p.problem}
    if keep is not None:
        if not isinstance(value, dict):
            return {"source": path, "status": "error",
                    "problem": problem("wrong_type", where=path, setting="/", type=type(value).__name__)}
        value = {k: value[k] for k in keep if k in value}
    return {"source": path, "status": "ok", "value": jsonable(value)}


def managed_preferences(target: Target, domain: str, keep: Sequence[str]) -> list[Answer]:
    """The managed-preferences layer of ``domain``: the computer-level file, then each user's.

    A profile scoped to the computer lands in ``/Library/Managed Preferences/<domain>.plist``; one scoped
    to a user in ``/Library/Managed Preferences/<user>/<domain>.plist``. Only existing files are returned
    after the computer-level answer (which is always there, ``missing`` or not)."""
    found = [read_plist(target, posixpath.join(MANAGED, f"{domain}.plist"), keep)]
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
        answer = read_plist(target, path, keep)
        if answer["status"] != "missing":
            found.append(answer)
    return found


def value_of(answer: Answer) -> Any:
    """The parsed value of an ``ok`` answer, else None."""
    return answer.get("value") if answer["status"] == "ok" else None


SYSTEM_VERSION = "/System/Library/CoreServices/SystemVersion.plist"


def release(target: Target) -> Answer:
    """The macOS release (``ProductVersion``, e.g. "14.5"), read once per target from SystemVersion.plist.

    Which tool exists depends on it (``xprotect`` from 15, ``sysadminctl -screenLock`` from 10.13); the
    collectors still ask the tool and record ``missing`` when it is not there, so the release explains an
    answer and never replaces one."""
    return target.shared("macos-release", lambda: read_plist(target, SYSTEM_VERSION))


def major(answer: Answer) -> int | None:
    """The major release number of a ``release`` answer (14 for "14.5", 10 for "10.15.7"), or None."""
    v = value_of(answer)
    version = v.get("ProductVersion") if isinstance(v, dict) else None
    if not isinstance(version, str):
        return None
    head = version.split(".")[0]
    return int(head) if head.isdigit() else None


def lines(res: CommandResult) -> list[str]:
    """A tool's answer as stripped, non-empty lines."""
    return [ln.strip() for ln in text(res).splitlines() if ln.strip()]


def unknown_answer(tool: str, res: CommandResult) -> Problem:
    """An answer no parser recognises: an error with the start of what the tool said (never a default)."""
    return Problem("unknown_answer", tool=tool, output=text(res).strip()[:200])
