"""Which configuration file a running daemon actually uses.

Auditing ``/etc/rsyslog.conf`` says little if rsyslogd was started with
``-f /srv/other.conf``: the evidence must be the file the daemon reads. This
finds daemons by name in the target's process table (read once per scan and
shared with the ``processes`` collector) and takes the config path from their
argv, relative paths resolved against the daemon's cwd.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from typing import Any

from agent.targets.base import Target, TargetError
from collectors.base import CollectorError
from collectors.processes import list_processes


def find_daemons(target: Target, names: set[str]) -> list[dict[str, Any]]:
    """Running processes whose comm is in ``names`` (pid, comm, exe, cmdline); [] where /proc cannot be read.

    Taken from the target's one shared process table (``list_processes``), so every collector sees the same
    processes and /proc is walked once per scan, not once per daemon looked for.
    """
    if not target.can_run:
        return []
    try:
        procs = list_processes(target)
    except CollectorError:
        return []
    return [dict(p) for p in procs if p["comm"] in names]


def option_value(argv: Sequence[str], short: str | None, long: str | None) -> str | None:
    """The value of ``-c FILE``, ``-cFILE``, ``--config-file=FILE`` or ``--config-file FILE`` in argv."""
    args = list(argv[1:])
    for i, a in enumerate(args):
        if long and a == long and i + 1 < len(args):
            return args[i + 1]
        if long and a.startswith(long + "="):
            return a.split("=", 1)[1]
        if short and a == short and i + 1 < len(args):
            return args[i + 1]
        if short and a.startswith(short) and len(a) > len(short) and not a.startswith("--"):
            return a[len(short):]
    return None


def config_path(target: Target, proc: dict[str, Any], short: str | None, long: str | None,
                default: str) -> str:
    """The config file a daemon reads: its option if given (absolute, via its cwd), else the default."""
    value = option_value(proc.get("cmdline") or [], short, long)
    if not value:
        return default
    if value.startswith("/"):
        return posixpath.normpath(value)
    try:
        cwd = target.readlink(f"/proc/{proc['pid']}/cwd")
    except TargetError:
        cwd = "/"
    return posixpath.normpath(posixpath.join(cwd, value))
