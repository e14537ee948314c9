"""Issue 10 item 18, the command line's part: closing lines and errors are said in the language of --lang."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import FIXTURES

RunCli = Callable[..., tuple[int, Any, str, str]]
HARDENED = f"rootfs:{FIXTURES / 'rootfs' / 'hardened'}"
#: Three English words in a row: what a Japanese line must not be made of (paths and commands aside).
ENGLISH = re.compile(r"(?<![\w./:$-])[A-Za-z]+ [A-Za-z]+ [A-Za-z]+(?![\w./-])")
COMMANDS = ("mamoru verify --chain", "mamoru keygen")


def _english_runs(text: str) -> list[str]:
    for command in COMMANDS:
        text = text.replace(command, "")
    return ENGLISH.findall(text)


def test_closing_lines_of_a_scan_follow_lang(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    rc, _, _, err_ja = run_cli("scan", "--target", HARDENED, "--check", "IA-01", "--quiet", "--output", str(out),
                               "--lang", "ja")
    assert rc == 0, err_ja
    assert "レポートを" in err_ja and "ハッシュチェーン" in err_ja and "署名されていません" in err_ja
    assert not _english_runs(err_ja), err_ja
    rc, _, _, err_en = run_cli("scan", "--target", HARDENED, "--check", "IA-01", "--quiet", "--output",
                               str(tmp_path / "r2.json"), "--lang", "en")
    assert "report written to" in err_en and "hash chain: follows r.json" in err_en and "UNSIGNED" in err_en


def test_a_config_error_is_said_in_japanese(run_cli: RunCli, tmp_path: Path) -> None:
    policy = tmp_path / "p.yaml"
    policy.write_text("ssh:\n  max_auth_tries: 3\n  max_auth_tries: 100\n")
    rc, _, _, err = run_cli("scan", "--target", HARDENED, "--policy", str(policy), "--lang", "ja", report=False)
    assert rc == 2
    assert err.startswith("mamoru: エラー: ") and f"{policy}:3" in err and "重複" in err, err
    assert not _english_runs(err), err
    rc, _, _, err = run_cli("scan", "--target", HARDENED, "--policy", str(tmp_path / "missing.yaml"), "--lang=ja",
                            report=False)
    assert rc == 2 and "ファイルがありません" in err, err
    rc, _, _, err = run_cli("scan", "--target", HARDENED, "--policy", str(policy), "--lang", "en", report=False)
    assert err.startswith("mamoru: error: ") and "duplicate key (first at line 2)" in err, err


def test_the_language_comes_from_the_environment_without_the_flag(run_cli: RunCli, tmp_path: Path,
                                                                   monkeypatch: Any) -> None:
    monkeypatch.setenv("MAMORU_LANG", "ja")
    rc, _, _, err = run_cli("scan", "--target", HARDENED, "--policy", str(tmp_path / "none.yaml"), report=False)
    assert rc == 2 and "ファイルがありません" in err, err


def test_error_text_from_files_is_escaped_in_either_language(run_cli: RunCli, tmp_path: Path) -> None:
    """An error quoting a file name (chosen by whoever wrote the directory) never reaches the terminal raw."""
    evil = tmp_path / "p\x1b]0;pwned\x07.yaml"
    for lang in ("ja", "en"):
        rc, _, _, err = run_cli("scan", "--target", HARDENED, "--policy", str(evil), "--lang", lang, report=False)
        assert rc == 2
        assert "\x1b" not in err and "\x07" not in err and "\\x1b" in err
