"""The database a test run uses: SQLite, or PostgreSQL with ``TEST_DATABASE=postgres``.

Tests that exercise the database are marked ``database``. ``make test`` runs the whole
suite on SQLite, then the ``database`` tests again on PostgreSQL::

    pytest -m "not postgres"
    TEST_DATABASE=postgres pytest -m "database or postgres"

A PostgreSQL run starts one throwaway :class:`PostgresServer` for the whole session,
before any test: pytest-django makes its test database there (``DATABASES`` points at
the server before the test database is set up), and each live server
(``server_env``) gets a database of its own there, named for its data directory.

Tests about PostgreSQL itself (concurrent migrations, a server on PostgreSQL) take the
``postgres_server`` fixture, in either run: they are marked ``postgres`` here and
``e2e`` by tests/support/layers.py, and share the run's server. A machine without
PostgreSQL fails them, and every test of a PostgreSQL run; it never skips them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.postgres import LIVE_SERVER_ENV, PostgresServer, missing_postgres

#: The variable that chooses the run's database: ``sqlite`` (the default) or ``postgres``.
DATABASE_ENV = "TEST_DATABASE"
DATABASES = ("sqlite", "postgres")
#: pytest-django names the test database ``test_`` + this.
DATABASE_NAME = "dashboard_ai"


def run_database() -> str:
    """The database this run uses, from ``TEST_DATABASE``."""
    chosen = os.environ.get(DATABASE_ENV, "").strip().lower() or "sqlite"
    if chosen not in DATABASES:
        raise pytest.UsageError(f"{DATABASE_ENV} must be one of {', '.join(DATABASES)}")
    return chosen


def pytest_configure(config: pytest.Config) -> None:
    run_database()  # a wrong TEST_DATABASE stops the run before it starts


def pytest_report_header(config: pytest.Config) -> str:
    return f"database: {run_database()} ({DATABASE_ENV})"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "postgres_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The run's PostgreSQL server, started on first use; missing, it fails the test."""
    problem = missing_postgres()
    if problem is not None:
        pytest.fail(
            f"{problem}; tests on PostgreSQL need it (apt-get install postgresql, as "
            "bin/install-test-services does for make test)",
            pytrace=False,
        )
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def _live_servers_on_the_run_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """In a PostgreSQL run, the server is up before any test, for live servers too."""
    if run_database() != "postgres":
        yield
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    os.environ[LIVE_SERVER_ENV] = server.url()
    yield
    os.environ.pop(LIVE_SERVER_ENV, None)


@pytest.fixture(scope="session")
def django_db_modify_db_settings(
    request: pytest.FixtureRequest, django_db_modify_db_settings_parallel_suffix: None
) -> None:
    """In a PostgreSQL run, point Django's default database at the run's server.

    pytest-django calls this just before it creates the test database. The settings
    entry is changed in place: Django's connection handler holds that very dict.
    """
    if run_database() != "postgres":
        return
    from django.conf import settings
    from django.db import DEFAULT_DB_ALIAS, connections

    server: PostgresServer = request.getfixturevalue("postgres_server")
    for connection in connections.all(initialized_only=True):
        if connection.alias == DEFAULT_DB_ALIAS:
            connection.close()
            del connections[DEFAULT_DB_ALIAS]
    settings.DATABASES[DEFAULT_DB_ALIAS].update(server.django_settings(DATABASE_NAME))
    assert connections[DEFAULT_DB_ALIAS].vendor == "postgresql"


@pytest.fixture(scope="session")
def django_db_keepdb(request: pytest.FixtureRequest) -> bool:
    """Keep the test database at the end (``--reuse-db``); a PostgreSQL run always does.

    Its server is thrown away at the end, the test database with it; and dropping the
    database first would fail on the connections the async ORM's worker threads hold.
    """
    return run_database() == "postgres" or bool(request.config.getvalue("reuse_db"))
