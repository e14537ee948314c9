"""A scanner process, seen from the process that starts it: messages in, JSON lines out.

The other end, and the protocol, is ``agent.fleet_worker``.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import agent


def worker_argv() -> list[str]:
    """The scanner's command line: the same code as this process, never whatever sits in the working directory.

    ``python -m agent.fleet_worker`` would put the working directory first on ``sys.path``: an ``agent/``
    folder in the operator's current directory would then run, as root, in every fleet scan. ``-I`` (isolated:
    no working directory, no ``PYTHON*`` variables, no user site) plus the one directory this process imported
    mamoru from makes the child import exactly what the parent runs.
    """
    root = str(Path(agent.__file__).resolve().parent.parent)
    bootstrap = (f"import sys\nif {root!r} not in sys.path: sys.path.insert(0, {root!r})\n"
                 "from agent.fleet_worker import main\nsys.exit(main())")
    return [sys.executable, "-I", "-c", bootstrap]


class Scanner:
    """A scanner process (``agent.fleet_worker``, see ``worker_argv``): messages in on stdin, JSON lines out on stdout.

    A plain child process, not multiprocessing: nothing of this process (its ``__main__``, threads, open
    connections) is re-imported or inherited; it sits in its own session so that Ctrl-C reaches only this
    process, which then stops the children itself; and options (key paths) travel on stdin, never argv.
    """

    def __init__(self) -> None:
        # See _limit_malloc_arenas: the same for the scanner, from its first allocation.
        env = {**os.environ, "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}
        self.proc = subprocess.Popen(worker_argv(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     start_new_session=True, close_fds=True, env=env)
        self._lock = threading.Lock()

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
