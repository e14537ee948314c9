"""``mamoru dashboard serve|migrate``: the compliance dashboard (the ``dashboard`` package, Django).

Django is imported only here, so an agent that scans never loads it. ``serve`` runs the same WSGI application
that a production deployment gives to gunicorn behind a reverse proxy; on first start it creates the tables
and an administrator whose one-time password is printed once.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import click

from agent.cli.common import note
from agent.errors import ConfigError

DATABASE_HELP = ("Database URL: postgresql://user@host/db (or sqlite:///PATH). Default: $MAMORU_DASHBOARD_DATABASE, "
                 "else SQLite under the user's data directory.")


def setup_django(database: str | None) -> None:
    """Point the settings at ``database`` (if given) and start Django; a missing extra is a clear error."""
    if database:
        os.environ["MAMORU_DASHBOARD_DATABASE"] = database
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    try:
        import django
    except ModuleNotFoundError as e:
        raise ConfigError("the dashboard needs its extra: pip install 'mamoru[dashboard]'") from e
    django.setup()


def migrate(verbosity: int = 0) -> None:
    from django.core.management import call_command
    from django.db.utils import OperationalError

    try:
        call_command("migrate", interactive=False, verbosity=verbosity)
    except OperationalError as e:
        raise ConfigError(f"dashboard database: {str(e).strip()[:300]}") from e


def ensure_admin(username: str = "admin") -> str | None:
    """Create the first administrator if there is no user at all; return its password (shown once) or None."""
    from django.contrib.auth import get_user_model

    users = get_user_model().objects
    if users.exists():
        return None
    password = secrets.token_urlsafe(18)
    users.create_superuser(username=username, email="", password=password)
    return password


@click.group("dashboard")
def dashboard() -> None:
    """The compliance dashboard: receives pushed reports and shows each office's safeguards over time."""


@dashboard.command("migrate")
@click.option("--database", default=None, help=DATABASE_HELP)
def migrate_cmd(database: str | None) -> None:
    """Create or update the dashboard's tables (serve does this itself)."""
    setup_django(database)
    migrate(verbosity=1)


@dashboard.command("serve")
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--bind", default="127.0.0.1:8000", show_default=True, help="Address and port to listen on.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
def serve(database: str | None, bind: str, workers: int) -> None:
    """Run the dashboard (gunicorn, the WSGI application in dashboard.wsgi)."""
    setup_django(database)
    migrate()
    password = ensure_admin()
    if password is not None:
        click.echo(f"Created administrator 'admin' with the one-time password: {password}")
        click.echo("Log in and change it now (it is not shown again).")
    from django.conf import settings
    from gunicorn.app.base import BaseApplication

    from dashboard.wsgi import application

    class Server(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
        def load_config(self) -> None:
            for key, value in {"bind": bind, "workers": workers, "accesslog": "-", "timeout": 120}.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return application

    note(f"dashboard on http://{bind}/ (database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]})")
    Server().run()
