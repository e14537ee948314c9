"""AV-01/02/03/05 against a real clamd (and clamonacc) with databases built by sigtool in the test."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.clamav_helpers import MARKER, build_daily, clamd_conf, running_clamd, running_clamonacc
from tests.conftest import finding, require_root, require_tool

pytestmark = pytest.mark.needs_service

Cli = Callable[..., tuple[int, dict[str, Any] | None, str, str]]


def _tools() -> None:
    require_tool("clamd", "clamdscan", "sigtool", "faketime")


@pytest.fixture
def clamd(tmp_path: Path) -> Iterator[Path]:
    """A running clamd whose database is fresh and detects EICAR; yields its config file."""
    _tools()
    build_daily(tmp_path / "db")
    conf = clamd_conf(tmp_path, tmp_path / "db", on_access=tmp_path / "watched")
    (tmp_path / "watched").mkdir()
    with running_clamd(conf):
        yield conf


def test_clamd_seen_fresh_signatures_and_eicar_detected(clamd: Path, run_cli: Cli) -> None:
    rc, doc, _, _ = run_cli("scan", "--check", "AV-01", "--check", "AV-03", "--check", "AV-05", "--active-tests")
    assert doc is not None
    av1, av3, av5 = (finding(doc, c) for c in ("AV-01", "AV-03", "AV-05"))
    assert av1["status"] == "pass", av1
    assert "ClamAV" in av1["evidence"]["running"]
    assert av3["status"] == "pass", av3
    assert av3["evidence"]["judged"]["from"] == "clamd (loaded)"
    assert av3["evidence"]["judged"]["version"] == 27100
    assert av5["status"] == "pass", av5
    assert av5["evidence"]["signature"] == "Mamoru.Test.EICAR.UNOFFICIAL"


def test_active_test_off_by_default(clamd: Path, run_cli: Cli) -> None:
    rc, doc, _, _ = run_cli("scan", "--check", "AV-05")
    assert doc is not None
    av5 = finding(doc, "AV-05")
    assert av5["status"] == "manual"
    assert "--active-tests" in av5["message"]["en"]


def test_stale_database_fails(tmp_path: Path, run_cli: Cli) -> None:
    _tools()
    build_daily(tmp_path / "db", days_old=10, version=27090)
    conf = clamd_conf(tmp_path, tmp_path / "db")
    with running_clamd(conf):
        rc, doc, _, _ = run_cli("scan", "--check", "AV-03")
    assert doc is not None
    av3 = finding(doc, "AV-03")
    assert av3["status"] == "fail", av3
    assert 9.9 < av3["evidence"]["judged"]["age_days"] < 10.2
    assert av3["evidence"]["judged"]["version"] == 27090


def test_engine_that_misses_eicar_fails_av05(tmp_path: Path, run_cli: Cli) -> None:
    _tools()
    build_daily(tmp_path / "db", with_eicar=False)
    conf = clamd_conf(tmp_path, tmp_path / "db")
    with running_clamd(conf):
        # The database is real and loaded: the private marker is detected, EICAR is not.
        res = subprocess.run(["clamdscan", f"--config-file={conf}", "--no-summary", "-"], input=MARKER,
                             capture_output=True)
        assert b"Mamoru.Test.Marker.UNOFFICIAL FOUND" in res.stdout
        rc, doc, _, _ = run_cli("scan", "--check", "AV-05", "--active-tests")
    assert doc is not None
    av5 = finding(doc, "AV-05")
    assert av5["status"] == "fail", av5


def test_clamd_stopped_means_not_running(tmp_path: Path, run_cli: Cli) -> None:
    _tools()
    rc, doc, _, _ = run_cli("scan", "--check", "AV-01")
    assert doc is not None
    av1 = finding(doc, "AV-01")
    # ClamAV is installed on this machine (CI installs it) but no clamd runs outside the fixtures.
    assert av1["status"] == "fail", av1
    assert av1["evidence"]["installed"] == ["ClamAV"]


def test_realtime_with_clamonacc(clamd: Path, run_cli: Cli) -> None:
    require_root()
    require_tool("clamonacc")
    rc, doc, _, _ = run_cli("scan", "--check", "AV-02")
    assert doc is not None
    assert finding(doc, "AV-02")["status"] == "fail"  # clamd alone scans on demand only
    with running_clamonacc(clamd):
        rc, doc, _, _ = run_cli("scan", "--check", "AV-02")
    assert doc is not None
    av2 = finding(doc, "AV-02")
    assert av2["status"] == "pass", av2
    assert av2["evidence"]["clamav_on_access"]["include"] == [str(clamd.parent / "watched")]
