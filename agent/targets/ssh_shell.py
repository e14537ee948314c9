"""Commands on an SSH host: one remote ``sh -s`` fed a small script per command on its stdin.

A session costs the server a fork and a login (~100-150 ms measured here); a
command inside an open shell costs one round trip. Each command's answer comes
back as a length-delimited frame (return code, stdout length, stderr length,
then the bytes), so no output — however hostile — can be mistaken for the
framing. Arguments are quoted one by one with ``shlex.quote``: no shell string
is ever assembled from host data. Output is capped on the remote side
(``head -c``, the rest drained), so a command printing 100 MB costs neither
side more than the cap.
"""

from __future__ import annotations

import contextlib
import math
import secrets
import shlex
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from agent.targets.base import CommandResult, CommandTimeout, CommandUnavailable
from agent.targets.ssh_connect import SudoRefused

if TYPE_CHECKING:
    import paramiko

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#: Grace on top of a command's own timeout for the remote ``timeout -k 2`` and the transfer.
_FRAME_GRACE = 15.0

# -- the batched remote shell ---------------------------------------------------------------------


def _octal_literal(data: bytes) -> str:
    """A printf(1) format that writes exactly ``data``: every byte that is not plainly safe as ``\\ooo``."""
    safe = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ._-/:=,+@"
    return "".join(chr(b) if b in safe else f"\\{b:03o}" for b in data)


class ShellGone(Exception):
    pass


class _Deadline(Exception):
    pass


class RemoteShell:
    """One remote ``sh -s`` that runs commands fed on its stdin and answers in length-delimited frames.

    Frame: ``MAMORU-FRAME <nonce> <seq> <rc|notfound> <stdout bytes> <stderr bytes>\\n`` then the bytes.
    The nonce is random per session, so nothing the login shell's rc files print can fake a frame.
    """

    def __init__(self, transport: paramiko.Transport, *, sudo: bool, timeout: float) -> None:
        self.nonce = secrets.token_hex(8)
        self._seq = 0
        self._buf = bytearray()
        self._lock = threading.Lock()
        self.chan = transport.open_session(timeout=timeout)
        self.chan.exec_command("sudo -n -- sh -s" if sudo else "sh -s")
        self.chan.sendall(self._bootstrap())
        deadline = time.monotonic() + timeout
        try:
            hello = self._find_line(f"MAMORU-HELLO {self.nonce} ".encode(), deadline)
        except (ShellGone, _Deadline) as e:
            err = self._stderr_text()
            self.close()
            if sudo and ("password is required" in err or "sudo:" in err or "not found" in err):
                raise SudoRefused(sudo_message(err)) from None
            if isinstance(e, _Deadline):
                raise CommandUnavailable(f"the remote shell did not start within {timeout:g} s") from None
            raise CommandUnavailable(f"the remote shell did not start: {err or 'no answer'}") from None
        fields = hello.split()
        self.has_timeout = len(fields) > 2 and fields[2] == b"1"

    def _bootstrap(self) -> bytes:
        return (
            "umask 077\n"
            f"PATH={SAFE_PATH}; export PATH\n"
            "LC_ALL=C; LANG=C; LANGUAGE=C; export LC_ALL LANG LANGUAGE\n"
            "unset HISTFILE\n"
            'd=$(mktemp -d 2>/dev/null) || { d=/tmp/mamoru.$$; mkdir -m 700 "$d" || exit 97; }\n'
            "trap 'rm -rf \"$d\"' EXIT\n"
            "trap 'exit 1' HUP INT TERM PIPE\n"
            "if command -v timeout >/dev/null 2>&1; then t=1; else t=0; fi\n"
            f"printf 'MAMORU-HELLO {self.nonce} %s\\n' \"$t\"\n"
        ).encode()

    def _stderr_text(self) -> str:
        chunks = []
        with contextlib.suppress(Exception):
            while self.chan.recv_stderr_ready():
                chunks.append(self.chan.recv_stderr(65536))
        return b"".join(chunks).decode("utf-8", "replace").strip()

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Deadline
        self.chan.settimeout(remaining)
        try:
            data = self.chan.recv(1 << 20)
        except TimeoutError:
            raise _Deadline from None
        except (OSError, EOFError) as e:
            raise ShellGone from e
        if not data:
            raise ShellGone
        self._buf += data

    def _find_line(self, prefix: bytes, deadline: float, *, junk_limit: int = 1 << 16) -> bytes:
        """The first line starting with ``prefix``, skipping what a chatty login shell printed before it."""
        while True:
            start = self._buf.find(prefix)
            if start >= 0:
                end = self._buf.find(b"\n", start)
                if end >= 0:
                    line = bytes(self._buf[start:end])
                    del self._buf[: end + 1]
                    return line
            elif len(self._buf) > junk_limit + len(prefix):  # more than a partly received line: junk
                raise ShellGone
            self._fill(deadline)

    def _read_exact(self, n: int, deadline: float) -> bytes:
        while len(self._buf) < n:
            self._fill(deadline)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def script(self, seq: int, argv: Sequence[str], *, timeout: float, cap: int, stdin: bytes | None) -> bytes:
        """The shell text for one command: quoted argv, bounded output, framed answer."""
        words = " ".join(shlex.quote(a) for a in argv)
        limit = f"timeout -k 2 {max(1, math.ceil(timeout))} " if self.has_timeout else ""
        lines = []
        if stdin is not None:
            lines.append(f'printf {shlex.quote(_octal_literal(stdin)) or "%s"} >"$d/i"')
            source = '"$d/i"'
        else:
            source = "/dev/null"
        head = f"MAMORU-FRAME {self.nonce} {seq}"
        # stdout and stderr each go through ``head -c`` into a file (then the rest is drained), so a
        # command printing 100 MB costs the remote disk cap+1 bytes and us nothing beyond the cap.
        lines += [
            f"if command -v {shlex.quote(argv[0])} >/dev/null 2>&1; then",
            f"{{ {{ (cd / && exec {limit}{words} <{source}) 2>&1 1>&3 3>&-; echo $? >\"$d/r\"; }}"
            f" | {{ head -c {cap + 1} >\"$d/e\"; cat >/dev/null; }}; }} 3>&1"
            f" | {{ head -c {cap + 1} >\"$d/o\"; cat >/dev/null; }}",
            f"printf '{head} %s %s %s\\n' \"$(cat \"$d/r\")\" \"$(wc -c <\"$d/o\")\" \"$(wc -c <\"$d/e\")\"",
            'cat "$d/o" "$d/e"',
            f"else printf '{head} notfound 0 0\\n'; fi",
        ]
        return ("\n".join(lines) + "\n").encode()

    def run(self, argv: Sequence[str], *, timeout: float, max_output: int, stdin: bytes | None) -> CommandResult:
        with self._lock:
            self._seq += 1
            seq = self._seq
            t0 = time.monotonic()
            deadline = t0 + timeout + (_FRAME_GRACE if self.has_timeout else 0.0)
            try:
                self.chan.sendall(self.script(seq, argv, timeout=timeout, cap=max_output, stdin=stdin))
                header = self._find_line(f"MAMORU-FRAME {self.nonce} {seq} ".encode(), deadline, junk_limit=0)
                fields = header.split()
                if len(fields) != 6:
                    raise ShellGone
                rc_field, out_len, err_len = fields[3], int(fields[4]), int(fields[5])
                out = self._read_exact(out_len, deadline)
                err = self._read_exact(err_len, deadline)
            except _Deadline:
                self.close()
                raise CommandTimeout(f"{argv[0]}: no answer within {timeout:g} s") from None
            except (ShellGone, ValueError, OSError):
                self.close()
                raise ShellGone from None
        if rc_field == b"notfound":
            raise CommandUnavailable(f"{argv[0]}: command not found")
        try:
            rc = int(rc_field)
        except ValueError:
            raise ShellGone from None
        if self.has_timeout and rc in (124, 137) and time.monotonic() - t0 >= timeout - 0.5:
            raise CommandTimeout(f"{argv[0]}: no answer within {timeout:g} s")
        return CommandResult(argv=tuple(argv), returncode=rc, stdout=out[:max_output], stderr=err[:max_output],
                             truncated=out_len > max_output or err_len > max_output)

    @property
    def alive(self) -> bool:
        return not self.chan.closed and not self.chan.exit_status_ready()

    def close(self, *, graceful: bool = False) -> None:
        """``graceful``: end of input first, so the remote shell exits and its EXIT trap removes its temp dir."""
        with contextlib.suppress(Exception):
            if graceful and not self.chan.closed:
                self.chan.shutdown_write()
                self.chan.status_event.wait(1.0)
            self.chan.close()


def sudo_message(err: str) -> str:
    last = err.splitlines()[-1] if err else "no answer"
    if "password is required" in err:
        return (f"sudo asks for a password on this host ({last}): mamoru runs sudo -n and never types passwords; "
                "give the audit account passwordless sudo for the audit, or scan without --sudo")
    return f"sudo -n failed on this host: {last}"
