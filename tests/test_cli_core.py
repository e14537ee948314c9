"""The command line as scripts and people use it: contract flags, exit codes, safe output."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, finding, require_root, require_tool, validate_report

Run = Callable[..., tuple[int, dict[str, Any] | None, str, str]]
HARDENED = FIXTURES / "rootfs" / "hardened"
CORE = ("IA-01", "IA-04", "PM-01", "PM-03", "LG-02", "TX-04", "PH-01")


def test_checks_list_json_contract(run_cli: Run) -> None:
    rc, _, out, _ = run_cli("checks", "list", "--json")
    assert rc == 0
    items = json.loads(out)
    ids = [i["id"] for i in items]
    assert set(CORE) <= set(ids)
    for i in items:
        assert set(i) == {"id", "guideline", "platforms", "severity", "title"}
        assert i["title"]["ja"] and i["title"]["en"]


def test_local_scan_of_this_machine(run_cli: Run) -> None:
    """The real machine, the real default policy: a schema-valid report whatever the verdicts."""
    rc, doc, out, _ = run_cli("scan", "--lang", "en")
    assert doc is not None  # run_cli validated it against the schema
    assert rc in (0, 1, 3)
    assert doc["targets"][0]["kind"] == "local"
    assert {f["check"] for f in doc["findings"]} >= set(CORE)
    assert "summary" in out
    counts = doc["summary"]["by_status"]
    assert sum(counts.values()) == len(doc["findings"])


def test_exit_codes(run_cli: Run, tmp_path: Path) -> None:
    assert run_cli("scan", "--target", f"rootfs:{HARDENED}", "--check", "PM-01", "--quiet")[0] == 0
    weak = FIXTURES / "rootfs" / "weak"
    assert run_cli("scan", "--target", f"rootfs:{weak}", "--check", "PM-01", "--quiet")[0] == 1
    assert run_cli("scan", "--check", "XX-99", report=False)[0] == 2
    assert run_cli("scan", "--guideline", "MLIT-0-0-0", report=False)[0] == 2
    assert run_cli("scan", "--target", "gopher://x", report=False)[0] == 2
    assert run_cli("scan", "--bogus-flag", report=False)[0] == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("logging:\n  retention_days: -1\n")
    rc, _, _, err = run_cli("scan", "--policy", str(bad), report=False)
    assert rc == 2 and f"{bad}:2:" in err
    # A target that cannot be opened: the report is still written, the target says why, exit 3.
    rc, doc, _, _ = run_cli("scan", "--target", f"rootfs:{tmp_path / 'gone'}", "--check", "PM-01", "--quiet")
    assert rc == 3 and doc is not None
    assert doc["targets"][0]["status"] == "error" and "not a directory" in doc["targets"][0]["error"]
    assert finding(doc, "PM-01")["status"] == "error"


def test_one_broken_target_does_not_stop_the_others(run_cli: Run, tmp_path: Path) -> None:
    rc, doc, _, _ = run_cli("scan", "--target", f"rootfs:{tmp_path / 'gone'}", "--target", f"rootfs:{HARDENED}",
                            "--check", "PM-01", "--quiet")
    assert doc is not None
    assert [t["status"] for t in doc["targets"]] == ["error", "ok"]
    assert [f["status"] for f in doc["findings"]] == ["error", "pass"]


def test_guideline_selection(run_cli: Run) -> None:
    rc, doc, _, _ = run_cli("scan", "--target", f"rootfs:{HARDENED}", "--guideline", "MLIT-9-5-3", "--quiet")
    assert doc is not None
    assert {f["check"] for f in doc["findings"]} >= {"PM-01", "PM-03"}
    assert all("MLIT-9-5-3" in f["guideline"] for f in doc["findings"])


def test_hostile_hostname_is_escaped_on_the_terminal(run_cli: Run, tmp_path: Path) -> None:
    root = tmp_path / "evil"
    shutil.copytree(HARDENED, root)
    hostile = "pwn\x1b]0;owned\x07\x1b[2J[bold red]<script>alert(1)</script>[/]\u202e"
    (root / "etc/hostname").write_text(hostile + "\n")
    rc, doc, out, _ = run_cli("scan", "--target", f"rootfs:{root}", "--check", "PM-01", "--lang", "ja")
    assert doc is not None
    assert doc["targets"][0]["hostname"] == hostile  # exact in JSON
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "\\x1b]0;owned" in out
    assert "[bold red]" in out  # shown literally, not interpreted as markup


def test_ja_summary(run_cli: Run) -> None:
    _, _, out, _ = run_cli("scan", "--target", f"rootfs:{HARDENED}", "--check", "PM-01", "--lang", "ja")
    assert "合格" in out and "アクセス権限の管理" in out


def test_report_written_atomically_and_replaced_whole(run_cli: Run, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    out.write_text("old")
    rc, doc, _, _ = run_cli("scan", "--target", f"rootfs:{HARDENED}", "--check", "PM-01", "--output", str(out),
                            "--quiet")
    assert doc is not None and doc["findings"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".r.json")] == []


@pytest.mark.needs_root
def test_unreadable_shadow_as_non_root_is_error_not_pass() -> None:
    """Run the real CLI as `nobody`: /etc/shadow (0640 root) cannot be read, so IA-01 must say so."""
    require_root()
    require_tool("setpriv")
    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o755)
        root = Path(d) / "root"
        shutil.copytree(HARDENED, root)
        os.chmod(root / "etc/shadow", 0o600)
        os.chmod(root / "etc/sudoers", 0o440)
        out = Path(d) / "out"
        out.mkdir()
        os.chown(out, 65534, 65534)
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m", "agent.cli.main",
               "scan", "--target", f"rootfs:{root}", "--check", "IA-01", "--check", "PM-03", "--check", "PM-01",
               "--quiet", "--output", str(out / "r.json")]
        res = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=60)
        assert res.returncode in (1, 0, 3), res.stderr
        doc = json.loads((out / "r.json").read_text())
        validate_report(doc)
        ia01 = finding(doc, "IA-01")
        assert ia01["status"] == "error"
        assert "run as root" in ia01["message"]["en"] and "root 権限" in ia01["message"]["ja"]
        assert finding(doc, "PM-03")["status"] == "error"
        assert finding(doc, "PM-01")["status"] == "pass"  # /etc/passwd is world-readable
