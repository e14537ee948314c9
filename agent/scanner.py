"""A scanner process, seen from the process that starts it: messages in, JSON lines out.

Kept apart from ``agent.fleet`` and light on imports, so that ``scan`` can start one first thing, before
it has loaded anything else (see ``Scanner.ahead``). The other end is ``agent.fleet_worker``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from typing import Any

PROCESSES_ENV = "MAMORU_PROCESSES"


class Scanner:
    """A scanner process (``python -m agent.fleet_worker``): messages in on stdin, JSON lines out on stdout.

    A plain child process, not multiprocessing: nothing of this process (its ``__main__``, threads, open
    connections) is re-imported or inherited; it sits in its own session so that Ctrl-C reaches only this
    process, which then stops the children itself; and options (key paths) travel on stdin, never argv.
    """

    def __init__(self) -> None:
        # See _limit_malloc_arenas: the same for the scanner, from its first allocation.
        env = {**os.environ, "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}
        self.proc = subprocess.Popen([sys.executable, "-m", "agent.fleet_worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, start_new_session=True, close_fds=True, env=env)
        self._lock = threading.Lock()
        self.used = False

    @classmethod
    def ahead(cls, targets: Sequence[str], inventory: str | None) -> Scanner | None:
        """A scanner started before the inputs are even read, when the run will reach hosts over SSH.

        Python's start-up and the import of paramiko (~0.1 s of CPU) then happen on another core while this
        process reads the inventory and the policy; nothing is sent to any host until a job arrives, which
        is only after every input has been checked. ``MAMORU_PROCESSES=1`` keeps everything in this process.
        """
        if os.environ.get(PROCESSES_ENV, "").strip() == "1":
            return None
        if not inventory and not any(t.startswith("ssh://") for t in targets):
            return None
        return cls()

    def send(self, kind: str, payload: Any) -> bool:
        """One message; False when the scanner is gone (its targets are then reported as such)."""
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            with self._lock:
                stdin.write((json.dumps([kind, payload]) + "\n").encode())
                stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            return False
        return True

    def setup(self, policy: dict[str, Any] | None, threads: int) -> None:
        """The first message: the policy (collectors' inputs) and how many targets at once."""
        self.used = True
        self.send("setup", {"threads": threads, "policy": policy})

    def finish(self) -> None:
        """End of input: its threads stop once their targets are done."""
        with self._lock, contextlib.suppress(OSError, ValueError):
            assert self.proc.stdin is not None
            self.proc.stdin.close()

    def stop(self, wait: float = 2.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError, ValueError):
                if stream is not None:
                    stream.close()

    def discard(self) -> None:
        """A scanner started ahead that the run did not use (bad input, nothing to scan): stop it."""
        if not self.used:
            self.stop(wait=1.0)
