"""The dashboard on a real PostgreSQL: its whole test suite rerun there, and its migrations from nothing.

The dashboard's tests run on SQLite (in memory) by default. The issue asks for the same suite and migrations on
PostgreSQL, so this file starts a throwaway cluster (tests.pg_helpers) and reruns every
``tests/test_dashboard_*.py`` (chosen by a glob, so a new test file joins without editing this one) in a
pytest subprocess with ``MAMORU_DASHBOARD_DATABASE`` pointing at it; pytest-django then creates its test
database there. A subprocess, because Django's settings are read once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.pg_helpers import PgCluster, missing_reason

pytestmark = pytest.mark.needs_service

ROOT = Path(__file__).resolve().parents[1]
SUITE_TIMEOUT = 1800  # seconds: the browser tests are part of the suite


@pytest.fixture(scope="module")
def pg() -> Iterator[PgCluster]:
    reason = missing_reason()
    require(reason is None, reason or "")
    with PgCluster() as cluster:
        yield cluster


def dashboard_test_files() -> list[str]:
    """Every dashboard test file but this one (which would start itself again)."""
    this = Path(__file__).name
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_dashboard_*.py") if p.name != this)


def child_env(database: str, data: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["MAMORU_DASHBOARD_DATABASE"] = database
    env["MAMORU_DASHBOARD_DATA"] = str(data)  # not this process's: the child keeps its own secret key and static
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


def test_dashboard_suite_passes_on_postgresql(pg: PgCluster, tmp_path: Path) -> None:
    files = dashboard_test_files()
    assert "tests/test_dashboard_smoke.py" in files
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=-ra", "--reuse-db", *files],
        cwd=ROOT, env=child_env(pg.url(), tmp_path), capture_output=True, text=True, timeout=SUITE_TIMEOUT,
        check=False)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"dashboard suite on PostgreSQL failed (exit {proc.returncode}):\n{tail}"
    assert " passed" in proc.stdout, tail
    # The child really ran on this server: --reuse-db leaves pytest-django's test database behind.
    import psycopg

    with psycopg.connect(host=str(pg.socket_dir), user="mamoru", dbname="test_mamoru") as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert "dashboard_report" in tables

def test_migrate_command_builds_the_schema_on_postgresql(pg: PgCluster, tmp_path: Path) -> None:
    import psycopg

    url = pg.create_database("migrate_from_nothing")
    argv = [sys.executable, "-m", "agent.cli.main", "dashboard", "migrate", "--database", url]
    env = child_env("", tmp_path)
    env.pop("MAMORU_DASHBOARD_DATABASE")
    env["DJANGO_SETTINGS_MODULE"] = "dashboard.settings"
    first = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "Applying dashboard.0001_initial" in first.stdout
    with psycopg.connect(host=str(pg.socket_dir), user="mamoru", dbname="migrate_from_nothing") as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        applied = {r[0] for r in conn.execute("SELECT name FROM django_migrations WHERE app = 'dashboard'")}
    assert {"dashboard_organisation", "dashboard_report", "dashboard_finding", "dashboard_auditentry",
            "axes_accessattempt", "auth_user", "django_session"} <= tables
    migrations = sorted(p.stem for p in (ROOT / "dashboard" / "migrations").glob("0*.py"))
    assert applied == set(migrations)
    again = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No migrations to apply" in again.stdout
