#!/usr/bin/python3
"""Stand-ins for what cannot exist here: Windows' command shell and ``powershell.exe`` (stdlib only).

Two roles, chosen by the first argument:

``shell``       the login shell of a test user on the loopback sshd (sshd runs every command as
                ``<shell> -c <command>``). It behaves as Windows' OpenSSH default shell does, as far as mamoru
                can see: cmd.exe or PowerShell (``MAMORU_STANDIN_SHELL``) expanding the platform probe
                (``agent/targets/ssh_windows.py``) the way that shell would, finding ``powershell.exe`` on
                PATH (put first by sshd ``SetEnv``) for the batch, exec'ing the real sftp-server for the SFTP
                subsystem, and refusing anything else as cmd.exe does (``sh -s`` included). This is the seam
                that makes platform detection see "windows": the probe's answer, nothing else.
``powershell``  ``powershell.exe``: checks that it was started as ``-NoProfile -NonInteractive -Command -``
                and that stdin is exactly the shipped driver (``agent/targets/ps/batch.ps1``) and part scripts
                (compared byte for byte with the files in ``MAMORU_PS_SCRIPTS``), then REPLAYS the parts'
                answers from the fixture ``MAMORU_PS_FIXTURE`` in the driver's frame format. The registry part
                is answered from the fixture's ``registry`` store the way ``registry.ps1`` reads keys.

Fixture (JSON): ``parts.<name>`` is one of ``{"ok": value}``, ``{"error": message}``, ``{"timeout": true}``,
``{"raw": payload}`` (a frame whose payload is sent as given: garbage), ``{"hang": seconds}`` (the part
never answers: the process sleeps). ``crash_after`` (number of frames, then exit 1 without the end marker),
``chatter`` (text printed before the frames, as a console might). Strings ``"@days_ago:N"`` become the ISO
date N days before now (dates relative to the test run); ``"@base64:utf-16-le-bom:TEXT"`` and
``"@base64:utf-8:TEXT"`` the base64 of TEXT as a file in that encoding (what the secedit/auditpol parts
send). Every invocation is logged to ``MAMORU_PS_LOG``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import sys
import time
from typing import Any

PROBE = "echo %OS% %COMPUTERNAME% %SystemDrive% $env:OS $env:COMPUTERNAME $env:SystemDrive"
POWERSHELL = "powershell.exe -NoProfile -NonInteractive -Command -"
SFTP_SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server")


def shell(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "-c":
        print("interactive logins are not emulated", file=sys.stderr)
        return 1
    command = argv[1]
    kind = os.environ.get("MAMORU_STANDIN_SHELL", "cmd")
    name = os.environ.get("MAMORU_STANDIN_COMPUTERNAME", "PC01")
    drive = os.environ.get("MAMORU_STANDIN_SYSTEMDRIVE", "C:")
    if command == PROBE:
        if kind == "cmd":  # %VAR% expanded, $env:VAR left as typed
            print(f"Windows_NT {name} {drive} $env:OS $env:COMPUTERNAME $env:SystemDrive")
        else:  # PowerShell: echo = Write-Output, one argument per line; %VAR% is not syntax
            print(f"%OS%\n%COMPUTERNAME%\n%SystemDrive%\nWindows_NT\n{name}\n{drive}")
        return 0
    if command in SFTP_SERVERS:
        os.execv(command, [command])
    words = command.split()
    if command == POWERSHELL:
        for d in os.environ.get("PATH", "").split(os.pathsep):
            exe = os.path.join(d, words[0])
            if os.access(exe, os.X_OK):
                os.execv(exe, words)
    # cmd.exe's words (English here; mamoru never reads them)
    print(f"'{words[0] if words else ''}' is not recognized as an internal or external command,\r\n"
          "operable program or batch file.", file=sys.stderr)
    return 1


def _render(v: Any) -> Any:
    if isinstance(v, str) and (m := re.fullmatch(r"@base64:(utf-16-le-bom|utf-8):(.*)", v, re.S)):  # a file's bytes
        raw = (b"\xff\xfe" + m.group(2).encode("utf-16-le")) if m.group(1) == "utf-16-le-bom" else m.group(2).encode()
        return base64.b64encode(raw).decode("ascii")
    if isinstance(v, str) and (m := re.fullmatch(r"@days_ago:(\d+(?:\.\d+)?)", v)):
        when = dt.datetime.now(dt.UTC) - dt.timedelta(days=float(m.group(1)))
        return when.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
    if isinstance(v, dict):
        return {k: _render(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_render(x) for x in v]
    return v


def _registry(store: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """What ``registry.ps1`` answers, read from the fixture's key store instead of a live registry."""
    keys = {k.lower(): v for k, v in store.get("keys", {}).items()}
    users = store.get("users", [])

    def one(q: dict[str, Any], i: int, key: str, user: dict[str, Any] | None) -> dict[str, Any]:
        a: dict[str, Any] = {"query": i, "key": key, "user": user["sid"] if user else None, "status": "ok",
                             "values": {}, "subkeys": []}
        if user is not None and not user.get("loaded"):
            a.update(status="error", error={"kind": "hive_unreadable",
                                            "message": "user not logged on: the hive is not loaded"})
            return a
        entry = keys.get(key.lower())
        if entry is None:
            a["status"] = "missing"
            return a
        if "error" in entry:
            a.update(status="error", error=entry["error"])
            return a
        wanted = q.get("values")
        for name, v in entry.get("values", {}).items():
            if wanted is None or name.lower() in {w.lower() for w in wanted}:
                a["values"][name] = v
        if q.get("subkeys"):
            a["subkeys"] = entry.get("subkeys", [])
        return a

    answers = []
    for i, q in enumerate(args["queries"]):
        parts = q["key"].split("\\")
        if len(parts) > 1 and parts[0].upper() in ("HKU", "HKEY_USERS") and parts[1] == "*":
            answers += [one(q, i, "\\".join(["HKU", u["sid"], *parts[2:]]), u) for u in users]
        else:
            answers.append(one(q, i, q["key"], None))
    return {"users": users, "answers": answers}


def powershell(argv: list[str]) -> int:
    with open(os.environ["MAMORU_PS_LOG"], "a", encoding="utf-8") as log:
        log.write(json.dumps({"argv": argv, "pid": os.getpid()}) + "\n")
    if argv != ["-NoProfile", "-NonInteractive", "-Command", "-"]:
        print(f"unexpected arguments {argv}", file=sys.stderr)
        return 2
    script_dir = os.environ["MAMORU_PS_SCRIPTS"]
    line = sys.stdin.buffer.read().decode("ascii")
    m = re.fullmatch(r"& \(\[scriptblock\]::Create\(\[Text\.Encoding\]::UTF8\.GetString\(\[Convert\]::"
                     r"FromBase64String\('([A-Za-z0-9+/=]+)'\)\)\)\) '([A-Za-z0-9+/=]+)'\n", line)
    if m is None:
        print("stdin is not the batch line", file=sys.stderr)
        return 3
    with open(os.path.join(script_dir, "batch.ps1"), "rb") as fh:
        if base64.b64decode(m.group(1)) != fh.read():
            print("the driver is not the shipped batch.ps1", file=sys.stderr)
            return 4
    params = json.loads(base64.b64decode(m.group(2)))
    with open(os.path.join(script_dir, "parts.json"), encoding="utf-8") as fh:
        table = json.load(fh)
    for part in params["parts"]:
        with open(os.path.join(script_dir, table[part["name"]]["script"]), "rb") as fh:
            if base64.b64decode(part["script"]) != fh.read():
                print(f"part {part['name']} is not the shipped script", file=sys.stderr)
                return 5
    with open(os.environ["MAMORU_PS_FIXTURE"], encoding="utf-8") as fh:
        fixture = json.load(fh)
    nonce = params["nonce"]
    out = sys.stdout.buffer
    if fixture.get("chatter"):
        out.write(fixture["chatter"].encode(fixture.get("chatter_encoding", "utf-8")))
    frames = 0
    for part in params["parts"]:
        if "crash_after" in fixture and frames >= fixture["crash_after"]:
            out.flush()
            print("PowerShell stopped (replayed crash)", file=sys.stderr)
            return 1
        name = part["name"]
        spec = fixture.get("parts", {}).get(name)
        if name == "registry" and spec is None and "registry" in fixture:
            spec = {"ok": _registry(fixture["registry"], part["args"])}
        if spec is None:
            spec = {"error": f"the fixture has no answer for part {name}"}
        if "hang" in spec:
            out.flush()
            time.sleep(spec["hang"])
            continue
        if "raw" in spec:
            status, payload = "ok", spec["raw"]
        else:
            status = "ok" if "ok" in spec else "timeout" if "timeout" in spec else "error"
            text = json.dumps(_render(spec["ok"]), ensure_ascii=False) if status == "ok" else \
                ("" if status == "timeout" else spec["error"])
            payload = base64.b64encode(text.encode("utf-8")).decode("ascii")
        out.write(f"MAMORU-PART {nonce} {name} {status} {payload}\n".encode("ascii"))
        frames += 1
    out.write(f"MAMORU-END {nonce}\n".encode("ascii"))
    out.flush()
    return 0


if __name__ == "__main__":
    role, rest = sys.argv[1], sys.argv[2:]
    sys.exit(shell(rest) if role == "shell" else powershell(rest))
