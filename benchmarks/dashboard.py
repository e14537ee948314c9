#!/usr/bin/env python3
"""The compliance dashboard at fleet scale: a year of signed daily reports of 1,000 hosts, on SQLite and PostgreSQL.

What one run does, per database (each in its own process: Django's database is chosen at start-up):

1. Reports: real ``mamoru scan`` reports of this machine and of the two rootfs fixtures are the shapes of the
   fleet (benchmarks/dashboard_data.py: per host name, machine id, run ids and times, durations, chain links,
   a check that starts failing and is fixed, waivers, a lost report, a host that stops reporting). Every report
   is signed with a real Ed25519 key (reports.signing.sshsig, as ``mamoru scan --sign-key`` does); the
   organisation's allowed_signers lists it.
2. Hosts are added in steps (``--steps``, default 100, 300, 1000). For each step's new hosts, the year is
   loaded day by day (all hosts' day 1, then day 2 …, as agents deliver them):
   * INGESTED (timed): every report through the real ``dashboard.ingest.ingest`` (sha256, signature against
     allowed_signers, schema, storage): each host's first report, every report whose findings changed (a
     failure, a fix, a waiver's state), every report after a lost one (a chain gap), and, once the year is in,
     the last-but-one day of every host of the step (the steady state: an unchanged day into a full database).
   * FILLED (not timed per report): the other days — a host whose findings did not change, linked to its
     previous report — are written in bulk by ``fill_day`` below: the rows ``ingest`` writes for such a report
     (Blob compressed with dashboard.storage's codec, level and keyframe rule, Report, one Observation per
     target pointing at the previous day's finding sets, Series head and Host latest/last_seen), without
     re-verifying the signature and re-validating the schema per report. ``--verify-fill`` (run first, in a
     database of its own) loads the same small fleet both ways and compares every row; the run stops if they
     differ.
3. After each step: overview and host page latency through Django's test Client (in-process: request
   middleware, view, ORM queries, template rendering; no socket, no gunicorn), median and p95; the database
   size (PostgreSQL: pg_database_size and pg_total_relation_size per table after VACUUM ANALYZE; SQLite: the
   file after VACUUM) divided by the host-days stored.
4. At the last step: concurrent ingest — ``--concurrency`` processes ingest the last day of disjoint hosts at
   once (SQLite: "database is locked" is the limit of one file).

The peer for storage is what one would keep without a dashboard: each report and its .sig as files, each
compressed on its own with ``zstd -19`` (measured on a sample of the same reports).

    .venv/bin/python benchmarks/dashboard.py [--hosts 1000] [--days 365] [--databases sqlite,postgresql]
    .venv/bin/python benchmarks/dashboard.py --quick          # a handful of hosts and days: a smoke run

PostgreSQL: a throwaway cluster (tests/pg_helpers.py: initdb + pg_ctl in a temp directory, Unix socket only),
or ``--postgresql-url`` for a server of your own (the benchmark creates and uses a fresh database in it). The
throwaway cluster is made for tests with fsync off; the benchmark turns ``fsync``, ``synchronous_commit`` and
``full_page_writes`` back on (ALTER SYSTEM, reload) before anything is loaded, as a production server runs.
SQLite runs with Django's defaults (rollback journal, synchronous=FULL).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if sys.path[:1] != [str(ROOT)]:  # first, also when PYTHONPATH names it: benchmarks/ (this script's directory,
    sys.path.insert(0, str(ROOT))  # also on sys.path) has a dashboard.py that would hide the dashboard package

from benchmarks.dashboard_data import Fleet, scan_shapes  # noqa: E402

GOAL_INGEST_MS = 20.0
GOAL_INGEST_BYTES = 60 * 1024
GOAL_OVERVIEW_P95_MS = 200.0
GOAL_BYTES_PER_DAY = 2048
IDENTITY = "agents@bench.example.jp"
#: How long after its run a report is taken to have arrived (Report.received, on the simulated clock).
ARRIVAL = dt.timedelta(seconds=5)
ORG = "bench"


# ===== the parent: arguments, shapes, key, one worker per database, the table ==============================

def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--steps", default="100,300,1000",
                    help="host counts at which pages, sizes and ingest are measured (those above --hosts are "
                         "dropped; --hosts is always the last)")
    ap.add_argument("--databases", default="sqlite,postgresql")
    ap.add_argument("--postgresql-url", help="an existing server (default: a throwaway cluster)")
    ap.add_argument("--page-runs", type=int, default=30, help="requests per page and step (after one warm-up)")
    ap.add_argument("--concurrency", default="1,4,8",
                    help="processes ingesting at once at the last step (each level gets its own hosts)")
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--no-verify-fill", action="store_true", help="skip the fill = ingest row comparison")
    ap.add_argument("--quick", action="store_true", help="6 hosts x 8 days, steps 3,6: a smoke run")
    ap.add_argument("--worker", help=argparse.SUPPRESS)  # internal: JSON job file of one database
    args = ap.parse_args(argv)
    if args.worker:
        return _worker_main(Path(args.worker))
    if args.quick:
        args.hosts, args.days, args.steps, args.page_runs, args.concurrency = 6, 8, "3,6", 3, "1,2"
    steps = sorted({s for s in (int(x) for x in args.steps.split(",") if x.strip()) if 0 < s < args.hosts}
                   | {args.hosts})
    levels = [int(x) for x in args.concurrency.split(",") if x.strip()]
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    if args.days < 4:
        ap.error("--days must be at least 4 (first day, filled days, measured day, concurrent day)")
    bad = set(databases) - {"sqlite", "postgresql"}
    if bad:
        ap.error(f"unknown database(s): {', '.join(sorted(bad))}")

    with tempfile.TemporaryDirectory(prefix="mamoru-bench-dashboard-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        t0 = time.perf_counter()
        shapes = scan_shapes(work / "shapes")
        for name, data in shapes.items():
            (work / f"shape-{name}.json").write_bytes(data)
        key_file = _make_key(work)
        fleet = Fleet(shapes, args.hosts, args.days, args.seed)
        print(f"shapes: {', '.join(f'{n} {len(d) / 1024:.0f} KB' for n, d in shapes.items())} "
              f"(real mamoru scan reports, {time.perf_counter() - t0:.1f} s); fleet: {fleet.describe()}", flush=True)

        pg_url = args.postgresql_url
        if "postgresql" in databases and not pg_url:
            pg_url = stack.enter_context(_throwaway_cluster()).url()
            _durable(pg_url)
        results: dict[str, dict[str, Any]] = {}
        common = {"shapes": str(work), "key": str(key_file), "hosts": args.hosts, "days": args.days,
                  "steps": steps, "seed": args.seed, "page_runs": args.page_runs, "levels": levels}
        for db in databases:
            if not args.no_verify_fill:
                url = _database_url(db, work, "verify", pg_url)
                res = _run_worker(work, db, {**common, "mode": "verify", "url": url})
                print(f"[{db}] fill = ingest: {res['verify']}", flush=True)
            url = _database_url(db, work, "bench", pg_url)
            results[db] = _run_worker(work, db, {**common, "mode": "bench", "url": url})
        peer = _peer_bytes(fleet)
        _print_results(args, steps, results, peer)
    return 0


def _make_key(work: Path) -> Path:
    """A real Ed25519 key in OpenSSH form, as ``mamoru keygen`` writes it (0600)."""
    from reports.signing.keys import create_key_files

    path = work / "agent_key"
    create_key_files(path, comment=IDENTITY)
    return path


@contextlib.contextmanager
def _throwaway_cluster() -> Iterator[Any]:
    try:
        from tests.pg_helpers import PgCluster
    except ImportError:
        raise SystemExit("PostgreSQL: tests/pg_helpers.py is not in this tree; pass --postgresql-url") from None
    with PgCluster() as pg:
        yield pg


def _durable(url: str) -> None:
    """The throwaway cluster as a production server runs: every commit on disk (as its superuser)."""
    import psycopg

    with psycopg.connect(**{**_conninfo(url), "user": "postgres", "dbname": "postgres"}, autocommit=True) as conn:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"ALTER SYSTEM SET {setting} = on")
        conn.execute("SELECT pg_reload_conf()")


def _database_url(db: str, work: Path, name: str, pg_url: str | None) -> str:
    if db == "sqlite":
        return f"sqlite:///{work / (name + '.sqlite3')}"
    assert pg_url is not None
    import psycopg
    from psycopg import sql

    conninfo = _conninfo(pg_url)
    fresh = f"mamoru_{name}_{os.getpid()}"
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(fresh)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(fresh)))
    return pg_url.rsplit("/", 1)[0] + "/" + fresh


def _conninfo(url: str) -> dict[str, Any]:
    import dj_database_url

    cfg = dj_database_url.parse(url)
    out = {"dbname": cfg["NAME"], "user": cfg["USER"] or None, "host": cfg["HOST"] or None,
           "port": cfg["PORT"] or None, "password": cfg["PASSWORD"] or None}
    return {k: v for k, v in out.items() if v is not None}


def _run_worker(work: Path, db: str, job: dict[str, Any]) -> dict[str, Any]:
    job_file = work / f"job-{db}-{job['mode']}.json"
    out_file = job_file.with_suffix(".out.json")
    job["out"] = str(out_file)
    job_file.write_text(json.dumps(job))
    env = {**os.environ, "MAMORU_DASHBOARD_DATABASE": job["url"], "MAMORU_DASHBOARD_DATA": str(work / "data"),
           "MAMORU_DASHBOARD_SECRET_KEY": "bench-only-" + "x" * 40,
           "MAMORU_DASHBOARD_ALLOWED_HOSTS": "testserver", "DJANGO_SETTINGS_MODULE": "dashboard.settings"}
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(job_file)], env=env,
                          cwd=ROOT, check=False)
    if proc.returncode != 0 or not out_file.exists():
        raise SystemExit(f"[{db}] {job['mode']} worker failed (exit {proc.returncode})")
    result: dict[str, Any] = json.loads(out_file.read_text())
    return result


def _peer_bytes(fleet: Fleet, sample: int = 40) -> float:
    """Per host-day: the report and its .sig as files, the report compressed alone with zstd -19."""
    import zstandard

    rng = random.Random(1)
    sizes = []
    for _ in range(sample):
        host = rng.randrange(fleet.hosts)
        day = rng.randrange(1, fleet.days - 2)
        for rep in fleet.host_reports(host, day, day + 1):
            sizes.append(len(zstandard.ZstdCompressor(level=19).compress(rep.data)) + 294)  # + an armored .sig
    return statistics.mean(sizes) if sizes else 0.0


def _q(values: Sequence[float], p: float) -> float:
    """The p-quantile (nearest rank) of VALUES; NaN when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p * (len(s) - 1))))]


def _print_results(args: argparse.Namespace, steps: list[int], results: dict[str, dict[str, Any]],
                   peer: float) -> None:
    print()
    print(f"mamoru dashboard benchmark: {args.hosts} hosts x {args.days} days, steps {steps}, "
          f"pages through Django's test Client (in-process, {args.page_runs} requests each after a warm-up)")
    for db, res in results.items():
        print(f"\n== {db} ({res['server']})")
        print(f"   loaded in {res['load_seconds']:.0f} s: {res['ingested']} reports INGESTED (timed, real "
              f"dashboard.ingest.ingest), {res['filled']} FILLED (bulk rows as ingest writes them, "
              f"{res['fill_rate']:.0f} reports/s)")
        print(f"   {'hosts':>5} {'host-days':>9} | {'ingest ms med':>13} {'p95':>6} {'ms/60KB':>7} | "
              f"{'first':>6} {'changed':>7} | {'overview med':>12} {'p95':>6} {'q':>3} | {'host med':>8} "
              f"{'p95':>6} {'q':>3} | {'B/host-day':>10} {'step B/day':>10}")
        for st in res["steps"]:
            daily = st["ingest_daily_ms"]
            per60 = _q(daily, 0.5) * GOAL_INGEST_BYTES / res["report_bytes"] if daily else float("nan")
            print(f"   {st['hosts']:>5} {st['host_days']:>9} | {_q(daily, .5):>13.1f} {_q(daily, .95):>6.1f} "
                  f"{per60:>7.1f} | {_q(st['ingest_first_ms'], .5):>6.1f} {_q(st['ingest_changed_ms'], .5):>7.1f} | "
                  f"{_q(st['overview_ms'], .5):>12.1f} {_q(st['overview_ms'], .95):>6.1f} "
                  f"{st['overview_queries']:>3} | "
                  f"{_q(st['host_ms'], .5):>8.1f} {_q(st['host_ms'], .95):>6.1f} {st['host_queries']:>3} | "
                  f"{st['bytes_per_host_day']:>10.0f} {st['step_bytes_per_day']:>10.0f}")
        last = res["steps"][-1]
        med = _q(last["ingest_daily_ms"], .5)
        print(f"   report size: {res['report_bytes'] / 1024:.1f} KB median ({res['report_bytes']} B); ingest median "
              f"{med:.1f} ms = {med * GOAL_INGEST_BYTES / res['report_bytes']:.1f} ms per 60 KB "
              f"(goal <= {GOAL_INGEST_MS:.0f} ms per 60 KB)")
        print("   ingest phases (median ms, unchanged day, last step): "
              + ", ".join(f"{k} {v:.2f}" for k, v in res["ingest_phases"].items()))
        print(f"   stored: {last['db_bytes'] / 1e6:.1f} MB for {last['host_days']} host-days = "
              f"{last['bytes_per_host_day']:.0f} B/host-day (goal <= {GOAL_BYTES_PER_DAY} B per unchanged "
              f"host-day); peer (each report + .sig as a file, zstd -19 alone): {peer:.0f} B/host-day, ratio "
              f"{last['bytes_per_host_day'] / peer:.2f}")
        print("   per table, B/host-day (of which indexes): " + ", ".join(
            f"{t} {b / max(1, last['host_days']):.0f} ({last['indexes'].get(t, 0) / max(1, last['host_days']):.0f})"
            for t, b in last["tables"].items() if b / max(1, last["host_days"]) >= 1))
        print("   overview within a minute of the day's deliveries (summary of that day recomputed per request), "
              "med/p95 ms: " + ", ".join(f"{st['hosts']} hosts {_q(st['overview_arriving_ms'], .5):.0f}/"
                                         f"{_q(st['overview_arriving_ms'], .95):.0f}" for st in res["steps"]))
        print("   daily summary refresh after each loaded day (dashboard.queries.refresh_daily), med/p95 ms: "
              + ", ".join(f"{st['hosts']} hosts {_q(st['summary_refresh_ms'], .5):.0f}/"
                          f"{_q(st['summary_refresh_ms'], .95):.0f}" for st in res["steps"]))
        for c in res["concurrency"]:
            print(f"   concurrent ingest, {c['workers']} processes: {c['done']} stored, {c['failed']} failed "
                  f"({c['errors'] or 'no errors'}), {c['per_second']:.1f} reports/s, latency med "
                  f"{_q(c['ms'], .5):.1f} p95 {_q(c['ms'], .95):.1f} ms")
        ch = res["churn"]
        print(f"   a day with ONE changed evidence counter (LG-01 processes_seen, {ch['reports']} hosts shaped like "
              f"this machine): ingest med {_q(ch['ms'], .5):.1f} ms, {ch['bytes_per_report']:.0f} B stored per "
              f"report; rows added per report: " + ", ".join(
                  f"{ch[k] / max(1, ch['reports']):.1f} {k.replace('_', ' ')}"
                  for k in ("finding_sets", "set_members", "findings", "finding_items", "evidence")))
        print(f"   verdict: {_verdict(db, res)}")
    print("\nMEASURED: every INGESTED report's time inside dashboard.ingest.ingest; every page request; database "
          "sizes. FILLED: the bulk rows of unchanged days (see --verify-fill: identical to what ingest writes). "
          "Day order is real (all hosts' day N before day N+1).")


def _verdict(db: str, res: dict[str, Any]) -> str:
    notes = []
    for st in res["steps"]:
        over = [name for name, value, goal in (
            ("overview p95", _q(st["overview_ms"], .95), GOAL_OVERVIEW_P95_MS),
            ("host page p95", _q(st["host_ms"], .95), GOAL_OVERVIEW_P95_MS),
            ("ingest median per 60 KB", _q(st["ingest_daily_ms"], .5) * GOAL_INGEST_BYTES / res["report_bytes"],
             GOAL_INGEST_MS))
            if value > goal]  # NaN (not measured: no such page in this tree) compares False
        notes.append(f"{st['hosts']} hosts: " + ("within the goals" if not over else "over " + ", ".join(over)))
    for c in res["concurrency"]:
        if c["failed"]:
            notes.append(f"{c['failed']}/{c['done'] + c['failed']} concurrent ingests failed at {c['workers']} "
                         f"processes")
    return "; ".join(notes)


# ===== the worker: one database ============================================================================

def _worker_main(job_file: Path) -> int:
    job = json.loads(job_file.read_text())
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    bench = Bench(job)
    out = bench.verify() if job["mode"] == "verify" else bench.run()
    Path(job["out"]).write_text(json.dumps(out))
    return 0


@dataclasses.dataclass
class HostState:
    """What the fill needs to write an unchanged day of one host like ingest would."""

    series_id: int
    host_ids: list[int]  # per target, in report order
    target_ids: list[str]
    target_status: list[str]
    target_error: list[str]
    finding_sets: list[int | None]
    template: dict[str, Any]  # the Report fields an unchanged day repeats
    keyframe_id: int | None
    keyframe_deltas: int
    compressor: Any
    last_started: Any
    last_sha: str


class Bench:
    def __init__(self, job: dict[str, Any]) -> None:
        from reports.signing.keys import load_signing_key

        self.job = job
        work = Path(job["shapes"])
        shapes = {p.name[len("shape-"):-len(".json")]: p.read_bytes() for p in work.glob("shape-*.json")}
        # The day after the year (day DAYS): one evidence counter changes, as on a real machine from run to run.
        self.fleet = Fleet(shapes, job["hosts"], job["days"], job["seed"], churn_days=frozenset({job["days"]}))
        self.key = load_signing_key(job["key"]).private
        self.is_pg = job["url"].startswith("postgres")
        self.ingested = 0
        self.filled = 0
        self.fill_seconds = 0.0
        self.phases: dict[str, list[float]] = {}
        #: The newest filled observation per host and report per series: written at the end of a load (ingest
        #: itself only ever moves them forward, so writing them late ends in the same rows).
        self._host_latest: dict[int, tuple[Any, int]] = {}
        self._series_head: dict[int, tuple[Any, int]] = {}

    # --- setup -------------------------------------------------------------------------------------------

    def _organisation(self, slug: str) -> Any:
        from dashboard.models import Organisation
        from reports.signing.keys import allowed_signers_line, ed25519_blob
        from reports.signing.sshsig import NAMESPACE

        line = allowed_signers_line(IDENTITY, ed25519_blob(self.key.public_key()), NAMESPACE)
        return Organisation.objects.create(slug=slug, name=f"ベンチマーク不動産 {slug}", allowed_signers=line + "\n")

    def _sign(self, data: bytes) -> bytes:
        from reports.signing.sshsig import sign

        return sign(data, self.key)

    # --- the two ways in -----------------------------------------------------------------------------------

    def ingest(self, org: Any, rep: Any, *, simulated_arrival: bool = True) -> float:
        """The real ingest (sha256, signature, schema, storage); returns its wall time in ms.

        SIMULATED_ARRIVAL: then set Report.received to the simulated day (it was delivered then), so that the
        pages see it as an old delivery, not one of the last minute."""
        from dashboard.ingest import ingest
        from dashboard.models import Report

        sig = self._sign(rep.data)
        t0 = time.perf_counter()
        result = ingest(org, rep.data, sig, rep.sha256, source="api")
        ms = (time.perf_counter() - t0) * 1000
        if not result.created:
            raise RuntimeError(f"host {rep.host} day {rep.day}: not created")
        if simulated_arrival:
            Report.objects.filter(pk=result.report.pk).update(received=rep.started + ARRIVAL)
        self.ingested += 1
        return ms

    def state_after_ingest(self, org: Any, sha: str) -> HostState:
        """Read back what ingest wrote for report SHA: what the next unchanged days repeat."""
        from dashboard import storage
        from dashboard.models import Blob, Report

        report = Report.objects.select_related("blob").get(organisation=org, sha256=sha)
        obs = list(report.observations.order_by("pk"))
        keep = ("signature_status", "signer_fingerprint", "signer_principals", "tool_version", "policy_name",
                "policy_sha256", "operator_user", "operator_host", "partial", "source")
        state = HostState(series_id=report.series_id, host_ids=[o.host_id for o in obs],
                          target_ids=[o.target_id for o in obs], target_status=[o.status for o in obs],
                          target_error=[o.error for o in obs], finding_sets=[o.finding_set_id for o in obs],
                          template={k: getattr(report, k) for k in keep}, keyframe_id=None, keyframe_deltas=0,
                          compressor=None, last_started=report.started, last_sha=report.sha256)
        blob = report.blob
        keyframe = blob if blob.base_id is None else Blob.objects.get(pk=blob.base_id)
        self._set_keyframe(state, keyframe.pk, storage.blob_bytes(keyframe),
                           Blob.objects.filter(base_id=keyframe.pk).count())
        return state

    def _set_keyframe(self, state: HostState, blob_id: int, raw: bytes, deltas: int) -> None:
        import zstandard

        from dashboard import storage

        state.keyframe_id, state.keyframe_deltas = blob_id, deltas
        state.compressor = zstandard.ZstdCompressor(level=storage.LEVEL, dict_data=zstandard.ZstdCompressionDict(
            raw, dict_type=zstandard.DICT_TYPE_RAWCONTENT))

    def fill_day(self, org: Any, batch: list[tuple[Any, HostState]]) -> None:
        """Unchanged, linked reports written as ingest writes them (dashboard.ingest._store for a report whose
        findings repeat the previous report's): the blob by dashboard.storage's rule, the report row, one
        observation per target reusing the previous finding sets, then series head and host latest."""
        import zstandard
        from django.db import transaction

        from dashboard import storage
        from dashboard.models import Blob, Chain, Observation, Report

        t0 = time.perf_counter()
        blobs, plans = [], []
        for rep, st in batch:
            data = rep.data
            keyframe = st.keyframe_id if st.keyframe_deltas < storage.KEYFRAME_EVERY else None
            blob: Blob
            if keyframe is not None:
                delta = st.compressor.compress(data)
                keep = len(delta) * storage.CLEARLY_SMALL <= len(data)
                if not keep:
                    full = zstandard.ZstdCompressor(level=storage.LEVEL).compress(data)
                    keep = len(delta) <= storage.DELTA_SHARE * len(full)
                if keep:
                    blob = Blob(organisation=org, codec=storage.CODEC_DELTA, base_id=keyframe, data=delta,
                                raw_size=len(data))
                else:
                    blob = Blob(organisation=org, codec=storage.CODEC_FULL, data=full, raw_size=len(data))
            else:
                blob = Blob(organisation=org, codec=storage.CODEC_FULL,
                            data=zstandard.ZstdCompressor(level=storage.LEVEL).compress(data), raw_size=len(data))
            blobs.append(blob)
            plans.append((rep, st, self._sign(data)))
        with transaction.atomic():
            Blob.objects.bulk_create(blobs)
            reports = []
            for blob, (rep, st, sig) in zip(blobs, plans, strict=True):
                if blob.base_id is None:
                    self._set_keyframe(st, blob.pk, rep.data, 0)
                else:
                    st.keyframe_deltas += 1
                reports.append(Report(organisation=org, sha256=rep.sha256, series_id=st.series_id, blob=blob,
                                      signature=sig, size=len(rep.data), run_id=rep.run_id, started=rep.started,
                                      finished=rep.finished, previous_sha256=st.last_sha, chain=Chain.LINKED,
                                      chain_detail="", **st.template))
            # Received a few seconds after its run, as on the simulated day: written with the row (an UPDATE
            # afterwards would leave PostgreSQL a dead copy of every row, which ingest never does), so
            # auto_now_add is held off for this insert.
            received = Report._meta.get_field("received")
            for report, (rep, _, _) in zip(reports, plans, strict=True):
                report.received = rep.started + ARRIVAL
            auto, received.auto_now_add = received.auto_now_add, False  # type: ignore[attr-defined]
            try:
                Report.objects.bulk_create(reports)
            finally:
                received.auto_now_add = auto  # type: ignore[attr-defined]
            observations = []
            for report, (rep, st, _) in zip(reports, plans, strict=True):
                for i, host_id in enumerate(st.host_ids):
                    observations.append(Observation(report=report, host_id=host_id, target_id=st.target_ids[i],
                                                    status=st.target_status[i], error=st.target_error[i],
                                                    finding_set_id=st.finding_sets[i], started=rep.started))
            Observation.objects.bulk_create(observations)
            for obs in observations:  # host latest / last_seen: written once at the end of the load
                seen = self._host_latest.get(obs.host_id)
                if seen is None or obs.started >= seen[0]:
                    self._host_latest[obs.host_id] = (obs.started, obs.pk)
            for report, (rep, st, _) in zip(reports, plans, strict=True):
                self._series_head[st.series_id] = (rep.started, report.pk)
                st.last_started, st.last_sha = rep.started, rep.sha256
        self.filled += len(batch)
        self.fill_seconds += time.perf_counter() - t0

    # --- loading a step ------------------------------------------------------------------------------------

    def load(self, org: Any, hosts: range, last_day: int, fill: bool,
             timings: dict[str, list[float]] | None = None, summaries: list[float] | None = None) -> None:
        """Days [0, last_day) of HOSTS, day by day; FILL: unchanged linked days in bulk, else all ingested.

        SUMMARIES: after each day, bring the pages' daily summary up to date (as the first overview of the
        next day does) and note how long it took."""
        refresh = _refresh_daily() if summaries is not None else None
        gens = {h: self.fleet.host_reports(h, 0, last_day) for h in hosts}
        pending: dict[int, Any] = {h: next(gens[h], None) for h in hosts}
        states: dict[int, HostState] = {}
        for day in range(last_day):
            batch: list[tuple[Any, HostState]] = []
            for h in hosts:
                rep = pending[h]
                if rep is None or rep.day != day:
                    continue
                pending[h] = next(gens[h], None)
                st = states.get(h)
                plain = (fill and st is not None and not rep.changed and rep.day > 0
                         and self.fleet.plans[h].reports_on(rep.day - 1))
                if plain:
                    assert st is not None
                    batch.append((rep, st))
                    continue
                if batch:  # ingest sees every earlier report of its series
                    self.fill_day(org, batch)
                    batch = []
                ms = self.ingest(org, rep)
                if timings is not None:
                    timings["ingest_first_ms" if st is None else "ingest_changed_ms"].append(ms)
                if fill:
                    states[h] = self.state_after_ingest(org, rep.sha256)
            if batch:
                self.fill_day(org, batch)
            if refresh is not None and summaries is not None:
                t0 = time.perf_counter()
                refresh(org)
                summaries.append((time.perf_counter() - t0) * 1000)
            if day % 60 == 59:
                print(f"   day {day + 1}/{last_day}: {self.ingested} ingested, {self.filled} filled", flush=True)
        self._write_latest()

    def _write_latest(self) -> None:
        """Host latest/last_seen and series head from the filled rows, where they are newer than what is there."""
        from django.db import transaction

        from dashboard.models import Host, Observation, Series

        with transaction.atomic():
            for host_id, (started, obs_id) in self._host_latest.items():
                Host.objects.filter(pk=host_id, last_seen__lte=started).update(last_seen=started)
                current = Observation.objects.filter(host__pk=host_id, pk__in=Host.objects.filter(pk=host_id)
                                                     .values("latest")).values_list("started", flat=True).first()
                if current is None or started >= current:
                    Host.objects.filter(pk=host_id).update(latest_id=obs_id)
            for series_id, (started, report_id) in self._series_head.items():
                Series.objects.filter(pk=series_id, head__started__lte=started).update(head_id=report_id)
        self._host_latest.clear()
        self._series_head.clear()

    # --- verify: fill = ingest -----------------------------------------------------------------------------

    def verify(self) -> dict[str, Any]:
        hosts = range(min(self.fleet.hosts, 4))
        days = min(self.fleet.days, 40)
        a, b = self._organisation("via-ingest"), self._organisation("via-fill")
        self.load(a, hosts, days, fill=False)
        self.load(b, hosts, days, fill=True)
        rows_a, rows_b = _rows(a), _rows(b)
        if rows_a != rows_b:
            for table in rows_a:
                if rows_a[table] != rows_b[table]:
                    diff = [r for r in rows_a[table] if r not in rows_b[table]][:2]
                    other = [r for r in rows_b[table] if r not in rows_a[table]][:2]
                    print(f"fill differs from ingest in {table}: ingest {diff} fill {other}", file=sys.stderr)
            raise SystemExit("the fill path does not write the rows ingest writes: refusing to benchmark with it")
        n = sum(len(v) for v in rows_a.values())
        return {"verify": f"identical rows ({n} rows in {len(rows_a)} tables; {len(hosts)} hosts x {days} days: "
                          f"{len(rows_a['report'])} reports, {self.filled} of them filled in the second load)"}

    # --- the benchmark -------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        from django.contrib.auth.models import User

        from dashboard.models import Membership

        org = self._organisation(ORG)
        user = User.objects.create_user(username="bench", password="bench-" + "y" * 20)
        Membership.objects.create(user=user, organisation=org, role="admin")
        days = self.fleet.days
        steps_out = []
        started = time.perf_counter()
        previous = 0
        size_before = self._db_size(vacuum=False)["total"]
        for step in self.job["steps"]:
            hosts = range(previous, step)
            timings: dict[str, list[float]] = {"ingest_first_ms": [], "ingest_changed_ms": [], "ingest_daily_ms": []}
            print(f"[{'postgresql' if self.is_pg else 'sqlite'}] step {step} hosts: loading hosts "
                  f"{hosts.start}-{hosts.stop - 1}, days 1-{days - 2}", flush=True)
            summaries: list[float] = []
            self.load(org, hosts, days - 2, fill=True, timings=timings, summaries=summaries)
            self._db_size(vacuum=True)  # VACUUM/ANALYZE as autovacuum would, before timing anything
            self._ingest_day(org, hosts, days - 2, timings["ingest_daily_ms"], simulated_arrival=False)
            # Within a minute of those deliveries (the pages recompute the summary of a day still arriving) …
            arriving = self._pages(org, user, pages=("overview",))
            # … and once they have settled (their arrival moved to the simulated day, as for all the others).
            from django.db.models import F

            from dashboard.models import Report

            Report.objects.filter(organisation=org).exclude(received=F("started") + ARRIVAL) \
                .update(received=F("started") + ARRIVAL)
            pages = self._pages(org, user)
            pages["overview_arriving_ms"] = arriving["overview_ms"]
            pages["summary_refresh_ms"] = summaries
            size = self._db_size(vacuum=True)
            host_days = self._host_days(org)
            steps_out.append({"hosts": step, "host_days": host_days, **timings, **pages,
                              "db_bytes": size["total"], "tables": size["tables"], "indexes": size["indexes"],
                              "bytes_per_host_day": size["total"] / max(1, host_days),
                              "step_bytes_per_day": (size["total"] - size_before)
                              / max(1, host_days - (steps_out[-1]["host_days"] if steps_out else 0))})
            size_before = size["total"]
            previous = step
        load_seconds = time.perf_counter() - started
        concurrency = self._concurrent(org, days - 1)
        churn = self._churn(org, days)
        return {"churn": churn, "server": self._server(), "steps": steps_out, "ingested": self.ingested,
                "filled": self.filled,
                "fill_rate": self.filled / max(1e-9, self.fill_seconds), "load_seconds": load_seconds,
                "report_bytes": int(statistics.median(len(r.data) for r in self.fleet.host_reports(0, 0, 20))),
                "ingest_phases": self._phases(org, days - 1), "concurrency": concurrency}

    def _churn(self, org: Any, day: int) -> dict[str, Any]:
        """A day on which one evidence counter (LG-01 processes_seen) differs: ingest time and bytes added."""
        from dashboard.models import Evidence, Finding, FindingItem, FindingSet, SetMember

        hosts = [p.index for p in self.fleet.plans if p.shape == "local" and p.reports_on(day - 1)][:100]
        before = self._db_size(vacuum=True)["total"]
        tables = (FindingSet, SetMember, Finding, FindingItem, Evidence)
        counts = [m.objects.count() for m in tables]
        ms: list[float] = []
        self._ingest_day(org, hosts, day, ms)
        after = self._db_size(vacuum=True)["total"]
        added = [m.objects.count() - c for m, c in zip(tables, counts, strict=True)]
        return {"reports": len(ms), "ms": ms, "bytes_per_report": (after - before) / max(1, len(ms)),
                "finding_sets": added[0], "set_members": added[1], "findings": added[2], "finding_items": added[3],
                "evidence": added[4]}

    def _ingest_day(self, org: Any, hosts: Sequence[int], day: int, out: list[float],
                    simulated_arrival: bool = True) -> None:
        for h in hosts:
            for rep in self.fleet.host_reports(h, day, day + 1):
                out.append(self.ingest(org, rep, simulated_arrival=simulated_arrival))

    def _host_days(self, org: Any) -> int:
        from dashboard.models import Report

        return Report.objects.filter(organisation=org).count()

    def _pages(self, org: Any, user: Any, pages: Sequence[str] = ("overview", "host"),
               budget: float = 60.0) -> dict[str, Any]:
        """Each page ``page_runs`` times (at least 5, at most BUDGET seconds) after a first request."""
        from django.db import connection
        from django.test import Client

        from dashboard.models import Host

        client = Client()
        client.force_login(user)
        hosts = list(Host.objects.filter(organisation=org).exclude(kind="organisation").values_list("pk", "key"))
        rng = random.Random(7)
        out: dict[str, Any] = {}
        urls = {"overview": lambda: _overview_url(org), "host": lambda: _host_url(org, *rng.choice(hosts))}
        for name, url in urls.items():
            if name not in pages:
                continue
            if url() is None:
                out[f"{name}_ms"], out[f"{name}_queries"] = [], 0
                continue
            t0 = time.perf_counter()
            client.get(url())  # the first request after the load (the overview brings its daily summary up to date)
            out[f"{name}_first_ms"] = (time.perf_counter() - t0) * 1000
            queries: list[str] = []
            with connection.execute_wrapper(functools.partial(_count_query, queries)):
                response = client.get(url())  # the query count of one request
            if response.status_code != 200:
                raise RuntimeError(f"{url()}: HTTP {response.status_code}")
            times: list[float] = []
            t_end = time.perf_counter() + budget
            for _ in range(self.job["page_runs"]):
                if len(times) >= 5 and time.perf_counter() > t_end:
                    break
                u = url()
                t0 = time.perf_counter()
                response = client.get(u)
                times.append((time.perf_counter() - t0) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{u}: HTTP {response.status_code}")
            out[f"{name}_ms"], out[f"{name}_queries"] = times, len(queries)
        return out

    def _phases(self, org: Any, day: int) -> dict[str, float]:
        """Where an unchanged day's ingest time goes (median of up to 30 reports of DAY, not stored)."""
        from dashboard.ingest import _check_signature, _parse

        reps = [r for h in range(min(30, self.fleet.hosts)) for r in self.fleet.host_reports(h, day, day + 1)]
        sigs = [self._sign(r.data) for r in reps]
        out: dict[str, list[float]] = {"signature": [], "schema+parse": []}
        for rep, sig in zip(reps, sigs, strict=True):
            t0 = time.perf_counter()
            _check_signature(org, rep.data, sig)
            t1 = time.perf_counter()
            _parse(rep.data)
            t2 = time.perf_counter()
            out["signature"].append((t1 - t0) * 1000)
            out["schema+parse"].append((t2 - t1) * 1000)
        return {k: statistics.median(v) for k, v in out.items() if v}

    def _concurrent(self, org: Any, day: int) -> list[dict[str, Any]]:
        """LEVELS processes at once, each ingesting its share of the day's reports (disjoint hosts)."""
        from django.db import connections

        levels = self.job["levels"]
        hosts = list(range(self.fleet.hosts))
        share = len(hosts) // max(1, len(levels))
        out = []
        for n, workers in enumerate(levels):
            mine = hosts[n * share:(n + 1) * share]
            reps = [(r.data, self._sign(r.data), r.sha256)
                    for h in mine for r in self.fleet.host_reports(h, day, day + 1)]
            chunks = [reps[i::workers] for i in range(workers)]
            connections.close_all()  # each child opens its own connection
            ctx = multiprocessing.get_context("fork")
            t0 = time.perf_counter()
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                parts = list(pool.map(_ingest_many, [org.pk] * workers, chunks))
            wall = time.perf_counter() - t0
            ms = [m for p in parts for m in p["ms"]]
            errors: dict[str, int] = {}
            for p in parts:
                for e in p["errors"]:
                    errors[e] = errors.get(e, 0) + 1
            out.append({"workers": workers, "done": len(ms), "failed": sum(errors.values()),
                        "errors": ", ".join(f"{k} x{v}" for k, v in errors.items()), "ms": ms,
                        "per_second": len(ms) / wall if wall else 0.0})
        return out

    # --- database specifics ------------------------------------------------------------------------------

    def _server(self) -> str:
        from django.db import connection

        with connection.cursor() as cur:
            if self.is_pg:
                cur.execute("SELECT version(), current_setting('fsync'), current_setting('synchronous_commit')")
                version, fsync, sync = cur.fetchone()
                return f"{' '.join(version.split()[:2])}, fsync={fsync}, synchronous_commit={sync}"
            cur.execute("SELECT sqlite_version()")
            version = cur.fetchone()[0]
            cur.execute("PRAGMA journal_mode")
            journal = cur.fetchone()[0]
            cur.execute("PRAGMA synchronous")
            sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}.get(cur.fetchone()[0], "?")
            mode = connection.settings_dict.get("OPTIONS", {}).get("transaction_mode") or "DEFERRED"
            return f"SQLite {version}, one file, journal_mode={journal}, synchronous={sync}, {mode} transactions"

    def _db_size(self, vacuum: bool) -> dict[str, Any]:
        from django.apps import apps
        from django.db import connection

        tables = [m._meta.db_table for m in apps.get_app_config("dashboard").get_models()]
        sizes: dict[str, int] = {}
        indexes: dict[str, int] = {}  # of which in the table's indexes
        with connection.cursor() as cur:
            if self.is_pg:
                if vacuum:
                    cur.execute("VACUUM ANALYZE")
                cur.execute("SELECT pg_database_size(current_database())")
                total = int(cur.fetchone()[0])
                for t in tables:
                    cur.execute("SELECT pg_total_relation_size(%s), pg_indexes_size(%s)", [t, t])
                    total_t, index_t = cur.fetchone()
                    sizes[t], indexes[t] = int(total_t), int(index_t)
            else:
                if vacuum:
                    cur.execute("VACUUM")
                    cur.execute("ANALYZE")
                cur.execute("PRAGMA page_count")
                pages = int(cur.fetchone()[0])
                cur.execute("PRAGMA page_size")
                total = pages * int(cur.fetchone()[0])
                with contextlib.suppress(Exception):
                    cur.execute("SELECT name, tbl_name, type FROM sqlite_master WHERE type IN ('table', 'index')")
                    owner = {name: (tbl, kind) for name, tbl, kind in cur.fetchall()}
                    cur.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
                    for name, size in cur.fetchall():
                        t, kind = owner.get(name, (name, "table"))
                        if t in tables:
                            sizes[t] = sizes.get(t, 0) + int(size)
                            if kind == "index":
                                indexes[t] = indexes.get(t, 0) + int(size)
        ordered = sorted(sizes.items(), key=lambda kv: -kv[1])
        return {"total": total, "tables": {t.removeprefix("dashboard_"): s for t, s in ordered},
                "indexes": {t.removeprefix("dashboard_"): indexes.get(t, 0) for t, _ in ordered}}


def _ingest_many(org_pk: int, reports: list[tuple[bytes, bytes, str]]) -> dict[str, Any]:
    """One concurrent ingester (a forked process with its own connection)."""
    from dashboard.ingest import ingest
    from dashboard.models import Organisation

    org = Organisation.objects.get(pk=org_pk)
    ms, errors = [], []
    for data, sig, sha in reports:
        t0 = time.perf_counter()
        try:
            ingest(org, data, sig, sha, source="api")
            ms.append((time.perf_counter() - t0) * 1000)
        except Exception as e:
            errors.append(f"{type(e).__name__}: {str(e)[:60]}")
    return {"ms": ms, "errors": errors}


def _count_query(seen: list[str], execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    seen.append(sql)
    return execute(sql, params, many, context)


def _refresh_daily() -> Any:
    """The pages' daily summary update (dashboard.queries.refresh_daily), if this tree has one."""
    try:
        from dashboard.queries import refresh_daily
    except ImportError:
        return None
    return refresh_daily


def _overview_url(org: Any) -> str | None:
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse("dashboard:overview", args=[org.slug])
    except NoReverseMatch:
        return None


def _host_url(org: Any, pk: int, key: str) -> str | None:
    from django.urls import NoReverseMatch, reverse

    for name in ("host", "host_detail", "host_page"):
        for args in ([org.slug, pk], [org.slug, key]):
            with contextlib.suppress(NoReverseMatch):
                return reverse(f"dashboard:{name}", args=args)
    return None


def _rows(org: Any) -> dict[str, list[Any]]:
    """Every row an organisation's reports made, with database ids replaced by what they point at."""
    from django.apps import apps

    from dashboard import storage
    from dashboard.models import Finding, Host, Observation, Report, Series

    reports = {r.pk: r.sha256 for r in Report.objects.filter(organisation=org)}
    out: dict[str, list[Any]] = {}
    out["report"] = sorted(
        (r.sha256, r.series.key, r.chain, r.chain_detail, r.previous_sha256, r.size, bytes(r.signature or b""),
         r.signature_status, r.signer_fingerprint, r.signer_principals, r.run_id, str(r.started), str(r.finished),
         r.tool_version, r.policy_name, r.policy_sha256, r.operator_user, r.operator_host, r.partial, r.source,
         r.blob.codec, r.blob.raw_size, bytes(r.blob.data),
         hashlib.sha256(storage.report_bytes(r)).hexdigest() == r.sha256,
         r.blob.base_id is None or next(x.sha256 for x in Report.objects.filter(blob_id=r.blob.base_id)))
        for r in Report.objects.filter(organisation=org).select_related("blob", "series"))
    out["observation"] = sorted(
        (reports[o.report_id], o.host.key, o.target_id, o.status, o.error,
         o.finding_set.sha256 if o.finding_set else None, str(o.started))
        for o in Observation.objects.filter(report__organisation=org).select_related("host", "finding_set"))
    out["host"] = sorted(
        (h.key, h.hostname, h.os, h.kind, str(h.first_seen), str(h.last_seen),
         (reports[h.latest.report_id], h.latest.target_id) if h.latest else None)
        for h in Host.objects.filter(organisation=org).select_related("latest"))
    out["series"] = sorted((s.key, reports.get(s.head_id or 0)) for s in Series.objects.filter(organisation=org))
    # Tables this benchmark does not know by name (added later): compared by their non-id values.
    known = {"report", "observation", "host", "series", "organisation", "membership", "apitoken", "rejection",
             "auditentry", "blob", "evidence", "findingset", "finding", "findingitem"}
    for model in apps.get_app_config("dashboard").get_models():
        name = model._meta.model_name
        if name in known or not any(f.name == "organisation" for f in model._meta.fields):
            continue
        fields = [f.attname for f in model._meta.fields if not f.is_relation and not f.primary_key]
        out[name] = sorted(json.dumps(v, sort_keys=True, default=str)
                           for v in model.objects.filter(organisation=org).values(*fields))
    out["findingset"] = sorted(_finding_sets(org))
    out["finding"] = sorted(
        (f.sha256, f.check_id, f.status, f.evidence.sha256 if f.evidence else None,
         sorted(f.items.values_list("item", "status")))
        for f in Finding.objects.filter(organisation=org).select_related("evidence"))
    return out


def _finding_sets(org: Any) -> list[str]:
    """Each set by its hash and the hashes of its findings (in order: members are written in the set's order)."""
    from dashboard.models import FindingSet, SetMember

    members: dict[int, list[str]] = {}
    for set_id, sha in (SetMember.objects.filter(finding_set__organisation=org).order_by("pk")
                        .values_list("finding_set_id", "finding__sha256")):
        members.setdefault(set_id, []).append(sha)
    return [f"{fs.sha256}:{fs.bad}:{json.dumps(fs.items, sort_keys=True)}:{','.join(members.get(fs.pk, []))}"
            for fs in FindingSet.objects.filter(organisation=org)]


if __name__ == "__main__":
    sys.exit(main())
