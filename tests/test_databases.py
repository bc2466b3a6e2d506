"""The database under the server: the run's kind for every test, and PostgreSQL itself.

The first tests check that a run is on the database it says (tests/support/databases.py):
they run on SQLite and again in the PostgreSQL run. The others need PostgreSQL in any
run: migrations when several servers start at once, and a turn on a server whose
database is PostgreSQL.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.backends.postgresql.base import DatabaseWrapper
from django.db.migrations.loader import MigrationLoader

from dashboard_ai.migrations_lock import MIGRATIONS_LOCK_KEY, migrations_lock
from scripted_model.server import ScriptedModelServer
from tests.support.databases import run_database
from tests.support.live import ChatClient, LiveServer, server_env
from tests.support.postgres import PostgresServer

VENDORS = {"sqlite": "sqlite", "postgres": "postgresql"}
URL_SCHEMES = {"sqlite": "sqlite:///", "postgres": "postgres://"}
CSV = "month,revenue\nJan,10\nFeb,20\n"


# --- The run's database ------------------------------------------------------------


@pytest.mark.database
@pytest.mark.django_db
def test_the_test_database_is_the_one_the_run_names() -> None:
    assert connection.vendor == VENDORS[run_database()]


@pytest.mark.database
def test_a_live_server_gets_a_database_of_the_runs_kind_named_for_its_data(tmp_path) -> None:
    url = server_env(tmp_path / "a", "http://127.0.0.1:9")["DATABASE_URL"]
    again = server_env(tmp_path / "a", "http://127.0.0.1:9")["DATABASE_URL"]
    other = server_env(tmp_path / "b", "http://127.0.0.1:9")["DATABASE_URL"]

    assert url.startswith(URL_SCHEMES[run_database()])
    assert url == again and url != other


# --- PostgreSQL itself -------------------------------------------------------------


def django_connection(server: PostgresServer, database: str) -> DatabaseWrapper:
    """A Django connection of its own (not the test database's) to ``database``."""
    settings_dict = {**connections.settings[DEFAULT_DB_ALIAS], **server.django_settings(database)}
    return DatabaseWrapper(settings_dict, alias="migrations_lock_test")


def test_a_second_server_waits_for_the_migrations_lock_then_takes_it(
    postgres_server: PostgresServer, django_db_blocker, caplog
) -> None:
    postgres_server.create_database("lock_wait")
    entered, leave = threading.Event(), threading.Event()

    def second_server() -> None:
        waiter = django_connection(postgres_server, "lock_wait")
        try:
            with migrations_lock(waiter):
                entered.set()
                leave.wait(10)
        finally:
            waiter.close()

    caplog.set_level(logging.INFO, logger="dashboard_ai.migrations_lock")
    with django_db_blocker.unblock(), postgres_server.connect("lock_wait") as first:
        first.execute("SELECT pg_advisory_lock(%s)", (MIGRATIONS_LOCK_KEY,))
        thread = threading.Thread(target=second_server)
        thread.start()
        waited = not entered.wait(0.5)
        first.execute("SELECT pg_advisory_unlock(%s)", (MIGRATIONS_LOCK_KEY,))
        took_it = entered.wait(10)
        held = first.execute("SELECT pg_try_advisory_lock(%s)", (MIGRATIONS_LOCK_KEY,)).fetchone()
        leave.set()
        thread.join(10)
        free = first.execute("SELECT pg_try_advisory_lock(%s)", (MIGRATIONS_LOCK_KEY,)).fetchone()

    assert waited and took_it
    assert held == (False,)  # the second server holds it...
    assert free == (True,)  # ...until its block ends
    assert "waiting for another server to finish migrating" in caplog.text


def applied_migrations(url: str) -> list[tuple[str, str]]:
    """The migrations ``django_migrations`` records, one row each; none before it exists."""
    with psycopg.connect(url) as db:
        if db.execute("SELECT to_regclass('django_migrations')").fetchone() == (None,):
            return []
        rows = db.execute("SELECT app, name FROM django_migrations ORDER BY app, name")
        return [(app, name) for app, name in rows.fetchall()]


def waiting_for_the_lock(db: psycopg.Connection) -> int:
    """How many sessions wait for an advisory lock in ``db``'s database."""
    row = db.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    ).fetchone()
    return int(row[0]) if row else 0


def test_three_servers_started_at_once_on_a_fresh_database_all_come_up_and_migrate_it_once(
    postgres_server: PostgresServer, shared_model: ScriptedModelServer, tmp_path: Path
) -> None:
    url = postgres_server.create_database("three_servers")
    servers = [
        LiveServer(data=data, env=server_env(data, shared_model.url, DATABASE_URL=url))
        for data in (tmp_path / "a", tmp_path / "b", tmp_path / "c")
    ]
    for server in servers:
        server.data.mkdir()
    together = threading.Barrier(len(servers))

    def start(server: LiveServer) -> None:
        together.wait()
        server.start(timeout=60)

    pool = ThreadPoolExecutor(len(servers))
    try:
        # Holding the lock first makes all three reach it before any migrates: then
        # they are sure to contend for it, which servers that start together may not.
        with psycopg.connect(url, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATIONS_LOCK_KEY,))
            starts = [pool.submit(start, server) for server in servers]
            deadline = time.monotonic() + 60
            while waiting_for_the_lock(holder) < len(servers) and time.monotonic() < deadline:
                done = [started for started in starts if started.done()]
                for started in done:
                    started.result()  # a server that could not start: its error
                assert not done, "a server came up while the lock was held"
                time.sleep(0.1)
            all_waited = waiting_for_the_lock(holder) == len(servers)
            applied_while_held = applied_migrations(url)
        for started in starts:
            started.result()
        health = [server.get_json("/health")["status"] for server in servers]
    finally:
        pool.shutdown()
        for server in servers:
            server.stop()

    on_disk = sorted(MigrationLoader(None, ignore_no_migrations=True).disk_migrations)
    assert all_waited and applied_while_held == []
    assert health == ["ok"] * 3
    assert applied_migrations(url) == on_disk  # every migration, each exactly once
    for server in servers:
        assert "waiting for another server to finish migrating" in server.log_text()


async def test_a_server_on_postgres_runs_a_turn_and_keeps_its_rows_there(
    postgres_server: PostgresServer, own_server
) -> None:
    url = postgres_server.create_database("one_turn")
    with own_server(DATABASE_URL=url) as server:
        client = await ChatClient.connect(server.ws_url)
        ready = await client.init("pg1", files={"data/sales.csv": CSV})
        frames = await client.message("pg1", "build it [script:write_app]", clientMessageId="m1")
        await client.close()

    with psycopg.connect(url) as db:
        session = db.execute(
            "SELECT id, message_count, last_seq FROM chat_chatsession WHERE session_id = %s",
            ("pg1",),
        ).fetchone()
        assert session is not None
        outcome = db.execute(
            "SELECT frame FROM chat_turnoutcome WHERE session_id = %s AND client_message_id = %s",
            (session[0], "m1"),
        ).fetchone()
    end = frames[-1]
    assert ready["type"] == "ready"
    assert end["type"] == "complete" and "src/App.tsx" in end["files"]
    assert session[1:] == (1, end["seq"])
    assert outcome is not None and outcome[0]["type"] == "complete"
