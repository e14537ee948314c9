"""Windows over SSH: which shell the server runs commands in, and the PowerShell batch on one exec session.

Windows' OpenSSH server runs a command through its *default shell*: ``cmd.exe /c`` unless an administrator
set ``HKLM\\SOFTWARE\\OpenSSH\\DefaultShell`` (often to PowerShell). A Linux or BSD server runs it through
the user's POSIX shell. One probe tells the three apart by how each expands variables — never by an error
message (those are localized), never from a failed ``uname``::

    echo %OS% $env:OS

    sh          -> "%OS% :OS"             ($env is an unset variable)
    cmd.exe     -> "Windows_NT $env:OS"   (%OS% expanded, $env:OS left alone)
    PowerShell  -> "%OS%" / "Windows_NT"  (two arguments, one line each; $env:OS expanded)

The same probe asks for the computer name and ``%SystemDrive%`` (where SFTP finds ``/C:/Windows``, see
``windows_paths``).

The batch's command line (``powershell.exe -NoProfile -NonInteractive -Command -``) is the same in cmd.exe
and in PowerShell, and is a constant: the script goes on the session's stdin.

The tests exercise this through a real sshd whose login shell is a stand-in that answers the probe as
cmd.exe or PowerShell would and execs a replaying ``powershell.exe`` (``tests/windows_ps_standin.py``).
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Literal

from agent.targets.base import CommandResult, CommandTimeout, CommandUnavailable, TargetError
from agent.targets.powershell import MAX_OUTPUT, POWERSHELL_ARGV

if TYPE_CHECKING:
    import paramiko

PROBE = "echo %OS% %COMPUTERNAME% %SystemDrive% $env:OS $env:COMPUTERNAME $env:SystemDrive"
ShellKind = Literal["posix", "cmd", "powershell", "unknown"]


def classify(stdout: bytes) -> tuple[ShellKind, str, str]:
    """(shell kind, Windows computer name or "", system drive or "") from the probe's output."""
    lines = [ln.strip() for ln in stdout.decode("utf-8", "replace").splitlines() if ln.strip()]
    if len(lines) == 1:
        words = lines[0].split()
        if words[:1] == ["%OS%"] and words[3:4] == [":OS"]:
            return "posix", "", ""
        if len(words) == 6 and words[0] == "Windows_NT" and words[3:] == ["$env:OS", "$env:COMPUTERNAME",
                                                                           "$env:SystemDrive"]:
            return "cmd", words[1], words[2]
    if len(lines) == 6 and lines[:3] == ["%OS%", "%COMPUTERNAME%", "%SystemDrive%"] and lines[3] == "Windows_NT":
        return "powershell", lines[4], lines[5]
    return "unknown", "", ""


def exec_session(transport: paramiko.Transport, command: str, stdin: bytes, *, timeout: float,
                 max_output: int = MAX_OUTPUT) -> CommandResult:
    """Run ``command`` (a constant) in a new session on the open connection, ``stdin`` fed, output capped."""
    import paramiko

    deadline = time.monotonic() + timeout
    try:
        chan = transport.open_session(timeout=min(timeout, 15.0))
    except (paramiko.SSHException, OSError, EOFError) as e:
        raise CommandUnavailable(f"cannot open an SSH session: {e}") from e
    out, err = bytearray(), bytearray()
    truncated = False
    try:
        chan.exec_command(command)
        if stdin:
            chan.sendall(stdin)
        chan.shutdown_write()
        while True:
            if chan.recv_ready():
                data = chan.recv(1 << 20)
                truncated |= len(out) + len(data) > max_output
                out += data[: max(0, max_output - len(out))]
                continue
            if chan.recv_stderr_ready():
                data = chan.recv_stderr(1 << 16)
                err += data[: max(0, 65536 - len(err))]
                continue
            if (chan.eof_received or chan.closed) and chan.exit_status_ready() \
                    and not chan.recv_ready() and not chan.recv_stderr_ready():
                break
            if time.monotonic() > deadline:
                raise CommandTimeout(f"{command.split()[0]}: no answer within {timeout:g} s")
            chan.status_event.wait(0.05)
        rc = chan.recv_exit_status()
    except (paramiko.SSHException, OSError, EOFError) as e:
        raise TargetError(f"{command.split()[0]}: the SSH session failed ({e})") from e
    finally:
        with contextlib.suppress(Exception):
            chan.close()
    return CommandResult(argv=(command,), returncode=rc, stdout=bytes(out), stderr=bytes(err), truncated=truncated)


def probe(transport: paramiko.Transport, timeout: float) -> tuple[ShellKind, str, str]:
    res = exec_session(transport, PROBE, b"", timeout=timeout, max_output=4096)
    return classify(res.stdout)


POWERSHELL_COMMAND = " ".join(POWERSHELL_ARGV)
