"""``mamoru report``: a saved report read back strictly and rendered; its signature checked now, not trusted."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reports.json_report import render_json
from reports.load import load_report, parse_report
from reports.signature_status import signature_info
from reports.signing.keys import allowed_signers_line, create_key_files
from tests.conftest import FIXTURES

WEAK = FIXTURES / "rootfs" / "weak"
Cli = Callable[..., tuple[int, dict[str, Any] | None, str, str]]


@pytest.fixture
def signed(tmp_path: Path, run_cli: Cli) -> tuple[Path, Path]:
    """A real scan's report, signed; and an allowed_signers file holding its key."""
    key = create_key_files(tmp_path / "key", comment="auditor")
    out = tmp_path / "out" / "report.json"
    out.parent.mkdir()
    rc, doc, _, _ = run_cli("scan", "--target", f"rootfs:{WEAK}", "--output", str(out), "--sign-key",
                            str(tmp_path / "key"), "--quiet")
    assert rc == 1 and doc is not None
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(allowed_signers_line("auditor@example.jp", key.public_blob, "mamoru-report") + "\n")
    return out, allowed


def test_a_report_read_back_is_the_same_report(signed: tuple[Path, Path]) -> None:
    """from_dict loses nothing: rendering the loaded model gives the very bytes that were signed."""
    out, _ = signed
    assert render_json(load_report(out).report) == out.read_bytes()


def test_signature_status_is_checked_now(signed: tuple[Path, Path], tmp_path: Path) -> None:
    out, allowed = signed
    data = out.read_bytes()
    sig = Path(str(out) + ".sig")
    verified = signature_info(data, sig, allowed_signers=str(allowed))
    assert verified.status == "verified" and verified.principals == ("auditor@example.jp",)
    assert verified.fingerprint and verified.fingerprint.startswith("SHA256:")
    assert signature_info(data, sig).status == "unverified_signer"
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x01
    assert signature_info(bytes(flipped), sig).status == "invalid"
    assert signature_info(bytes(flipped), sig, allowed_signers=str(allowed)).status == "invalid"
    other = create_key_files(tmp_path / "other", comment="other")
    stranger = tmp_path / "stranger_signers"
    stranger.write_text(allowed_signers_line("x@example.jp", other.public_blob, "mamoru-report") + "\n")
    assert signature_info(data, sig, allowed_signers=str(stranger)).status == "invalid"
    assert signature_info(data, tmp_path / "none.sig").status == "unsigned"


@pytest.mark.parametrize(("mutate", "words"), [
    (lambda d: d.replace(b'"schema": "mamoru-report/1"', b'"schema": "mamoru-report/9"'), "not supported"),
    (lambda d: d.replace(b'"status": "fail"', b'"status": "passed"', 1), "findings."),
    (lambda d: b"\xff\xfe" + d, "UTF-8"),
    (lambda d: d[: d.rindex(b"\n", 0, len(d) // 2)], "not JSON"),
    (lambda d: d.replace(b'"schema": "mamoru-report/1",', b'"schema": "mamoru-report/1", "schema": "x",'), "twice"),
])
def test_a_damaged_report_is_refused_with_its_name(signed: tuple[Path, Path], mutate: Callable[[bytes], bytes],
                                                   words: str) -> None:
    from agent.errors import ConfigError

    out, _ = signed
    with pytest.raises(ConfigError) as e:
        parse_report(mutate(out.read_bytes()), "r.json")
    assert "r.json" in str(e.value) and words in str(e.value)


def test_report_command_renders_and_refuses(signed: tuple[Path, Path], run_cli: Cli, tmp_path: Path) -> None:
    out, _ = signed
    rc, _, stdout, _ = run_cli("report", str(out), "--lang", "en", report=False)
    assert rc == 0 and "IA-01" in stdout and "\x1b[" not in stdout
    target = tmp_path / "copy.json"
    rc, _, _, _ = run_cli("report", str(out), "--format", "json", "--output", str(target), report=False)
    assert rc == 0 and target.read_bytes() == out.read_bytes()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema": "mamoru-report/1"}))
    rc, _, _, stderr = run_cli("report", str(bad), report=False)
    assert rc == 2 and "bad.json" in stderr
    rc, _, _, _ = run_cli("report", str(out), "--format", "nonsense", report=False)
    assert rc == 2
