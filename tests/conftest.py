"""Shared test fixtures.

Tests that need a real service or tool are marked ``needs_service`` and call
``require(...)``. Locally a missing tool skips with the reason; in CI
(``MAMORU_REQUIRE_SERVICES=1``, set by .ci/run) it fails instead, so a real-
service test can never silently not run there.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REQUIRE_ENV = "MAMORU_REQUIRE_SERVICES"
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CORPUS = SHARED / "corpus"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def services_required() -> bool:
    return os.environ.get(REQUIRE_ENV) == "1"


def require(condition: bool, reason: str) -> None:
    """Skip locally, fail in CI, when a real service or tool is missing."""
    if condition:
        return
    if services_required():
        pytest.fail(f"{REQUIRE_ENV}=1 but: {reason}")
    pytest.skip(reason)


def require_tool(*names: str) -> None:
    for name in names:
        require(shutil.which(name) is not None, f"{name} is not installed")


def require_root() -> None:
    require(os.geteuid() == 0, "needs root")


def require_corpus(*parts: str) -> Path:
    path = CORPUS.joinpath(*parts)
    require(path.exists(), f"shared corpus file missing: {path}")
    return path


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Write files ({"/etc/passwd": "...", ...}) under ``root``, text as UTF-8; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    for path, content in files.items():
        dest = root / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            dest.write_bytes(content)
        else:
            dest.write_text(content, encoding="utf-8")
    return root


@pytest.fixture
def make_rootfs(tmp_path: Path) -> Callable[[dict[str, str | bytes]], Path]:
    """Write a small root filesystem: {"/etc/passwd": "...", ...} -> its directory."""

    def make(files: dict[str, str | bytes]) -> Path:
        return write_tree(tmp_path / "root", files)

    return make


# Every report a test writes through ``run_cli`` is validated against the JSON Schema.
_REPORT_SCHEMA = None


def validate_report(doc: dict[str, Any]) -> None:
    global _REPORT_SCHEMA
    import jsonschema_rs

    if _REPORT_SCHEMA is None:
        schema_path = Path(__file__).resolve().parents[1] / "reports" / "schema" / "report.schema.json"
        _REPORT_SCHEMA = json.loads(schema_path.read_text())
    jsonschema_rs.validator_for(_REPORT_SCHEMA).validate(doc)


@pytest.fixture
def run_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[..., tuple[int, dict[str, Any] | None, str, str]]]:
    """Run ``mamoru`` in-process: returns (exit code, report or None, stdout, stderr)."""
    from agent.cli.main import main

    counter = [0]

    def run(*args: str, report: bool = True) -> tuple[int, dict[str, Any] | None, str, str]:
        argv = list(args)
        out_path = None
        if report and "--output" not in argv and argv and argv[0] == "scan":
            counter[0] += 1
            out_path = tmp_path / f"report-{counter[0]}.json"
            argv += ["--output", str(out_path)]
        elif "--output" in argv:
            out_path = Path(argv[argv.index("--output") + 1])
        rc = main(argv)
        captured = capsys.readouterr()
        doc = None
        if out_path is not None and out_path.exists() and out_path.suffix == ".json":
            doc = json.loads(out_path.read_bytes())
            if isinstance(doc, dict) and doc.get("schema", "").startswith("mamoru-report/"):
                validate_report(doc)
        return rc, doc, captured.out, captured.err

    yield run


def finding(doc: dict[str, Any], check: str, target: str | None = None) -> dict[str, Any]:
    """The one finding of ``check`` (on ``target``) in a report."""
    hits = [f for f in doc["findings"] if f["check"] == check and (target is None or f["target"] == target)]
    assert len(hits) == 1, f"expected one {check} finding, got {len(hits)}"
    return hits[0]


@pytest.fixture(scope="module")
def lab() -> Iterator[Any]:
    """Real OpenSSH servers for one test module (``tests.sshd_helpers.SshdLab``), stopped at its end."""
    from tests.sshd_helpers import SshdLab, sshd_available

    require_root()
    require(sshd_available(), "OpenSSH server (sshd, ssh-keygen) is not installed")
    lab = SshdLab()
    yield lab
    lab.close()
