"""A throwaway PostgreSQL on a free loopback port, for the tests that run on PostgreSQL.

``initdb`` into a temporary directory, ``postgres`` in the foreground on 127.0.0.1 only
(its socket in that directory too, never in /var/run), nothing synced to disk, every
connection from loopback trusted, and everything removed at the end. PostgreSQL
refuses to run as root, so as root the server runs as the ``postgres`` system user
(made by Debian's ``postgresql`` package) and owns the directory; as anyone else it
runs as that user. The binaries are Debian's, under ``/usr/lib/postgresql/*/bin``.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from tests.support.ports import free_port

#: Where Debian's ``postgresql`` package puts each major version's server binaries.
BIN_GLOB = "/usr/lib/postgresql/*/bin"
#: PostgreSQL's own user, which the server runs as when the tests run as root.
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"
#: Set during a PostgreSQL run (tests/support/databases.py) to the run's server, as a
#: URL of its ``postgres`` database: live servers get databases of their own there.
LIVE_SERVER_ENV = "TEST_POSTGRES_URL"


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's binaries (``initdb``, ``postgres``), or None."""
    found = [
        path
        for path in Path("/").glob(BIN_GLOB.lstrip("/"))
        if (path / "initdb").is_file() and (path / "postgres").is_file()
    ]
    return max(found, key=lambda path: int(path.parent.name), default=None)


def missing_postgres() -> str | None:
    """Why no PostgreSQL server can be started here, or None when one can."""
    if postgres_bin_dir() is None:
        return f"PostgreSQL is not installed (no initdb/postgres under {BIN_GLOB})"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            return f"running as root, and there is no {SYSTEM_USER!r} user to run PostgreSQL as"
    return None


@dataclass
class PostgresServer:
    """``postgres`` in the foreground in a temporary directory, bound to 127.0.0.1 only."""

    port: int = field(default_factory=free_port)
    root: Path | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        assert self.root is not None, "the server was never started"
        return self.root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        """A ``DATABASE_URL`` for ``database`` on this server, as its superuser."""
        return f"postgres://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def django_settings(self, database: str) -> dict[str, Any]:
        """The parts of a Django ``DATABASES`` entry that point at ``database`` here."""
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": database,
            "USER": SUPERUSER,
            "PASSWORD": "",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "OPTIONS": {},
        }

    def start(self, timeout: float = 30.0) -> None:
        """Create the cluster, start the server and wait until it accepts connections."""
        problem = missing_postgres()
        if problem is not None:
            raise RuntimeError(problem)
        bin_dir = postgres_bin_dir()
        assert bin_dir is not None
        # Not under pytest's tmp_path: that is private to the user running the tests,
        # and the server runs as another user when that one is root.
        self.root = Path(tempfile.mkdtemp(prefix="dashboard-ai-postgres-"))
        data = self.root / "data"
        as_user = self._as_system_user()
        if as_user:
            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        with self.log_path.open("ab") as log:
            subprocess.run(
                [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER]
                + ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]
                + ["--no-instructions"],
                cwd=self.root,
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
                **as_user,
            ).check_returncode()
            self.process = subprocess.Popen(
                [str(bin_dir / "postgres"), "-D", str(data), "-p", str(self.port)]
                + ["-c", "listen_addresses=127.0.0.1"]
                + ["-c", f"unix_socket_directories={self.root}"]
                + ["-c", "fsync=off", "-c", "synchronous_commit=off"]
                + ["-c", "full_page_writes=off", "-c", "max_connections=200"],
                cwd=self.root,
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                **as_user,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited:\n{self._log_tail()}")
            if self._accepts_connections():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"postgres did not start:\n{self._log_tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (fast shutdown: clients are disconnected) and remove its files."""
        process, self.process = self.process, None
        if process is not None:
            # SIGTERM would wait for every client to leave; SIGINT ends their sessions.
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def create_database(self, name: str) -> str:
        """Create the empty database ``name``; its URL."""
        return create_database(self.url(), name)

    def connect(self, database: str = "postgres") -> psycopg.Connection[Any]:
        """A connection in autocommit mode to ``database``, as the superuser."""
        return _connect(self.url(database))

    def _accepts_connections(self) -> bool:
        try:
            with self.connect():
                return True
        except psycopg.OperationalError:
            return False

    def _as_system_user(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        return {"user": SYSTEM_USER, "group": SYSTEM_USER, "extra_groups": []}

    def _env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"}

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError as exc:
            return f"(no log: {exc})"


def live_database_url(data: Path) -> str:
    """The ``DATABASE_URL`` of a live server whose files are under ``data``.

    A SQLite file there; during a PostgreSQL run, a database of its own on the run's
    server, made on first use and named for ``data``, so a restarted server (same
    ``data``) finds its rows again.
    """
    server_url = os.environ.get(LIVE_SERVER_ENV, "")
    if not server_url:
        return f"sqlite:///{data / 'db.sqlite3'}"
    return create_database(server_url, _name_for(data), exist_ok=True)


def create_database(server_url: str, name: str, *, exist_ok: bool = False) -> str:
    """Create database ``name`` on the server of ``server_url``; the new database's URL."""
    with _connect(server_url) as connection:
        found = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if found.fetchone() is None:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        elif not exist_ok:
            raise RuntimeError(f"database {name!r} exists already")
    return f"{server_url.rsplit('/', 1)[0]}/{name}"


def _name_for(data: Path) -> str:
    return f"live_{hashlib.sha256(str(data).encode()).hexdigest()[:20]}"


def _connect(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url, autocommit=True, connect_timeout=5)
