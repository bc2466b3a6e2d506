"""The runtime's connection pool to ``REDIS_URL`` (redis-py's asyncio client)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

#: What talking to an unreachable or stalled Redis raises (the timeouts are ours).
UNREACHABLE = (RedisError, OSError, TimeoutError)


def connect(url: str) -> Redis:
    """A client for ``url``; connections are made on first use, on the running loop.

    Reads time out after 15 s like the channel layer's (see settings.py): longer than
    any blocking read of ours, short enough to notice a Redis that stopped answering.
    """
    return Redis.from_url(url, socket_timeout=15, socket_connect_timeout=5)
