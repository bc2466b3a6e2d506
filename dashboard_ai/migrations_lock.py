"""``migrate`` at start-up, one server at a time.

A fleet starts its servers together, and each migrates as it starts (``AUTO_MIGRATE``).
Two ``migrate`` runs at once on one PostgreSQL database race: both find a migration
unapplied, both apply it, and the slower one fails on a table that exists by then, so
its server never comes up. On PostgreSQL, ``migrate`` therefore runs while holding an
advisory lock: servers take turns, and each after the first finds nothing left to do.

The lock is session-level (``pg_advisory_lock``), not transaction-level, because
``migrate`` commits as it goes (a transaction per migration), and it is held on the
connection ``migrate`` itself uses. PostgreSQL releases it when that connection ends,
so a server that dies while migrating does not block the others. Advisory locks
belong to one database: servers of different databases never wait for each other.
On SQLite (one machine) ``migrate`` runs as it always did.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper

logger = logging.getLogger(__name__)

#: The advisory lock's key: any fixed 64-bit number other code does not lock ("dashboar").
MIGRATIONS_LOCK_KEY = 0x64617368626F6172


@contextmanager
def migrations_lock(connection: BaseDatabaseWrapper) -> Iterator[None]:
    """Hold the migrations lock on ``connection`` while the block runs (PostgreSQL only)."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [MIGRATIONS_LOCK_KEY])
        row = cursor.fetchone()
        if not (row and row[0]):
            logger.info("waiting for another server to finish migrating the database")
            cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATIONS_LOCK_KEY])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATIONS_LOCK_KEY])


def migrate() -> None:
    """Apply the migrations not yet applied, waiting for any other server doing it."""
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        with migrations_lock(connection):
            call_command("migrate", interactive=False, verbosity=0)
    finally:
        # Start-up's thread serves no request: its connection would stay open, unused.
        connection.close()
