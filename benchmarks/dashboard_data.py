"""A year of daily mamoru reports for a fleet of hosts, made from real reports of this machine.

Why not random JSON: the dashboard's costs (schema validation, evidence and finding-set deduplication, the zstd
delta of an unchanged day) depend on what real reports look like. So the shapes are real ``mamoru scan``
reports — this machine (``local``) and the two rootfs fixtures (``hardened``, ``weak``) — and only what changes
between real daily runs is varied: host name, machine id, operator, run id, start/finish times, every finding's
``duration_ms``, the chain link (``run.previous``), and per host a few scripted events over the year: a check
that starts failing and is fixed weeks later (its failing finding is a real one from another shape), a waiver
that is granted, then expiring, then expired, a day whose report never arrives (a chain gap) and a host that
stops reporting. Each host has its own account counts (IA-05's evidence), so no two hosts share their findings.
Evidence is otherwise the same day after day (a counter that changes is measured separately: churn_days).

Rendering a 110 KB report with ``json.dumps`` for each of 365,000 host-days would take longer than the benchmark
itself, so each distinct state of a host is rendered ONCE by mamoru's own ``reports.json_report.render_json``
with placeholders where the daily values go, and a day's bytes are that text with the values joined in: the
same bytes ``render_json`` would write for that day's report (``check_render`` proves it for a sample).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import hashlib
import json
import random
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from reports.json_report import render_json  # noqa: E402
from reports.model import Report  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "rootfs"
SHAPES = ("local", "hardened", "weak")
#: How the fleet is made of the shapes: most machines look like this one, the rest like the fixtures.
SHAPE_WEIGHTS = (0.6, 0.2, 0.2)
SCOPE = "/var/lib/mamoru/reports"
_PLACEHOLDER = re.compile(r'"@@([A-Z]+[0-9]*)@@"')


def scan_shapes(workdir: Path) -> dict[str, bytes]:
    """Real reports: ``mamoru scan`` of this machine and of the two rootfs fixtures (this tree's code)."""
    targets = {"local": "local", "hardened": f"rootfs:{FIXTURES / 'hardened'}", "weak": f"rootfs:{FIXTURES / 'weak'}"}
    out: dict[str, bytes] = {}
    for name, target in targets.items():
        directory = workdir / name
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "report.json"
        proc = subprocess.run([sys.executable, "-c", "from agent.cli.main import run; run()", "scan", "--quiet",
                               "--target", target, "--output", str(path)],
                              cwd=ROOT, capture_output=True, timeout=600, check=False)
        if not path.exists():  # exit 1 (failures found) is normal; no report is not
            raise RuntimeError(f"mamoru scan --target {target} wrote no report: {proc.stderr.decode()[-500:]}")
        out[name] = path.read_bytes()
    return out


@dataclasses.dataclass(frozen=True)
class Event:
    """A scripted change of one check on one host over days [first, last]."""

    kind: str  # "failing": the check fails (then is fixed); "waiver": a failure is accepted for a while
    check: str
    first: int
    last: int


@dataclasses.dataclass
class HostPlan:
    index: int
    hostname: str
    machine_id: str
    shape: str
    minute: int  # minute of the day the daily scan starts
    events: list[Event]
    missing: set[int]  # days whose report never arrives (the next one names it: a chain gap)
    stop: int | None  # the host stops reporting from this day on

    def reports_on(self, day: int) -> bool:
        return day not in self.missing and (self.stop is None or day < self.stop)


@dataclasses.dataclass(frozen=True)
class DayReport:
    host: int
    day: int
    data: bytes
    sha256: str
    run_id: str
    started: dt.datetime
    finished: dt.datetime
    name: str
    changed: bool  # this host's findings differ from its previous report's (a status or waiver change)


class _Template:
    """One state of one host rendered by render_json, split at its placeholders."""

    def __init__(self, text: str) -> None:
        self.parts: list[str] = []
        self.keys: list[str] = []
        pos = 0
        for m in _PLACEHOLDER.finditer(text):
            self.parts.append(text[pos:m.start()])
            self.keys.append(m.group(1))
            pos = m.end()
        self.parts.append(text[pos:])

    def fill(self, values: dict[str, str]) -> bytes:
        out = [self.parts[0]]
        for key, part in zip(self.keys, self.parts[1:], strict=True):
            out.append(values[key])
            out.append(part)
        return "".join(out).encode("utf-8")


class Fleet:
    """Plans and renders the reports of ``hosts`` hosts over ``days`` days, deterministically from ``seed``."""

    def __init__(self, shapes: dict[str, bytes], hosts: int, days: int, seed: int = 15,
                 churn_days: frozenset[int] = frozenset(), start: dt.datetime | None = None) -> None:
        #: Day 0 at 00:00 UTC. Default: the year ends now, so that day ``days - 2`` (the benchmark's measured
        #: day, scans at 02:00-05:00 UTC) is today (six hours ago) and the pages' "last 90 days" and "stopped
        #: reporting" see the year as recent.
        today = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=6)).replace(hour=0, minute=0, second=0, microsecond=0)
        self.start = start or today - dt.timedelta(days=days - 2)
        #: Days on which a counter in the evidence changes (LG-01's processes_seen, which on a real machine
        #: differs from run to run): every other day, the evidence is exactly the previous day's.
        self.churn_days = churn_days
        self.docs = {name: json.loads(data) for name, data in shapes.items()}
        self.hosts, self.days, self.seed = hosts, days, seed
        self._alternates = self._failing_alternates()
        rng = random.Random(seed)
        self.plans = [self._plan(i, rng) for i in range(hosts)]
        self._templates: dict[tuple[int, tuple[str, ...], bool], _Template] = {}

    # --- planning ------------------------------------------------------------------------------------------

    def _failing_alternates(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Per shape: checks that do not fail there, with a REAL failing finding of that check from another."""
        fails: dict[str, dict[str, Any]] = {}
        for doc in self.docs.values():
            for f in doc["findings"]:
                if f["status"] == "fail" and f["target"] != "organisation":
                    fails.setdefault(f["check"], f)
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for name, doc in self.docs.items():
            out[name] = {f["check"]: fails[f["check"]] for f in doc["findings"]
                         if f["target"] != "organisation" and f["status"] in ("pass", "not_applicable")
                         and f["check"] in fails}
        return out

    def _host_fails(self, shape: str) -> list[str]:
        return sorted({f["check"] for f in self.docs[shape]["findings"]
                       if f["status"] == "fail" and f["target"] != "organisation"})

    def _plan(self, i: int, rng: random.Random) -> HostPlan:
        shape = rng.choices([s for s in SHAPES if s in self.docs],
                            weights=[w for s, w in zip(SHAPES, SHAPE_WEIGHTS, strict=True) if s in self.docs])[0]
        events: list[Event] = []
        days = self.days
        alternates = sorted(self._alternates.get(shape, {}))
        # ~1 host in 8 has a check that starts failing and is fixed 1-8 weeks later; 1 in 100 never fixes it.
        if alternates and rng.random() < 0.125:
            first = rng.randrange(days)
            last = days - 1 if rng.random() < 0.08 else min(days - 1, first + rng.randrange(7, 57))
            events.append(Event("failing", rng.choice(alternates), first, last))
        # ~1 host in 30 gets a 90-day waiver for one of its failures (granted mid-year, then expiring/expired).
        fails = self._host_fails(shape)
        if fails and rng.random() < 1 / 30:
            first = rng.randrange(days)
            events.append(Event("waiver", rng.choice(fails), first, first + 90))
        missing = {rng.randrange(1, days)} if days > 2 and rng.random() < 0.02 else set()
        stop = rng.randrange(days // 2, days) if days > 4 and rng.random() < 0.01 else None
        return HostPlan(index=i, hostname=f"pc-{i:04d}.office{i // 50:02d}.example.jp",
                        machine_id=uuid.UUID(int=rng.getrandbits(128)).hex, shape=shape,
                        minute=rng.randrange(120, 300), events=events, missing=missing, stop=stop)

    # --- rendering -----------------------------------------------------------------------------------------

    def _state(self, plan: HostPlan, day: int) -> tuple[str, ...]:
        """What is different from the host's shape on this day (the key of a rendered template)."""
        state: list[str] = []
        for ev in plan.events:
            if ev.kind == "failing" and ev.first <= day <= ev.last:
                state.append(f"failing:{ev.check}")
            elif ev.kind == "waiver" and ev.first <= day:
                left = ev.last - day
                state.append(f"waiver:{ev.check}:{'valid' if left > 30 else 'expiring' if left >= 0 else 'expired'}")
        return tuple(state)

    def _waiver_expires(self, plan: HostPlan, check: str) -> str:
        ev = next(e for e in plan.events if e.kind == "waiver" and e.check == check)
        return (self.start + dt.timedelta(days=ev.last)).strftime("%Y-%m-%d")

    def _render(self, plan: HostPlan, state: tuple[str, ...], first: bool) -> _Template:
        state = tuple(s for s in state if not s.startswith("procs:"))
        key = (plan.index, state, first)
        cached = self._templates.get(key)
        if cached is not None:
            return cached
        doc = copy.deepcopy(self.docs[plan.shape])
        host_target = next(t for t in doc["targets"] if t["kind"] != "organisation")
        old_id = host_target["id"]
        host_target.update(id="local", kind="local", hostname=plan.hostname, machine_id=plan.machine_id,
                           status="ok" if host_target["status"] == "partial" else host_target["status"], reason=None)
        run = doc["run"]
        run.update(id="@@RUN@@", started="@@START@@", finished="@@FIN@@",
                   operator={"user": "root", "host": plan.hostname}, scope=SCOPE)
        run["previous"] = None if first else {"sha256": "@@PSHA@@", "run_id": "@@PRUN@@", "file": "@@PFILE@@"}
        for n, f in enumerate(doc["findings"]):
            if f["target"] == old_id:
                f["target"] = "local"
            for item in state:
                kind, check, *rest = item.split(":")
                if f["check"] != check or f["target"] != "local":
                    continue
                if kind == "failing":
                    alt = self._alternates[plan.shape][check]
                    f.update({k: copy.deepcopy(alt[k]) for k in ("status", "severity", "message", "evidence",
                                                                 "expected", "remediation")})
                elif kind == "waiver":
                    f["waiver"] = {"reason": "業者の交換待ち / waiting for the vendor's replacement",
                                   "approver": "総務部 佐藤", "expires": self._waiver_expires(plan, check),
                                   "state": rest[0], "source": "/etc/mamoru/waivers.yaml"}
            f["duration_ms"] = f"@@D{n}@@"
            ev = f.get("evidence")
            if f["check"] == "IA-05" and isinstance(ev, dict) and isinstance(ev.get("users"), int):
                # Hosts differ: their own account counts make each host's findings its own, as in an office.
                ev["users"] += plan.index % 37
                if isinstance(ev.get("groups"), int):
                    ev["groups"] += plan.index // 37
            if f["check"] == "LG-01" and isinstance(ev, dict) and "processes_seen" in ev:
                ev["processes_seen"] = "@@PROCS@@"
        template = _Template(render_json(Report.from_dict(doc)).decode("utf-8"))
        self._templates[key] = template
        return template

    def _values(self, rng: random.Random, plan: HostPlan, day: int, template: _Template,
                previous: DayReport | None) -> tuple[dict[str, str], str, dt.datetime, dt.datetime]:
        started = self.start + dt.timedelta(days=day, minutes=plan.minute, seconds=rng.randrange(60),
                                            milliseconds=rng.randrange(1000))
        run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        finished = started + dt.timedelta(milliseconds=rng.randrange(80, 4000))
        values = {"RUN": json.dumps(run_id), "START": json.dumps(_stamp(started)), "FIN": json.dumps(_stamp(finished)),
                  "PROCS": str(self._procs(plan, day))}
        if previous is not None:
            values.update(PSHA=json.dumps(previous.sha256), PRUN=json.dumps(previous.run_id),
                          PFILE=json.dumps(previous.name))
        for key in template.keys:
            if key.startswith("D"):
                values[key] = repr(round(rng.lognormvariate(2.3, 1.0), 3))
        return values, run_id, started, finished

    def _procs(self, plan: HostPlan, day: int) -> int:
        return 90 + plan.index % 40 + (1 + day % 7 if day in self.churn_days else 0)

    def host_reports(self, index: int, day_from: int = 0, day_to: int | None = None) -> Iterator[DayReport]:
        """The reports host ``index`` delivers on days [day_from, day_to), in order (chain links included).

        Every day is generated from day 0 (the chain needs the previous day's hash), but only the asked-for
        ones are yielded. A report that never arrives is still made: the next one names it.
        """
        plan = self.plans[index]
        rng = random.Random(f"{self.seed}:{index}")
        previous: DayReport | None = None
        last_state: tuple[str, ...] | None = None
        end = self.days if day_to is None else day_to
        for day in range(end):
            if plan.stop is not None and day >= plan.stop:
                return
            state = (*self._state(plan, day), f"procs:{self._procs(plan, day)}")
            template = self._render(plan, state, previous is None)
            values, run_id, started, finished = self._values(rng, plan, day, template, previous)
            data = template.fill(values)
            name = f"report-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
            report = DayReport(host=index, day=day, data=data, sha256=hashlib.sha256(data).hexdigest(),
                               run_id=run_id, started=started, finished=finished,
                               name=name, changed=state != last_state)
            last_state = state
            previous = report
            if day >= day_from and day not in plan.missing:
                yield report

    def check_render(self, index: int, day: int) -> None:
        """The filled template is byte for byte what render_json writes for the same report."""
        for rep in self.host_reports(index, day, day + 1):
            again = render_json(Report.from_dict(json.loads(rep.data)))
            if again != rep.data:
                raise AssertionError(f"host {index} day {day}: template fill differs from render_json")

    def describe(self) -> dict[str, int]:
        """How many hosts have which scripted event (printed with the results)."""
        return {"hosts": self.hosts, "days": self.days,
                "failing_then_fixed": sum(any(e.kind == "failing" and e.last < self.days - 1 for e in p.events)
                                          for p in self.plans),
                "failing_to_year_end": sum(any(e.kind == "failing" and e.last >= self.days - 1 for e in p.events)
                                           for p in self.plans),
                "waivers": sum(any(e.kind == "waiver" for e in p.events) for p in self.plans),
                "chain_gaps": sum(bool(p.missing) for p in self.plans),
                "stopped": sum(p.stop is not None for p in self.plans)}


def _stamp(t: dt.datetime) -> str:
    """mamoru's run time format: UTC, milliseconds, ``Z``."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def shapes_in_tempdir() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory(prefix="mamoru-bench-shapes-") as tmp:
        return scan_shapes(Path(tmp))
