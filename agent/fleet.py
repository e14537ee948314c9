"""Many targets in one run: an inventory or several ``--target``s, a bounded pool, one report.

Every target gets its own outcome — unreachable, auth failed, host key
refused, timed out, partial — and none of them stops the others. Ctrl-C stops
starting new targets, abandons the ones in flight (their threads are daemons
bounded by timeouts) and still returns what finished, marked interrupted, so
the caller writes a partial report instead of nothing. ``bundle:FILE``
targets are not collected: their saved facts join the run as they are.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from agent.config.policy import Policy
from agent.runner import Observer, TargetFacts, collect_target
from agent.scanner import Scanner
from agent.targets import check_spec, scheme_of
from collectors.base import Collector

#: Targets in flight in one scanner process. One Python process runs on one core at a time (the GIL):
#: past a few targets its threads only queue for it, and each target costs more CPU, not less time
#: (measured here with 32 targets on 2 cores: 16 in flight per process 31 s and 0.85 CPU-s per target,
#: 4 in flight 18 s and 0.33 CPU-s). More cores get more processes instead.
TARGETS_PER_PROCESS = 4
PROCESSES_ENV = "MAMORU_PROCESSES"
PER_PROCESS_ENV = "MAMORU_TARGETS_PER_PROCESS"
#: Added to the SSH connect timeout for the runner's own outer limit, so the precise SSH reason
#: (banner timeout, auth failure …) is what the report shows, not a generic "timed out".
_OUTER_GRACE = 5.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class RemoteSettings:
    """SSH settings from the command line; an inventory entry's own values win over them."""

    identity_file: str | None = None
    known_hosts: str | None = None
    accept_new: bool = False
    connect_timeout: float = 10.0
    command_timeout: float | None = None
    sudo: bool = False


@dataclasses.dataclass(frozen=True, kw_only=True)
class Job:
    """One target to collect from."""

    spec: str
    id: str | None = None  # the inventory name; None keeps the target's own id
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)
    policy: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    connect_timeout: float = 60.0

    @property
    def label(self) -> str:
        return self.id or self.spec


@dataclasses.dataclass(frozen=True, kw_only=True)
class Saved:
    """Facts from a bundle: judged, never collected."""

    facts: TargetFacts
    policy: Mapping[str, Any]
    source: str = ""  # the bundle file, named when two targets of a run share an id
    partial: bool = False  # the bundle's own collection was interrupted


@dataclasses.dataclass(kw_only=True)
class FleetRun:
    facts: list[TargetFacts]
    policies: dict[str, Mapping[str, Any]]  # target id -> policy overrides
    interrupted: bool = False
    #: Not everything was gathered: this run was interrupted, or a bundle in it was.
    partial: bool = False

    def policy_for(self, base: Policy) -> Callable[[TargetFacts], Policy]:
        return lambda tf: base.overlay(self.policies.get(tf.id, {}))


def _ssh_options(settings: RemoteSettings, **own: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "identity_file": settings.identity_file,
        "known_hosts": settings.known_hosts,
        "accept_new": settings.accept_new,
        "connect_timeout": settings.connect_timeout,
        "command_timeout": settings.command_timeout,
        "sudo": settings.sudo,
    }
    opts.update({k: v for k, v in own.items() if v is not None})
    return opts


def plan(targets: Sequence[str], inventory: str | None, settings: RemoteSettings) -> list[Job | Saved]:
    """Every target of the run, in order, before any connection is made (bad input fails here, exit 2)."""

    items: list[Job | Saved] = []
    specs = list(targets) or ([] if inventory else ["local"])
    outer = settings.connect_timeout * 4 + _OUTER_GRACE
    for spec in specs:
        check_spec(spec)
        scheme = scheme_of(spec)
        if scheme == "bundle":
            from agent.targets.bundle import bundle_path

            items += saved_targets(bundle_path(spec))
        elif scheme == "ssh":
            from agent.targets.ssh_connect import SSHAddress

            SSHAddress.parse(spec)  # a malformed or password-bearing URI is refused before the scan
            items.append(Job(spec=spec, options=_ssh_options(settings), connect_timeout=outer))
        else:
            items.append(Job(spec=spec))
    if inventory:
        from agent.config.inventory import load_inventory

        for t in load_inventory(inventory).targets:
            ct = t.connect_timeout or settings.connect_timeout
            own: dict[str, Any] = {"identity_file": t.identity_file, "connect_timeout": ct,
                                   "command_timeout": t.command_timeout}
            if t.sudo is not None:
                own["sudo"] = t.sudo
            if t.jump is not None:
                own["jump"] = t.jump.spec
                own["jump_identity_file"] = t.jump.identity_file
            items.append(Job(spec=t.spec, id=t.name, options=_ssh_options(settings, **own), tags=dict(t.tags),
                             policy=dict(t.policy), connect_timeout=ct * 4 + _OUTER_GRACE))
    check_unique(items)
    return items


def saved_targets(path: str) -> list[Saved]:
    """The targets of one bundle, ready to judge, for ``scan --target bundle:FILE`` and ``evaluate`` alike:
    facts gathered by another version of a collector become errors here (``check_versions``), so one stale
    bundle never gives ``fail`` in one command and ``error`` in the other."""
    from agent.registry import collectors
    from reports.bundle import check_versions, load_bundle

    bundle = load_bundle(path)
    named = {cid for t in bundle.targets for cid in t.facts.facts}
    check_versions(bundle, {c.id: c.version for c in collectors(sorted(named)).values()})
    return [Saved(facts=t.facts, policy=t.policy, source=path, partial=bundle.partial) for t in bundle.targets]


def check_unique(items: Sequence[Job | Saved]) -> None:
    """One id, one machine: two targets sharing an id could not be told apart in the report (exit 2).

    Ids are never made unique by renaming (``host#2``): which machine got the suffix would depend on the
    order of the arguments, so two reports of the same bundles could disagree on who is who. The message
    names where each came from; ``mamoru collect --name`` gives a bundle's target its own id.
    """
    from agent.errors import ConfigError

    seen: dict[str, Job | Saved] = {}
    for item in items:
        label = item.label if isinstance(item, Job) else item.facts.id
        first = seen.get(label)
        if first is None:
            seen[label] = item
            continue
        if isinstance(first, Saved) and isinstance(item, Saved):
            where = (f"in {first.source} and in {item.source}" if first.source != item.source
                     else f"twice in {item.source}")
            raise ConfigError(f"target {label!r} appears {where}: two machines cannot share an id in one report; "
                              f"collect one of them again with mamoru collect --name NAME")
        raise ConfigError(f"target {label!r} appears twice in this run"
                          + "".join(f" (in {it.source})" for it in (first, item) if isinstance(it, Saved)))


class _Silent:
    def target_started(self, target_id: str) -> None:
        pass

    def target_finished(self, target_id: str, status: str) -> None:
        pass


def _interrupted(job: Job, started: bool) -> TargetFacts:
    when = "while it was being scanned" if started else "before this target was started"
    return TargetFacts(id=job.label, kind=scheme_of(job.spec), status="error", reason="interrupted",
                       error=f"the run was interrupted (Ctrl-C) {when}", tags=dict(job.tags))


def collect_one(job: Job, collectors: Sequence[Collector], policy: Policy | None) -> TargetFacts:
    target_policy = policy.overlay(job.policy) if policy is not None else None
    tf = collect_target(job.spec, collectors, target_options=dict(job.options), policy=target_policy,
                        connect_timeout=job.connect_timeout)
    if job.id:
        tf.id = job.id
    tf.tags = dict(job.tags)
    return tf


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def process_count(jobs: int, workers: int) -> int:
    """Scanner processes: one per CPU, as far as there are targets to keep each one busy.

    SSH packets, SFTP answers and the collectors' parsing of many hosts all queue for one process's single
    core; more processes use the other cores. ``MAMORU_PROCESSES`` overrides (1: all in this process).
    """
    forced = _env_int(PROCESSES_ENV)
    if forced:
        return max(1, min(forced, jobs or 1))
    if jobs <= per_process_limit():
        return 1
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cpus, -(-jobs // per_process_limit()), workers))


def per_process_limit() -> int:
    """Targets in flight per process (``MAMORU_TARGETS_PER_PROCESS``; raise it for slow, distant links)."""
    return _env_int(PER_PROCESS_ENV) or TARGETS_PER_PROCESS


def _limit_malloc_arenas() -> None:
    """glibc gives every thread that allocates at once its own malloc arena (up to 8 per core); with a few
    dozen collector threads per target that is memory that grows with the fleet but is never used again.
    Two arenas keep it proportional to the targets (measured: ~4 MB less per concurrent target), at no
    cost in speed. Scanner processes get the same through ``MALLOC_ARENA_MAX``."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def collect_fleet(items: Sequence[Job | Saved], collectors: Sequence[Collector], *, workers: int = 8,
                  policy: Policy | None = None, observer: Observer | None = None) -> FleetRun:
    """Collect every Job with at most ``workers`` at once; Saved facts pass through. Order is kept."""
    obs = observer or _Silent()
    jobs = [(i, it) for i, it in enumerate(items) if isinstance(it, Job)]
    results: dict[int, TargetFacts] = {i: it.facts for i, it in enumerate(items) if isinstance(it, Saved)}
    started: set[int] = set()
    procs = process_count(len(jobs), workers)
    if len(jobs) > 1:
        _limit_malloc_arenas()
    if procs > 1:
        interrupted = _in_processes(jobs, collectors, policy, workers, procs, obs, results, started)
    else:
        interrupted = _in_threads(jobs, collectors, policy, workers, obs, results, started)
    snapshot = dict(results)
    facts: list[TargetFacts] = []
    for i, it in enumerate(items):
        if i in snapshot:
            facts.append(snapshot[i])
        else:
            assert isinstance(it, Job)  # saved facts are always there
            facts.append(_interrupted(it, i in started))
    policies = {tf.id: it.policy for tf, it in zip(facts, items, strict=True)}
    partial = interrupted or any(isinstance(it, Saved) and it.partial for it in items)
    return FleetRun(facts=facts, policies=policies, interrupted=interrupted, partial=partial)


def _in_threads(jobs: list[tuple[int, Job]], collectors: Sequence[Collector], policy: Policy | None, workers: int,
                obs: Observer, results: dict[int, TargetFacts], started: set[int]) -> bool:
    todo: queue.SimpleQueue[tuple[int, Job]] = queue.SimpleQueue()
    for pair in jobs:
        todo.put(pair)
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            try:
                i, job = todo.get_nowait()
            except queue.Empty:
                return
            started.add(i)
            obs.target_started(job.label)
            tf = collect_one(job, collectors, policy)
            if stop.is_set():
                return  # interrupted meanwhile: the run is already reported without it
            results[i] = tf
            obs.target_finished(job.label, tf.status)

    threads = [threading.Thread(target=worker, daemon=True, name=f"mamoru-worker-{n}")
               for n in range(min(max(1, workers), per_process_limit(), len(jobs)))]
    for t in threads:
        t.start()
    try:
        for t in threads:
            while t.is_alive():
                t.join(0.2)  # short waits: Ctrl-C reaches this thread at once
    except KeyboardInterrupt:
        stop.set()
        return True
    return False


def _collector_ref(c: Collector) -> str:
    return f"{type(c).__module__}:{type(c).__qualname__}"


def _in_processes(jobs: list[tuple[int, Job]], collectors: Sequence[Collector], policy: Policy | None,
                  workers: int, procs: int, obs: Observer, results: dict[int, TargetFacts],
                  started: set[int]) -> bool:
    """The pool over ``procs`` processes — this one and ``procs - 1`` scanners — fed one job per free slot.

    This process takes its share too: it has everything loaded already, so one scanner's start-up and
    memory are saved. Feeding on demand (not a fixed share each) keeps every process busy when some
    targets take long, e.g. unreachable ones waiting out their connect timeout.
    """
    answers: queue.SimpleQueue[tuple[int, str, int, Any]] = queue.SimpleQueue()
    per_process = max(1, min(-(-workers // procs), per_process_limit()))
    todo = list(jobs)
    todo_lock = threading.Lock()
    stop = threading.Event()
    children = [Scanner() for _ in range(procs - 1)]
    here = -1  # the "process number" of this process's own workers

    def take() -> tuple[int, Job] | None:
        with todo_lock:
            return todo.pop(0) if todo and not stop.is_set() else None

    def feed(n: int, count: int) -> None:
        for _ in range(count):
            item = take()
            if item is None:
                break
            if not children[n].send("job", [item[0], dataclasses.asdict(item[1])]):
                return  # that process is gone; its targets are reported below
        if not todo:
            children[n].finish()

    def pump(n: int) -> None:
        out = children[n].proc.stdout
        assert out is not None
        for line in out:
            try:
                kind, i, payload = json.loads(line)
            except ValueError:
                continue
            answers.put((n, kind, i, payload))
        answers.put((n, "exit", -1, None))

    refs = [_collector_ref(c) for c in collectors]
    for n, child in enumerate(children):
        child.setup(policy.to_wire() if policy is not None else None, per_process)
        child.send("collectors", refs)
        feed(n, per_process)
        threading.Thread(target=pump, args=(n,), daemon=True).start()
    labels = {i: job.label for i, job in jobs}
    finished: set[int] = set()
    live = len(children) + per_process
    interrupted = False

    def local() -> None:
        while (item := take()) is not None:
            i, job = item
            answers.put((here, "started", i, None))
            answers.put((here, "done", i, collect_one(job, collectors, policy)))
        answers.put((here, "exit", -1, None))

    for _ in range(per_process):
        threading.Thread(target=local, daemon=True, name="mamoru-worker").start()
    try:
        while live and len(finished) < len(jobs):  # a scanner's own exit is not waited for
            try:
                n, kind, i, payload = answers.get(timeout=0.2)  # short waits: Ctrl-C reaches this thread at once
            except queue.Empty:
                continue
            if kind == "exit":
                live -= 1
            elif kind == "started":
                started.add(i)
                obs.target_started(labels[i])
            elif kind == "done":
                tf = payload if isinstance(payload, TargetFacts) else TargetFacts.from_dict(payload)
                results[i] = tf
                finished.add(i)
                obs.target_finished(labels[i], tf.status)
                if n != here:
                    feed(n, 1)
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
    finally:
        for child in children:
            if child.proc.poll() is None:
                child.proc.terminate()
        for child in children:
            child.stop()
    if not interrupted:
        for i, job in jobs:
            if i not in results:  # its scanner process died: say so for each of its targets
                results[i] = TargetFacts(id=job.label, kind=scheme_of(job.spec), status="error", reason="error",
                                         error="the scanner process for this target ended unexpectedly",
                                         tags=dict(job.tags))
    return interrupted


class ProgressBar:
    """A rich progress bar on stderr: done, failed, remaining. An Observer for collect_fleet."""

    def __init__(self, total: int, *, file: IO[str] | None = None, force: bool = False) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.total = total
        self.done = self.failed = self.running = 0
        self._lock = threading.Lock()
        console = Console(file=file, stderr=file is None, force_terminal=force or None)
        self.progress = Progress(TextColumn("[bold]scanning"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), console=console)
        self.task = self.progress.add_task("scan", total=total, counts=self._counts())

    def _counts(self) -> str:
        remaining = self.total - self.done - self.failed
        return f"done {self.done} · failed {self.failed} · remaining {remaining} ({self.running} running)"

    def __enter__(self) -> ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def target_started(self, target_id: str) -> None:
        with self._lock:
            self.running += 1
            self.progress.update(self.task, counts=self._counts())

    def target_finished(self, target_id: str, status: str) -> None:
        with self._lock:
            self.running -= 1
            if status == "error":
                self.failed += 1
            else:
                self.done += 1
            self.progress.update(self.task, advance=1, counts=self._counts())
