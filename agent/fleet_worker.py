"""A scanner process: ``python -m agent.fleet_worker`` (started by ``agent.fleet``).

Reads JSON lines on stdin, each ``[kind, payload]``:

* ``["setup", {"threads": n, "policy": {...} | null}]``, always first;
* ``["job", [i, job]]``, a target to collect (any number, at any time);
* ``["collectors", ["module:Class", ...]]``, what to collect, once, before or after the first jobs;

and ends at end of input. It writes JSON lines on stdout: ``["started", i, null]`` and
``["done", i, <TargetFacts dict>]``. Anything else that would print goes to stderr, so stdout stays the
protocol. Facts are JSON already (they must survive a bundle), so nothing here needs pickle.

A scanner imports what reaching a host takes (paramiko) first, and starts connecting to a target as soon as
its job arrives, while the collectors named in the same input are still being imported.
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


class _Collectors:
    """The collector list, filled in when its message arrives; threads that need it wait."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.items: list[Any] | None = None

    def set(self, items: list[Any] | None) -> None:
        self.items = items
        self.ready.set()


def main() -> int:
    gc.disable()  # start-up only: frozen and re-enabled once the collectors are loaded (see agent.cli.common)
    out: BinaryIO = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    sys.stdout = sys.stderr  # the protocol owns the real stdout
    lines = sys.stdin.buffer
    import paramiko  # noqa: F401 - the slow part of reaching a host: imported while the parent reads inputs

    import agent.targets.ssh  # noqa: F401 - the SSH target, and its guard against paramiko importing invoke
    from agent.config.policy import Policy
    from agent.fleet import Job, _Dial, collect_one
    from agent.runner import TargetFacts
    from agent.targets import scheme_of

    first = lines.readline()
    if not first:
        return 0  # the run ended before it needed this scanner
    kind, setup = json.loads(first)
    if kind != "setup":
        print(f"mamoru scanner: expected setup, got {kind!r}", file=sys.stderr)
        return 2
    policy = None if setup["policy"] is None else Policy.from_wire(setup["policy"])
    collectors = _Collectors()
    jobs: queue.SimpleQueue[tuple[int, Job] | None] = queue.SimpleQueue()
    lock = threading.Lock()

    def emit(message: list[Any]) -> None:
        line = (json.dumps(message) + "\n").encode("ascii")  # ASCII: lone surrogates survive as \udcxx
        with lock:
            out.write(line)

    def work() -> None:
        while (item := jobs.get()) is not None:
            i, job = item
            emit(["started", i, None])
            try:
                dial = _Dial(job) if scheme_of(job.spec) == "ssh" else None  # connect while collectors load
                collectors.ready.wait()
                if collectors.items is None:
                    if dial is not None:
                        dial.drop()
                    return  # input ended without saying what to collect: the parent is gone
                tf = collect_one(job, collectors.items, policy, dial.take if dial is not None else None)
            except Exception as e:  # never lose a target to a bug here: report it
                tf = TargetFacts(id=job.label, kind=scheme_of(job.spec), status="error", reason="error",
                                 error=f"internal error: {type(e).__name__}: {e}", tags=dict(job.tags))
            emit(["done", i, tf.to_dict()])

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, int(setup["threads"])))]
    for t in threads:
        t.start()
    for line in lines:
        kind, payload = json.loads(line)
        if kind == "job":
            i, raw = payload
            jobs.put((i, Job(**raw)))
        elif kind == "collectors" and not collectors.ready.is_set():
            collectors.set([_collector(ref) for ref in payload])
            gc.freeze()
            gc.enable()
    if not collectors.ready.is_set():
        collectors.set(None)
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
