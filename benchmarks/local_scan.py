#!/usr/bin/env python3
"""mamoru's full Linux audit against Lynis's quick audit, on this machine, in one run.

Runs ``mamoru scan --quiet`` (every Linux check, local target, report written
to a temporary file) and ``lynis audit system --quick`` several times each,
alternating, and prints the median wall time, the peak resident memory of each
run (``wait4`` rusage: the process and every descendant it waited for) and the
ratios. Run as root so that both tools see the whole machine.

    .venv/bin/python benchmarks/local_scan.py [--mamoru-runs 10] [--lynis-runs 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.installed import compile_like_pip


def measure(argv: list[str], env: dict[str, str]) -> tuple[float, int, int]:
    """(wall seconds, peak RSS in KiB, exit status) of one run."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss, proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mamoru-runs", type=int, default=10)
    ap.add_argument("--lynis-runs", type=int, default=2)
    ap.add_argument("--mamoru", default=str(Path(sys.executable).parent / "mamoru"))
    ap.add_argument("--lynis", default=shutil.which("lynis") or "/usr/sbin/lynis")
    args = ap.parse_args()
    compile_like_pip()  # as pip does at install time: see benchmarks/installed.py
    if not Path(args.mamoru).exists():
        ap.error(f"{args.mamoru} not found: pip install -e . first")
    if not Path(args.lynis).exists():
        ap.error(f"{args.lynis} not found: apt-get install lynis")
    env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
    results: dict[str, list[tuple[float, int, int]]] = {"mamoru": [], "lynis": []}
    with tempfile.TemporaryDirectory(prefix="mamoru-bench-") as tmp:
        mamoru_argv = [args.mamoru, "scan", "--quiet", "--output", f"{tmp}/report.json"]
        lynis_argv = [args.lynis, "audit", "system", "--quick", "--no-colors"]
        # Alternate the tools so that neither gets a warmer cache or a quieter machine.
        for i in range(max(args.mamoru_runs, args.lynis_runs)):
            if i < args.mamoru_runs:
                results["mamoru"].append(measure(mamoru_argv, env))
                Path(f"{tmp}/report.json").unlink(missing_ok=True)
            if i < args.lynis_runs:
                results["lynis"].append(measure(lynis_argv, env))
                print(f"lynis run {i + 1}: {results['lynis'][-1][0]:.1f} s", file=sys.stderr)
    print(f"{'tool':8} {'runs':>4} {'median wall':>12} {'min wall':>9} {'peak RSS':>10}  exit codes")
    summary = {}
    for tool, runs in results.items():
        walls = [r[0] for r in runs]
        peak = max(r[1] for r in runs)
        summary[tool] = (statistics.median(walls), peak)
        codes = sorted({r[2] for r in runs})
        print(f"{tool:8} {len(runs):4} {statistics.median(walls):11.3f}s {min(walls):8.3f}s {peak / 1024:8.1f}MiB"
              f"  {codes}")
    speed = summary["lynis"][0] / summary["mamoru"][0]
    memory = summary["lynis"][1] / summary["mamoru"][1]
    print(f"mamoru is {speed:.1f}x faster than lynis --quick (median wall), "
          f"peak RSS {summary['mamoru'][1] / 1024:.1f} MiB vs {summary['lynis'][1] / 1024:.1f} MiB "
          f"({memory:.2f}x lower)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
