"""``mamoru dashboard org|token|user create`` run as real processes on a temporary SQLite file.

Each command is what an administrator types on the server; the database is then read back through Django (in
this process, on the same file) to see what the command really stored.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dashboard_reports import Signer

ROOT = Path(__file__).resolve().parents[1]


def mamoru(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["MAMORU_DASHBOARD_DATA"] = str(tmp_path / "data")
    env["MAMORU_DASHBOARD_DATABASE"] = f"sqlite:///{tmp_path / 'dash.sqlite3'}"
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return subprocess.run([sys.executable, "-m", "agent.cli.main", "dashboard", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def rows(tmp_path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(tmp_path / "dash.sqlite3") as db:
        return db.execute(sql).fetchall()


def test_org_token_and_user_create(tmp_path: Path) -> None:
    signer = Signer()
    signers = tmp_path / "allowed_signers"
    signers.write_text(signer.allowed)
    made = mamoru(tmp_path, "org", "create", "acme", "--name", "Acme 不動産", "--allowed-signers", str(signers))
    assert made.returncode == 0, made.stderr
    assert rows(tmp_path, "SELECT slug, name, allowed_signers FROM dashboard_organisation") == [
        ("acme", "Acme 不動産", signer.allowed)]
    again = mamoru(tmp_path, "org", "create", "acme", "--name", "other")
    assert again.returncode == 2 and "acme" in again.stderr

    printed = mamoru(tmp_path, "token", "create", "acme", "--name", "site-1")
    assert printed.returncode == 0, printed.stderr
    secret = printed.stdout.strip()
    assert secret.startswith("mmr_")
    out = tmp_path / "token"
    written = mamoru(tmp_path, "token", "create", "acme", "--name", "site-2", "--output", str(out))
    assert written.returncode == 0, written.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    secret2 = out.read_text().strip()
    assert secret2.startswith("mmr_") and secret2 not in written.stdout + written.stderr
    assert mamoru(tmp_path, "token", "create", "acme", "--name", "x", "--output", str(out)).returncode == 2
    assert out.read_text().strip() == secret2  # not overwritten
    import hashlib

    stored = rows(tmp_path, "SELECT name, digest FROM dashboard_apitoken ORDER BY name")
    assert stored == [("site-1", hashlib.sha256(secret.encode()).hexdigest()),
                      ("site-2", hashlib.sha256(secret2.encode()).hexdigest())]
    assert mamoru(tmp_path, "token", "create", "nope", "--name", "x").returncode == 2

    user = mamoru(tmp_path, "user", "create", "hanako", "--org", "acme", "--role", "admin")
    assert user.returncode == 0, user.stderr
    password = user.stdout.split("one-time password: ", 1)[1].split()[0]
    assert len(password) >= 20
    assert rows(tmp_path, "SELECT u.username, m.role FROM dashboard_membership m JOIN auth_user u ON u.id = m.user_id"
                ) == [("hanako", "admin")]
    assert rows(tmp_path, "SELECT g.name FROM auth_user_groups ug JOIN auth_group g ON g.id = ug.group_id") == [
        ("mamoru-must-change-password",)]
    assert password not in str(rows(tmp_path, "SELECT * FROM auth_user"))  # only its hash is kept
    assert mamoru(tmp_path, "user", "create", "hanako").returncode == 2
    audit = rows(tmp_path, "SELECT action FROM dashboard_auditentry ORDER BY id")
    assert audit == [("organisation.create",), ("token.create",), ("token.create",), ("user.create",)]
    assert secret not in str(rows(tmp_path, "SELECT detail FROM dashboard_auditentry"))


@pytest.mark.parametrize("line", ["someone@example.jp ssh-ed25519 AAAA\n", "just-one-word\n"])
def test_a_bad_allowed_signers_file_is_exit_2_with_its_line(tmp_path: Path, line: str) -> None:
    signers = tmp_path / "allowed_signers"
    signers.write_text("# trusted\n" + line)
    r = mamoru(tmp_path, "org", "create", "acme", "--name", "A", "--allowed-signers", str(signers))
    assert r.returncode == 2
    assert f"{signers}:2:" in r.stderr


def test_a_user_name_with_spaces_is_refused(tmp_path: Path) -> None:
    r = mamoru(tmp_path, "user", "create", "two words")
    assert r.returncode == 2 and "two words" in r.stderr
