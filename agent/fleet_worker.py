"""A scanner process: ``python -m agent.fleet_worker`` (started by ``agent.fleet``).

Reads JSON lines on stdin, each ``[kind, payload]``, in this order:

* ``["setup", {"threads": n, "policy": {...} | null}]``;
* ``["collectors", ["module:Class", ...]]``, what to collect;
* ``["job", [i, job]]``, a target to collect, any number of them;

and ends at end of input. It writes JSON lines on stdout: ``["started", i, null]`` and
``["done", i, <TargetFacts dict>]``. Anything else that would print goes to stderr, so stdout stays the
protocol. Facts are JSON already (they must survive a bundle), so nothing here needs pickle.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import queue
import sys
import threading
from typing import Any, BinaryIO


def _collector(ref: str) -> Any:
    module, _, qualname = ref.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj()


def main() -> int:
    gc.disable()  # start-up only: frozen and re-enabled once the collectors are loaded (see agent.cli.common)
    out: BinaryIO = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    sys.stdout = sys.stderr  # the protocol owns the real stdout
    lines = sys.stdin.buffer
    import paramiko  # noqa: F401 - imported before any job, not by the first target's connection

    import agent.targets.ssh  # noqa: F401 - the SSH target, and its guard against paramiko importing invoke
    from agent.config.policy import Policy
    from agent.fleet import Job, collect_one
    from agent.runner import TargetFacts
    from agent.targets import scheme_of

    def message(expected: str) -> Any:
        line = lines.readline()
        if not line:
            return None  # the run ended before it needed this scanner
        kind, payload = json.loads(line)
        if kind != expected:
            raise SystemExit(f"mamoru scanner: expected {expected}, got {kind!r}")
        return payload

    setup = message("setup")
    refs = message("collectors") if setup is not None else None
    if refs is None:
        return 0
    policy = None if setup["policy"] is None else Policy.from_wire(setup["policy"])
    collectors = [_collector(ref) for ref in refs]
    gc.freeze()
    gc.enable()
    jobs: queue.SimpleQueue[tuple[int, Job] | None] = queue.SimpleQueue()
    lock = threading.Lock()

    def emit(msg: list[Any]) -> None:
        line = (json.dumps(msg) + "\n").encode("ascii")  # ASCII: lone surrogates survive as \udcxx
        with lock:
            out.write(line)

    def work() -> None:
        while (item := jobs.get()) is not None:
            i, job = item
            emit(["started", i, None])
            try:
                tf = collect_one(job, collectors, policy)
            except Exception as e:  # never lose a target to a bug here: report it
                tf = TargetFacts(id=job.label, kind=scheme_of(job.spec), status="error", reason="error",
                                 error=f"internal error: {type(e).__name__}: {e}", tags=dict(job.tags))
            emit(["done", i, tf.to_dict()])

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, int(setup["threads"])))]
    for t in threads:
        t.start()
    while (raw := message("job")) is not None:
        i, fields = raw
        jobs.put((i, Job(**fields)))
    for _ in threads:
        jobs.put(None)
    for t in threads:
        t.join()
    out.close()
    # Everything is said and every connection closed: skip the interpreter's teardown (tens of ms of
    # freeing modules and threads) that the parent would otherwise wait out.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
