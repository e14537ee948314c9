"""``local``: this machine, as the user running mamoru sees it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING

from agent.targets.base import (
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_MAX_OUTPUT_BYTES,
    CommandResult,
    CommandTimeout,
    CommandUnavailable,
    PlatformInfo,
    TargetError,
)
from agent.targets.filesystem import FilesystemTarget, parse_os_release

if TYPE_CHECKING:
    from agent.targets.powershell import PowerShellBatch

#: Every command runs in the C locale so that its output parses the same on a
#: Japanese desktop as in CI.
COMMAND_ENV_OVERRIDES = {"LC_ALL": "C", "LANG": "C", "LANGUAGE": "C"}
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _drain(stream: IO[bytes], cap: int, sink: list[bytes], flags: list[bool]) -> None:
    """Read a pipe to its end, keeping at most ``cap`` bytes (the rest is discarded, not buffered)."""
    kept = 0
    while True:
        chunk = stream.read(65536)
        if not chunk:
            break
        if kept < cap:
            take = chunk[: cap - kept]
            sink.append(take)
            kept += len(take)
            if len(take) < len(chunk):
                flags[0] = True
        else:
            flags[0] = True


def run_capped(
    argv: Sequence[str],
    *,
    timeout: float,
    max_output: int,
    stdin: bytes | None,
    env: dict[str, str],
) -> CommandResult:
    """subprocess with a hard timeout and bounded memory, shared by every local-process runner."""
    if not argv:
        raise ValueError("empty argv")
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            close_fds=True,
            start_new_session=True,
        )
    except FileNotFoundError as e:
        raise CommandUnavailable(f"{argv[0]}: command not found") from e
    except PermissionError as e:
        raise CommandUnavailable(f"{argv[0]}: permission denied") from e
    except OSError as e:
        raise TargetError(f"{argv[0]}: {e.strerror}") from e
    out: list[bytes] = []
    err: list[bytes] = []
    flags = [False]
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, max_output, out, flags), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, max_output, err, flags), daemon=True),
    ]
    for t in readers:
        t.start()
    if stdin is not None and proc.stdin is not None:
        try:
            proc.stdin.write(stdin)
            proc.stdin.close()
        except BrokenPipeError:
            pass
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired as e:
        with contextlib.suppress(ProcessLookupError):
            if hasattr(os, "killpg"):
                os.killpg(proc.pid, 9)
            else:  # Windows: no process groups here (untested)
                proc.kill()
        proc.wait()
        raise CommandTimeout(f"{argv[0]}: no answer within {timeout:g} s") from e
    finally:
        for t in readers:
            t.join(timeout=2)
    return CommandResult(
        argv=tuple(argv),
        returncode=proc.returncode,
        stdout=b"".join(out),
        stderr=b"".join(err),
        truncated=flags[0],
    )


class LocalTarget(FilesystemTarget):
    kind = "local"

    def __init__(self, spec: str = "local") -> None:
        super().__init__(spec)

    def host_path(self, path: str) -> str:
        """The path itself; on Windows, mapped from the system volume's root to ``%SystemDrive%``
        (``/Windows/System32`` -> ``C:\\Windows\\System32``, ``windows_paths``): NOT tested here (no Windows)."""
        if sys.platform == "win32":
            from agent.targets.windows_paths import local_path, system_drive

            return local_path(path, system_drive(os.environ.get("SYSTEMDRIVE")))
        return path

    def platform(self) -> PlatformInfo:
        if sys.platform == "win32":  # NOT tested: no Windows here (see powershell_batch)
            import platform as _platform

            return PlatformInfo(system="windows", hostname=socket.gethostname(), distro="Windows",
                                version=_platform.version())
        try:
            osr = parse_os_release(self.read_file("/etc/os-release", max_bytes=65536))
        except TargetError:
            osr = {}
        try:
            machine_id = self.read_file("/etc/machine-id", max_bytes=4096).decode("ascii", "replace").strip()
        except TargetError:
            machine_id = ""
        return PlatformInfo(
            system="linux" if os.uname().sysname == "Linux" else os.uname().sysname.lower(),
            hostname=socket.gethostname(),
            distro=osr.get("NAME", ""),
            version=osr.get("VERSION_ID", ""),
            machine_id=machine_id,
        )

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = DEFAULT_COMMAND_TIMEOUT,
        max_output: int = DEFAULT_MAX_OUTPUT_BYTES,
        stdin: bytes | None = None,
    ) -> CommandResult:
        env = dict(os.environ)
        env.update(COMMAND_ENV_OVERRIDES)
        env["PATH"] = SAFE_PATH + (":" + env["PATH"] if env.get("PATH") else "")
        return run_capped(argv, timeout=timeout, max_output=max_output, stdin=stdin, env=env)

    def powershell(self) -> PowerShellBatch:
        """On Windows, the batch through ``subprocess`` (argv list, script on stdin). Only the start of the process
        is here, and it is NOT tested (no Windows): frames, JSON and errors are ``powershell.py``'s, which the
        replay tests run through a real subprocess and a real sshd."""
        if sys.platform != "win32":
            return super().powershell()
        return self.shared("powershell-batch", powershell_batch)


def powershell_batch(argv: Sequence[str] | None = None) -> PowerShellBatch:
    """A batch that starts ``argv`` (``powershell.exe ...`` unless a test gives a replay program) locally."""
    from agent.targets.powershell import MAX_OUTPUT, POWERSHELL_ARGV, PowerShellBatch

    command = list(argv or POWERSHELL_ARGV)

    def runner(stdin: bytes, timeout: float) -> CommandResult:
        return run_capped(command, timeout=timeout, max_output=MAX_OUTPUT, stdin=stdin, env=dict(os.environ))

    return PowerShellBatch(runner, where="local")
