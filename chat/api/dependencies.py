"""Whether this server reaches what it depends on (Redis, the database), for ``/health``.

Each answer is ``"ok"`` or what is wrong in a few words: the kind of failure, never
its text, which can hold a host, a path or credentials.
"""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from django.db import connection
from redis.asyncio import Redis

#: How long ``/health`` waits for each of them before it calls it unreachable.
CHECK_TIMEOUT_SECONDS = 2.0

NOT_CONFIGURED = "not configured"


async def redis_status(redis: Redis | None) -> str:
    """``"ok"`` if Redis answers a PING (``"not configured"`` without ``REDIS_URL``)."""
    if redis is None:
        return NOT_CONFIGURED
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await redis.ping()
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ok"


def _query_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def database_status() -> str:
    """``"ok"`` if the database answers a query."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            await sync_to_async(_query_database, thread_sensitive=True)()
    except Exception as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ok"
