"""benchmarks/dashboard.py runs end to end (--quick, SQLite): it prints its table. Nothing here is timed.

The benchmark is a script, not a test; this only keeps it from rotting as the dashboard changes under it: real
mamoru scan reports as shapes, signed, ingested through dashboard.ingest, the bulk fill proven equal to ingest
row for row, pages answered, sizes read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_run_on_sqlite_prints_its_table(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAMORU_DASHBOARD_")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env["TMPDIR"] = str(tmp_path)
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "dashboard.py"), "--quick",
                           "--databases", "sqlite"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[sqlite] fill = ingest: identical rows" in out
    assert "== sqlite (SQLite" in out
    assert "hosts host-days | ingest ms med" in out
    table = out[out.index("hosts host-days"):].splitlines()
    rows = [line.split() for line in table[1:3]]
    assert [r[0] for r in rows] == ["3", "6"]  # one row per step of --quick
    assert all(float(r[3]) > 0 for r in rows)  # an ingest time was measured on each step
    assert "B/host-day" in out and "peer (each report + .sig as a file" in out
    assert "concurrent ingest, 2 processes" in out
    assert "verdict:" in out
