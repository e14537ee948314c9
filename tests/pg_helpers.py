"""A throwaway PostgreSQL cluster for tests and benchmarks: Debian's ``postgresql`` binaries, a temp directory.

Why a cluster of our own rather than the system's: CI is a clean Debian machine where no PostgreSQL is
running, and a developer's running server must never be touched by tests. So ``initdb`` makes a cluster in a
temporary directory, ``pg_ctl`` starts it listening on a Unix socket in that directory only
(``listen_addresses = ''``: no TCP port, nothing reachable from the network), with fsync off (the data is
thrown away), and it is stopped and removed at the end.

PostgreSQL refuses to run as root. CI runs as root on a clean machine, so the server runs as ``nobody`` (which
every Debian system has) through ``runuser``; the temp directory is handed to that user. Run as an ordinary
user, the server simply runs as that user. Clients (the tests, running as root or not) connect through the
socket with ``trust`` authentication, which is safe here only because the socket directory is private to the
cluster's temp directory.

Usage::

    with PgCluster() as pg:
        url = pg.url()          # postgresql://mamoru@%2Ftmp%2F…/mamoru  (role with CREATEDB, its database)
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

#: The role and database made for the tests (CREATEDB: pytest-django creates ``test_mamoru`` beside it).
ROLE = "mamoru"
DATABASE = "mamoru"
#: The unprivileged account the server runs as when the tests run as root.
SERVER_USER = "nobody"

_SETTINGS = """
# mamoru tests: a throwaway cluster, reachable through its own Unix socket only
listen_addresses = ''
unix_socket_directories = '{socket_dir}'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 60
"""


def bin_dir() -> Path | None:
    """The newest installed server's binaries (Debian: /usr/lib/postgresql/<major>/bin), else None."""
    found: list[tuple[int, Path]] = []
    for d in Path("/usr/lib/postgresql").glob("*/bin"):
        if re.fullmatch(r"\d+", d.parent.name) and (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            found.append((int(d.parent.name), d))
    return max(found)[1] if found else None


def missing_reason() -> str | None:
    """Why a cluster cannot be started here (for a skip or a CI failure), else None."""
    if bin_dir() is None:
        return "PostgreSQL server binaries (Debian package postgresql: /usr/lib/postgresql/*/bin) are not installed"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root, and runuser (util-linux) is missing to start postgres as an unprivileged user"
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root, and there is no {SERVER_USER!r} account to start postgres as"
    return None


class PgCluster:
    """A started cluster with role ``mamoru`` (CREATEDB) and database ``mamoru``; :meth:`close` removes it."""

    def __init__(self) -> None:
        reason = missing_reason()
        if reason is not None:
            raise RuntimeError(reason)
        bins = bin_dir()
        assert bins is not None
        self._bin = bins
        # /tmp (not pytest's tmp_path, which is private to root): the server user must reach the directory.
        self.root = Path(tempfile.mkdtemp(prefix="mamoru-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.socket_dir = self.root  # short: a socket path is limited to ~107 bytes
        self.log = self.root / "server.log"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._as_user = ["runuser", "-u", SERVER_USER, "--"]
        self._started = False
        try:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                      "--locale=C.UTF-8", "--no-sync", "--no-instructions")
            with (self.data / "postgresql.conf").open("a", encoding="utf-8") as f:
                f.write(_SETTINGS.format(socket_dir=self.socket_dir))
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
            self._started = True
            self._create_role_and_database()
        except BaseException:
            self.close()
            raise

    def _run(self, program: str, *args: str) -> None:
        """Run a server binary as the server user; a failure raises with its output and the server log."""
        proc = subprocess.run([*self._as_user, str(self._bin / program), *args], capture_output=True, text=True,
                              cwd=self.root, timeout=120, check=False)
        if proc.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} failed ({proc.returncode}): {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
                               f"\nserver log:\n{log}")

    def _create_role_and_database(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(host=str(self.socket_dir), user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(ROLE)))
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE),
                                                                       sql.Identifier(ROLE)))

    def create_database(self, name: str) -> str:
        """Another empty database owned by the test role (e.g. to migrate from nothing); returns its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(host=str(self.socket_dir), user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(ROLE)))
        return self.url(name)

    def url(self, database: str = DATABASE) -> str:
        """The URL the dashboard takes (MAMORU_DASHBOARD_DATABASE / --database): the socket directory as host."""
        return f"postgresql://{ROLE}@{quote(str(self.socket_dir), safe='')}/{database}"

    def close(self) -> None:
        """Stop the server (immediately: nothing here is worth a checkpoint) and remove its directory."""
        if self._started:
            self._started = False
            # A failed stop still leaves nothing behind: the directory goes below, the server with its socket.
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "60", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
