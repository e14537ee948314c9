"""The pipeline: targets -> collectors -> facts -> checks -> findings.

Two halves that can run apart: ``collect_target`` produces a serialisable
``TargetFacts`` (what ``mamoru collect`` saves in a bundle), and
``evaluate_target`` judges it with a policy (what ``mamoru evaluate`` does
later). ``scan`` is both in one go. Every collector runs once per target,
under a timeout, and any failure — an exception, a hang, a dead host — is kept
as an error fact for the checks that needed it; the scan goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import getpass
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import agent
from agent.config.policy import Policy
from agent.targets import open_target
from agent.targets.base import Target, TargetError
from checks.base import Check, FactSet, Status, Text, common_texts, explain
from collectors.base import Collector, CollectorError
from reports.model import Finding, Report, RunInfo, TargetRecord

if TYPE_CHECKING:
    from checks.organisation import Organisation


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclasses.dataclass(kw_only=True)
class FactRecord:
    collector: str
    version: str
    collected_at: str
    duration_ms: float
    data: Any = None
    error: str | None = None


@dataclasses.dataclass(kw_only=True)
class TargetFacts:
    """Everything gathered from one target: the unit of an evidence bundle."""

    id: str
    kind: str
    hostname: str = ""
    os: str = ""
    system: str = "unknown"
    machine_id: str = ""
    status: str = "ok"  # ok | partial | error
    error: str | None = None
    #: Why the target is not ``ok``, as a code (reports/schema: targets[].reason); None when ok.
    reason: str | None = None
    #: Labels from the inventory (``role: file-server``), carried into bundles and reports.
    tags: dict[str, str] = dataclasses.field(default_factory=dict)
    facts: dict[str, FactRecord] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TargetFacts:
        facts = {k: FactRecord(**v) for k, v in data.get("facts", {}).items()}
        return cls(**{**data, "facts": facts})


class Observer(Protocol):
    """Progress hooks, so the runner never prints (the CLI decides how to show progress)."""

    def target_started(self, target_id: str) -> None: ...

    def target_finished(self, target_id: str, status: str) -> None: ...


class _Silent:
    def target_started(self, target_id: str) -> None:
        pass

    def target_finished(self, target_id: str, status: str) -> None:
        pass


def call_with_timeout(fn: Callable[[], Any], timeout: float) -> Any:
    """Run ``fn`` in a daemon thread; raise TimeoutError if it has not returned in time.

    A hung collector cannot be killed from Python, but a daemon thread never
    keeps the process alive and the scan goes on without it.
    """
    box: dict[str, Any] = {}

    def runner() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=runner, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"no result within {timeout:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _ensure_jsonable(data: Any) -> Any:
    """Facts must survive a bundle round trip; anything else is a collector bug."""
    json.dumps(data, allow_nan=False)
    return data


def run_collector(collector: Collector, target: Target, policy: Policy | None = None) -> FactRecord:
    started = now_iso()
    t0 = time.perf_counter()
    inputs = {key: policy.get(key) for key in collector.inputs} if policy is not None else {}
    try:
        data = call_with_timeout(lambda: _ensure_jsonable(collector.collect_with(target, inputs)),
                                 collector.timeout)
        error = None
    except TimeoutError as e:
        data, error = None, f"timed out ({e})"
    except (CollectorError, TargetError) as e:
        data, error = None, str(e)
    except Exception as e:  # a collector bug must cost one fact, not the scan
        data, error = None, f"internal error: {type(e).__name__}: {e}"
    return FactRecord(
        collector=collector.id,
        version=collector.version,
        collected_at=started,
        duration_ms=round((time.perf_counter() - t0) * 1000, 3),
        data=data,
        error=error,
    )


def needed_collectors(checks: Iterable[Check], available: dict[str, Collector], *,
                      active: bool = False) -> list[Collector]:
    """Collectors the checks need; active ones (which act on the target) only when ``active`` is given."""
    names: list[str] = []
    for c in checks:
        for n in c.needs:
            if n not in names:
                names.append(n)
    return [available[n] for n in names if n in available and (active or not available[n].active)]


def collect_target(spec: str, collectors: Sequence[Collector], *, target_options: dict[str, Any] | None = None,
                   policy: Policy | None = None, connect_timeout: float = 60.0) -> TargetFacts:
    """Open a target and gather the facts of every collector, concurrently, each under its timeout."""
    tf = TargetFacts(id=spec, kind="unknown")
    try:
        target = call_with_timeout(lambda: open_target(spec, **(target_options or {})), connect_timeout)
    except Exception as e:
        tf.status, tf.error, tf.reason = "error", _describe(e), reason_of(e)
        return tf
    tf.kind = target.kind
    tf.id = target.id
    try:
        info = call_with_timeout(target.platform, connect_timeout)
        tf.hostname, tf.os, tf.system, tf.machine_id = info.hostname, info.os_string(), info.system, info.machine_id
        applicable = [c for c in collectors if info.system in c.platforms]
        announce_reads(target, applicable)
        results: dict[str, FactRecord] = {}
        threads = []
        for c in applicable:
            th = threading.Thread(target=lambda c=c: results.__setitem__(c.id, run_collector(c, target, policy)),
                                  daemon=True)
            th.start()
            threads.append((c, th))
        for c, th in threads:
            th.join(c.timeout + 5)
            if c.id not in results:
                results[c.id] = FactRecord(collector=c.id, version=c.version, collected_at=now_iso(),
                                           duration_ms=(c.timeout + 5) * 1000, error="timed out")
        tf.facts = {c.id: results[c.id] for c, _ in threads}
        lost = target.failure
        if lost is not None:  # the host went away mid-scan: what came before it still counts
            tf.status = "partial" if any(r.error is None for r in tf.facts.values()) else "error"
            tf.error, tf.reason = _describe(lost), lost.reason
    except Exception as e:
        tf.status, tf.error, tf.reason = "error", _describe(e), reason_of(e)
    finally:
        with contextlib.suppress(Exception):  # closing a dead connection is not worth a failure
            target.close()
    return tf


def announce_reads(target: Target, collectors: Sequence[Collector]) -> None:
    """Tell the target, in one go, what the collectors are about to read (``Collector.reads``/``lists``).

    Directories first: their listings already answer whether each declared file exists, and what it is.
    """
    target.prefetch(dict.fromkeys(p for c in collectors for p in c.lists), op="list")
    target.prefetch(dict.fromkeys(p for c in collectors for p in c.probes), op="stat")
    target.prefetch(dict.fromkeys(p for c in collectors for p in c.reads))
    for c in collectors:  # Windows: PowerShell parts and registry keys, run together in one batch
        c.announce(target)


def reason_of(e: BaseException) -> str:
    """The report's reason code for an error that stopped a whole target."""
    if isinstance(e, TargetError):
        return e.reason
    if isinstance(e, TimeoutError):
        return "timeout"
    return "error"


def _describe(e: BaseException) -> str:
    diag = getattr(e, "diagnostics", None)
    if callable(diag):
        return str(diag())
    return str(e) or type(e).__name__


#: Why a target that was reached still cannot be judged (reports/schema: targets[].reason), each with its
#: sentence in checks/meta/_common.yaml.
UNJUDGEABLE_REASONS = ("platform_unknown", "nothing_applicable")


def unjudgeable(tf: TargetFacts, checks: Sequence[Check]) -> tuple[str, Text] | None:
    """Why nothing can be judged on a target that was reached: its system is not recognised, or none of the
    chosen checks applies to its system (a Windows image, an empty directory, a Wi-Fi survey with ``--check
    IA-01``). Each check alone would say ``not_applicable``; together that is a clean bill for a target the
    scan told nothing about, so the target is an ``error`` instead, with the reason."""
    if tf.status == "error":
        return None  # already an error, with its own reason
    if tf.system == "unknown":
        return "platform_unknown", common_texts()["platform_unknown"]
    if not any(tf.system in c.meta.platforms for c in checks):
        return "nothing_applicable", common_texts()["nothing_applicable"].format({"platform": tf.system})
    return None


def evaluate_target(tf: TargetFacts, checks: Sequence[Check], policy: Policy) -> list[Finding]:
    """Judge one target's facts. Pure: the same facts and policy always give the same findings."""
    data = {k: r.data for k, r in tf.facts.items() if r.error is None}
    errors = {k: r.error for k, r in tf.facts.items() if r.error is not None}
    facts = FactSet(data, errors)
    problem = unjudgeable(tf, checks)
    findings = []
    for check in checks:
        t0 = time.perf_counter()
        evidence: Any = None
        expected: Any = None
        if tf.status == "error":
            outcome_status = Status.ERROR
            reason = explain(tf.error or "")
            message = common_texts()["facts_unavailable"].format(
                {"reason_ja": reason.ja, "reason_en": reason.en}
            )
        elif problem is not None:
            outcome_status, message = Status.ERROR, problem[1]
        elif tf.system not in check.meta.platforms:
            outcome_status = Status.NOT_APPLICABLE
            message = common_texts()["platform_unsupported"].format({"platform": tf.system})
        else:
            outcome = check.evaluate(facts, policy)
            outcome_status, message, evidence, expected = (
                outcome.status, outcome.message, outcome.evidence, outcome.expected
            )
        judge_ms = (time.perf_counter() - t0) * 1000
        collect_ms = sum(tf.facts[n].duration_ms for n in check.needs if n in tf.facts)
        findings.append(
            Finding(
                check=check.id,
                target=tf.id,
                status=outcome_status.value,
                severity=check.meta.severity.value,
                guideline=list(check.meta.guideline),
                title=check.meta.title.as_dict(),
                message=message.as_dict(),
                remediation=check.meta.messages.get(f"remediation_{tf.system}", check.meta.remediation).as_dict(),
                evidence=evidence,
                expected=expected,
                duration_ms=round(judge_ms + collect_ms, 3),
            )
        )
    return findings


def target_record(tf: TargetFacts, checks: Sequence[Check]) -> TargetRecord:
    """The report's line for a target; ``checks`` are the chosen ones (see ``unjudgeable``)."""
    status, error, reason = tf.status, tf.error, tf.reason
    problem = unjudgeable(tf, checks)
    if problem is not None:
        status, reason, error = "error", problem[0], problem[1].en
    elif status == "ok" and tf.facts and any(r.error for r in tf.facts.values()):
        status = "partial"
    reason = reason or {"ok": None, "partial": "partial"}.get(status, "error")
    return TargetRecord(id=tf.id, kind=tf.kind, hostname=tf.hostname, os=tf.os, status=status, error=error,
                        machine_id=tf.machine_id, reason=reason, tags=dict(tf.tags))


def operator() -> dict[str, str]:
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return {"user": user, "host": socket.gethostname()}


def build_report(*, run_id: str, started: str, target_facts: Sequence[TargetFacts], checks: Sequence[Check],
                 policy: Policy, scope: str = "", partial: bool = False,
                 policy_for: Callable[[TargetFacts], Policy] | None = None,
                 organisation: Organisation | None = None) -> Report:
    """``policy_for`` gives a target its own policy (the inventory's per-target overrides laid over ``policy``);
    ``organisation`` adds the one organisation target and its questions (``checks.organisation``)."""
    findings: list[Finding] = []
    for tf in target_facts:
        findings.extend(evaluate_target(tf, checks, policy_for(tf) if policy_for else policy))
    records = [target_record(tf, checks) for tf in target_facts]
    if organisation is not None and organisation.questions:
        records.append(organisation.record())
        findings.extend(organisation.findings())
    return Report(
        run=RunInfo(
            id=run_id,
            started=started,
            finished=now_iso(),
            tool={"name": "mamoru", "version": agent.version()},
            policy={"name": policy.name, "sha256": policy.sha256, "source": policy.source},
            operator=operator(),
            scope=scope,
            partial=partial,
        ),
        targets=records,
        findings=findings,
    )


def collect_all(specs: Sequence[str], collectors: Sequence[Collector], *, workers: int = 8,
                observer: Observer | None = None, target_options: dict[str, Any] | None = None,
                policy: Policy | None = None) -> list[TargetFacts]:
    """Collect from many targets with a bounded pool; results keep the order of ``specs``.

    ``policy`` supplies the values collectors declare as ``inputs`` (which paths hold personal data).
    """
    obs = observer or _Silent()
    results: dict[int, TargetFacts] = {}
    lock = threading.Semaphore(max(1, workers))

    def one(i: int, spec: str) -> None:
        with lock:
            obs.target_started(spec)
            tf = collect_target(spec, collectors, target_options=target_options, policy=policy)
            results[i] = tf
            obs.target_finished(spec, tf.status)

    threads = [threading.Thread(target=one, args=(i, s), daemon=True) for i, s in enumerate(specs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [results[i] for i in range(len(specs))]


def new_run_id() -> str:
    return str(uuid.uuid4())
