"""Windows' listening sockets (TX-02), in the shape the Linux ``listening`` collector gives.

They come from the ``listening`` part of the PowerShell batch (``agent/targets/ps/listening.ps1``):
``Get-NetTCPConnection`` rows in state 2 (Listen), every ``Get-NetUDPEndpoint`` (UDP has no state: a bound
endpoint receives), and the owning process' name from ``Get-Process``. Facts are ``endpoints`` of
``{address, port, proto, process}``, so ``checks/transfer.py`` judges Linux and Windows with the same rules.

An offline image has no sockets: the facts say so (``no_running_system``) and TX-02 is not applicable with
that reason, never a pass. An answer of the
wrong shape or types is refused as a whole: half a socket list could hide the one that matters.
"""

from __future__ import annotations

import contextlib
import ipaddress
from typing import Any

from agent.targets.base import Target, TargetError
from collectors.base import CollectorError, Facts
from collectors.windows.live import live_part

PART = "listening"
TCP_LISTEN = 2  # MSFT_NetTCPConnection.State: 2 = Listen
SOURCE = "Get-NetTCPConnection/Get-NetUDPEndpoint"


def _int(v: Any, lo: int, hi: int) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi else None


def _row(row: Any, proto: str, where: str) -> tuple[str, int, int]:
    """(address, port, owning pid) of one row; ValueError when a field is missing or of the wrong type."""
    if not isinstance(row, dict):
        raise ValueError(f"{where}: not an object")
    address, port, pid = row.get("LocalAddress"), _int(row.get("LocalPort"), 0, 65535), \
        _int(row.get("OwningProcess"), 0, 2**32 - 1)
    if not isinstance(address, str) or port is None or pid is None:
        raise ValueError(f"{where}: LocalAddress, LocalPort or OwningProcess missing or of the wrong type")
    try:
        ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError as e:
        raise ValueError(f"{where}: LocalAddress {address[:60]!r} is not an IP address") from e
    if proto == "tcp" and _int(row.get("State"), 0, 255) is None:
        raise ValueError(f"{where}: State missing or not a number")
    return address, port, pid


def parse(value: Any) -> list[dict[str, Any]]:
    """The listening endpoints of the part's answer; ValueError for anything else."""
    if not isinstance(value, dict):
        raise ValueError("the answer is not an object")
    tcp, udp, procs = value.get("tcp"), value.get("udp"), value.get("processes")
    if not isinstance(tcp, list) or not isinstance(udp, list) or not isinstance(procs, list):
        raise ValueError("the answer has no 'tcp', 'udp' and 'processes' lists")
    names: dict[int, str] = {}
    for i, p in enumerate(procs):
        pid = _int(p.get("Id"), 0, 2**32 - 1) if isinstance(p, dict) else None
        name = p.get("ProcessName") if isinstance(p, dict) else None
        if pid is None or not isinstance(name, str):
            raise ValueError(f"processes[{i}]: Id or ProcessName missing or of the wrong type")
        names[pid] = name
    rows: list[tuple[str, int, str, int]] = []
    for proto, table in (("tcp", tcp), ("udp", udp)):
        for i, row in enumerate(table):
            address, port, pid = _row(row, proto, f"{proto}[{i}]")
            if proto == "tcp" and row["State"] != TCP_LISTEN:
                continue
            rows.append((address, port, proto, pid))
    seen: set[tuple[str, int, str, str | None]] = set()
    endpoints = []
    for address, port, proto, pid in sorted(rows, key=lambda r: (r[2], r[1], r[0])):
        # pid 4 is the kernel ("System": SMB on 445, HTTP.sys on 80): Get-Process names it too.
        process = names.get(pid)
        key = (address, port, proto, process)
        if key in seen:
            continue
        seen.add(key)
        endpoints.append({"address": address, "port": port, "proto": proto, "process": process})
    return endpoints


def collect(target: Target) -> Facts:
    """The ``listening`` facts of a Windows target (live), or CollectorError saying why there are none."""
    value, err, via = live_part(target, PART)
    if via is None:  # not an error of the scan: an image simply has no sockets (TX-02: not applicable, says why)
        return {"endpoints": [], "source": SOURCE, "via": None, "processes_hidden": 0,
                "no_running_system": "an offline Windows image has no running system, so no listening sockets"}
    if err is not None:
        raise CollectorError(f"the listening sockets could not be read ({err['kind']}: {err['message']})")
    try:
        endpoints = parse(value)
    except ValueError as e:
        raise CollectorError(f"PowerShell part 'listening' answered garbage: {e}") from e
    hidden = sum(1 for e in endpoints if e["process"] is None)
    return {"endpoints": endpoints, "source": SOURCE, "via": via, "processes_hidden": hidden}


def announce(target: Target) -> None:
    """Ask for the part in the scan's one PowerShell batch (nothing on targets without PowerShell)."""
    with contextlib.suppress(TargetError):
        target.powershell().want((PART,))
