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
from reports.safe_text import printable

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
    user = users.create_superuser(username=username, email="", password=password)
    from dashboard.security import flag_password_change

    flag_password_change(user)  # the printed password must not stay the password
    return password


def cli_audit(action: str, organisation: Any = None, **detail: Any) -> None:
    """The audit log entry of a command-line administration (no user, no address: the shell is the actor)."""
    from dashboard.models import AuditEntry

    AuditEntry.objects.create(actor=None, organisation=organisation, action=action, detail={"via": "cli", **detail})


def organisation_named(slug: str) -> Any:
    from dashboard.models import Organisation

    org = Organisation.objects.filter(slug=slug).first()
    if org is None:
        raise ConfigError(f"no organisation {printable(slug)!r} (make it with: mamoru dashboard org create)")
    return org


def write_secret(path: str, secret: str) -> None:
    """Write a token file the way ``mamoru push`` requires it: a new file, mode 0600 from its creation."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except FileExistsError:
        raise ConfigError(f"{printable(path)}: already exists; not overwriting a token file") from None
    except OSError as e:
        raise ConfigError(f"{printable(path)}: cannot create it ({e.strerror})") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(secret + "\n")


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


@dashboard.group("org")
def org_group() -> None:
    """Organisations (client offices): the unit of isolation, tokens and trusted signers."""


@org_group.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="The organisation's display name.")
@click.option("--allowed-signers", "signers_file", type=click.Path(dir_okay=False), default=None,
              help="OpenSSH allowed_signers file: whose signatures this organisation's reports must carry.")
@click.option("--database", default=None, help=DATABASE_HELP)
def org_create(slug: str, name: str, signers_file: str | None, database: str | None) -> None:
    """Create an organisation SLUG (its URL is /o/SLUG/)."""
    from reports.signing.allowed_signers import load as load_allowed_signers

    signers = ""
    if signers_file is not None:
        load_allowed_signers(signers_file)  # a malformed line: exit 2 naming file and line
        with open(signers_file, encoding="utf-8") as f:
            signers = f.read()
    setup_django(database)
    from django.core.exceptions import ValidationError

    from dashboard.models import Organisation

    migrate()
    org = Organisation(slug=slug, name=name, allowed_signers=signers)
    try:
        org.full_clean()
    except ValidationError as e:
        problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in e.message_dict.items())
        raise ConfigError(f"organisation {printable(slug)!r}: {printable(problems)}") from None
    org.save()
    cli_audit("organisation.create", org, slug=slug, name=name)
    note(f"created organisation {slug!r}")


@dashboard.group("token")
def token_group() -> None:
    """API tokens: the credential a site's `mamoru push` sends."""


@token_group.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="What the token is for (e.g. the site), shown in the token list.")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="Write the token to this new file (mode 0600) instead of printing it.")
@click.option("--database", default=None, help=DATABASE_HELP)
def token_create(slug: str, name: str, output: str | None, database: str | None) -> None:
    """Create an API token for organisation SLUG; it is shown (or written) once and stored only as a hash."""
    setup_django(database)
    migrate()
    from dashboard.tokens import create_token

    org = organisation_named(slug)
    if output is not None and os.path.lexists(output):
        raise ConfigError(f"{printable(output)}: already exists; not overwriting a token file")
    secret, token = create_token(org, name)
    try:
        if output is not None:
            write_secret(output, secret)
    except ConfigError:
        token.delete()  # a token nobody received must not stay valid
        raise
    cli_audit("token.create", org, name=name, prefix=token.prefix)
    if output is None:
        click.echo(secret)
    else:
        note(f"token {token.prefix}… for {slug!r} written to {output} (mode 0600)")


@dashboard.group("user")
def user_group() -> None:
    """Dashboard users (people who log in)."""


@user_group.command("create")
@click.argument("username")
@click.option("--org", "slug", default=None, help="Make the user a member of this organisation.")
@click.option("--role", type=click.Choice(["viewer", "admin"]), default="viewer", show_default=True,
              help="The role in --org.")
@click.option("--database", default=None, help=DATABASE_HELP)
def user_create(username: str, slug: str | None, role: str, database: str | None) -> None:
    """Create a user with a one-time password (printed once; they must change it when they first log in)."""
    setup_django(database)
    migrate()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.validators import UnicodeUsernameValidator
    from django.core.exceptions import ValidationError
    from django.db import transaction

    from dashboard.models import Membership
    from dashboard.security import flag_password_change

    try:
        UnicodeUsernameValidator()(username)
    except ValidationError:
        raise ConfigError(f"user name {printable(username)!r}: letters, digits and @.+-_ only") from None
    users = get_user_model().objects
    org = organisation_named(slug) if slug is not None else None
    if users.filter(username=username).exists():
        raise ConfigError(f"user {printable(username)!r} already exists")
    password = secrets.token_urlsafe(18)
    with transaction.atomic():
        user = users.create_user(username=username, password=password)
        flag_password_change(user)
        if org is not None:
            Membership.objects.create(user=user, organisation=org, role=role)
        cli_audit("user.create", org, user=username, role=role if org is not None else None)
    click.echo(f"Created user {username!r} with the one-time password: {password}")
    click.echo("They must change it when they first log in (it is not shown again).")
