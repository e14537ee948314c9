"""Where the dashboard keeps its state, decided once from the environment.

Everything a deployment chooses comes from environment variables (``MAMORU_DASHBOARD_*``), so the same
settings module serves ``mamoru dashboard serve`` on a laptop (SQLite under the user's data directory) and
gunicorn behind a reverse proxy on PostgreSQL, with no settings file to write.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

DATABASE_ENV = "MAMORU_DASHBOARD_DATABASE"
DATA_ENV = "MAMORU_DASHBOARD_DATA"
SECRET_ENV = "MAMORU_DASHBOARD_SECRET_KEY"
HOSTS_ENV = "MAMORU_DASHBOARD_ALLOWED_HOSTS"
SECURE_ENV = "MAMORU_DASHBOARD_SECURE"  # "1": behind TLS (secure cookies, HSTS)


def data_dir() -> Path:
    """``$MAMORU_DASHBOARD_DATA``, else the XDG data directory: per user, never world-readable."""
    explicit = os.environ.get(DATA_ENV)
    if explicit:
        path = Path(explicit)
    else:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        path = Path(base) / "mamoru" / "dashboard"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def database_url() -> str:
    """The database: ``$MAMORU_DASHBOARD_DATABASE`` (``postgresql://…`` or ``sqlite:///…``), else SQLite."""
    return os.environ.get(DATABASE_ENV) or f"sqlite:///{data_dir() / 'dashboard.sqlite3'}"


def secret_key() -> str:
    """``$MAMORU_DASHBOARD_SECRET_KEY``, else one made at first start and kept 0600 beside the database.

    Sessions and CSRF tokens are signed with it: it must survive restarts and never be a constant in code.
    """
    explicit = os.environ.get(SECRET_ENV)
    if explicit:
        return explicit
    path = data_dir() / "secret_key"
    try:
        return path.read_text("ascii").strip()
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(50)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker made it first
        return path.read_text("ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key + "\n")
    return key


def allowed_hosts() -> list[str]:
    raw = os.environ.get(HOSTS_ENV, "127.0.0.1,localhost,[::1]")
    return [h.strip() for h in raw.split(",") if h.strip()]


def behind_tls() -> bool:
    return os.environ.get(SECURE_ENV, "") == "1"
