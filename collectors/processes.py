"""Running processes, read from ``/proc`` through the target.

``/proc`` is read as files rather than through psutil so that the same code
works locally, over SSH and in any other target that can read files. A
directory (``rootfs``) has no processes: its ``/proc`` is empty or, worse, the
scanning host's own, so the collector refuses instead of inventing a process
list. A ``/proc`` mounted with ``hidepid`` shows a non-root reader only its own
processes; the facts say so, and checks then cannot conclude that a daemon is
absent.
"""

from __future__ import annotations

from typing import Any

from agent.targets.base import FileMissing, Target, TargetError
from collectors.base import Collector, CollectorError, Facts

MAX_PROCESSES = 65536
MAX_CMDLINE = 64 * 1024


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def read_process(target: Target, pid: int) -> dict[str, Any] | None:
    """One process, or None when it exited while being read (a race, not an error)."""
    base = f"/proc/{pid}"
    try:
        comm = _text(target.read_file(f"{base}/comm", max_bytes=4096)).rstrip("\n")
        raw = target.read_file(f"{base}/cmdline", max_bytes=MAX_CMDLINE)
    except FileMissing:
        return None
    except TargetError:
        return None  # a process we may not read is one we cannot describe; it is counted below
    cmdline = [_text(a) for a in raw.split(b"\0")]
    if cmdline and cmdline[-1] == "":
        cmdline.pop()
    try:
        exe: str | None = target.readlink(f"{base}/exe")
    except TargetError:
        exe = None  # kernel threads have none; other users' processes are unreadable without root
    return {"pid": pid, "comm": comm, "exe": exe, "cmdline": cmdline}


def _hidepid(target: Target) -> bool:
    try:
        mounts = _text(target.read_file("/proc/mounts", max_bytes=1 << 20))
    except TargetError:
        return False
    hidden = False
    for line in mounts.splitlines():  # the last mount on /proc is the one that is seen
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "/proc" and parts[2] == "proc":
            opts = dict(o.partition("=")[::2] for o in parts[3].split(","))
            hidden = opts.get("hidepid", "0") not in ("0", "off")
    return hidden


def _viewer_uid(target: Target) -> int | None:
    try:
        status = _text(target.read_file("/proc/self/status", max_bytes=65536))
    except TargetError:
        return None
    for line in status.splitlines():
        if line.startswith("Uid:"):
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                return int(fields[2])  # effective uid
    return None


def restricted(target: Target) -> bool:
    """With hidepid, a non-root reader sees only its own processes: an absent daemon proves nothing."""
    return _hidepid(target) and _viewer_uid(target) != 0


def list_processes(target: Target) -> list[dict[str, Any]]:
    """Every process visible on the target, read once per target for all the collectors that ask.

    Raises CollectorError where processes cannot be seen. The list is shared: callers must not change it.
    """
    return target.shared("processes", lambda: _read_processes(target))


def _read_processes(target: Target) -> list[dict[str, Any]]:
    if not target.can_run:
        raise CollectorError("no /proc on this target: a directory has no running processes")
    try:
        names = target.list_dir("/proc")
    except TargetError as e:
        raise CollectorError(f"no /proc on this target ({e})") from e
    pids = sorted(int(n) for n in names if n.isdigit())
    if not pids:
        raise CollectorError("no /proc on this target (empty)")
    if len(pids) > MAX_PROCESSES:
        raise CollectorError(f"{len(pids)} processes: more than the {MAX_PROCESSES} this collector reads")
    target.prefetch(f"/proc/{pid}/{name}" for pid in pids for name in ("comm", "cmdline"))
    target.prefetch((f"/proc/{pid}/exe" for pid in pids), op="readlink")
    out = []
    for pid in pids:
        proc = read_process(target, pid)
        if proc is not None:
            out.append(proc)
    return out


def find(processes: list[dict[str, Any]], names: set[str] | frozenset[str]) -> list[dict[str, Any]]:
    """Processes whose name, executable or argv[0] basename is one of ``names``.

    ``comm`` is cut to 15 characters by the kernel (``systemd-journal``), so the
    executable path and argv[0] are matched too.
    """
    hits = []
    for p in processes:
        candidates = {p["comm"]}
        if p.get("exe"):
            candidates.add(p["exe"].rsplit("/", 1)[-1].removesuffix(" (deleted)"))
        if p.get("cmdline"):
            first = p["cmdline"][0].split()[0] if p["cmdline"][0].split() else ""
            candidates.add(first.rsplit("/", 1)[-1].rstrip(":"))
        if candidates & names:
            hits.append(p)
    return hits


class ProcessesCollector(Collector):
    id = "processes"
    version = "1"

    def collect(self, target: Target) -> Facts:
        processes = list_processes(target)
        return {
            "processes": [dict(p) for p in processes],  # the facts own their copy of the shared table
            "restricted": restricted(target),
            "viewer_uid": _viewer_uid(target),
        }


COLLECTOR = ProcessesCollector()
