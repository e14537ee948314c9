"""A scanner process of a fleet run: ``python -m agent.fleet_worker`` (started by ``agent.fleet``).

Reads a JSON header line on stdin (collector references, policy, thread count), then one job per line
(``[i, job]``) until end of input; collects each with a bounded pool of threads and writes JSON lines
on stdout: ``["started", i, null]`` and ``["done", i, <TargetFacts dict>]``. Anything else that would
print goes to stderr, so stdout stays the protocol. Facts are JSON already (they must survive a
bundle), so nothing here needs pickle.
"""

from __future__ import annotations

import importlib
import json
import os
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
    out: BinaryIO = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    sys.stdout = sys.stderr  # the protocol owns the real stdout
    jobs_in = sys.stdin.buffer
    order = json.loads(jobs_in.readline())
    from agent.config.policy import Policy
    from agent.fleet import Job, collect_one
    from agent.runner import TargetFacts
    from agent.targets import scheme_of

    collectors = [_collector(ref) for ref in order["collectors"]]
    p = order["policy"]
    policy = None if p is None else Policy(name=p["name"], sha256=p["sha256"], data=p["data"], source=p["source"])
    lock = threading.Lock()
    read_lock = threading.Lock()

    def emit(message: list[Any]) -> None:
        line = (json.dumps(message) + "\n").encode("ascii")  # ASCII: lone surrogates survive as \udcxx
        with lock:
            out.write(line)

    def work() -> None:
        while True:
            with read_lock:
                line = jobs_in.readline()
            if not line:
                return
            i, raw = json.loads(line)
            job = Job(**raw)
            emit(["started", i, None])
            try:
                tf = collect_one(job, collectors, policy)
            except Exception as e:  # never lose a target to a bug here: report it
                tf = TargetFacts(id=job.label, kind=scheme_of(job.spec), status="error", reason="error",
                                 error=f"internal error: {type(e).__name__}: {e}", tags=dict(job.tags))
            emit(["done", i, tf.to_dict()])

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, int(order["threads"])))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
