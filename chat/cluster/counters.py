"""Per-client counts shared by the fleet: what each client address holds on every server.

A :class:`RedisClientCounter` counts one kind of thing (``"sockets"``, ``"sessions"``)
per client address across every server sharing ``REDIS_URL``, so a limit such as
``MAX_SOCKETS_PER_CLIENT`` means the same on one server and on ten.

A client's counts are one hash (:func:`chat.cluster.keys.client_count_key`), one field
per server holding the count *of that server*: a server that dies does not leave its
counts behind, because only live servers' fields count. A server is live while its
entry in the kind's sorted set of servers (:func:`chat.cluster.keys.live_servers_key`)
holds a deadline in the future; it pushes the deadline back every third of
``SESSION_LEASE_SECONDS``. A script that finds a server's deadline passed removes the
server and its fields. Deadlines are on Redis's clock (``TIME``), so the servers'
clocks need not agree.

What Redis holds of this server is a copy of the counts this server keeps itself: each
open, close and refresh writes this server's whole count for the client, never a
difference. A refresh writes the count of every client this server holds something of,
and 0 (the field goes) for each client it holds nothing of whose field may still be in
Redis: one it closed something of since the last refresh that succeeded (that write may
have failed, or an older one that failed land after it), one whose open raised (the
script may have counted it, its reply lost). Without those, such a field would stay as
long as other servers' writes keep the hash from expiring. So a Redis that lost its data
(a restart, a flush), or a write that could not reach it, is right again at the next
refresh that succeeds. The operations of one server run one at a time (a lock), or a
refresh could write a count older than an open's.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from redis.asyncio import Redis

from chat.cluster.connection import UNREACHABLE
from chat.cluster.keys import client_count_key, live_servers_key
from chat.cluster.periodic import Periodic

logger = logging.getLogger("dashboard_ai.chat")

# Redis's clock in ms: a deadline set by one server is read against the same clock by all.
_NOW = """
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
"""

# KEYS: the client's counts, the live servers. ARGV: server id, limit, this server's
# count for the client, liveness ms, counts expiry ms. 1 and counted, or 0 at the limit.
# The caller is live (it is speaking); any other server past its deadline goes, fields too.
_OPEN = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
local held = tonumber(ARGV[3])
local total = held
local counts = redis.call('HGETALL', KEYS[1])
for i = 1, #counts, 2 do
    if counts[i] ~= ARGV[1] then
        if redis.call('ZSCORE', KEYS[2], counts[i]) then
            total = total + tonumber(counts[i + 1])
        else
            redis.call('HDEL', KEYS[1], counts[i])
        end
    end
end
if total >= tonumber(ARGV[2]) then
    return 0
end
redis.call('HSET', KEYS[1], ARGV[1], held + 1)
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
"""
)

# KEYS: the live servers, then the counts of each client. ARGV: server id, liveness ms
# (0: dead now), counts expiry ms, then this server's count for each client (0: none).
# Writes this server's counts and deadline: a close, the refresh, and the leave (all 0).
_WRITE = (
    _NOW
    + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
for i = 2, #KEYS do
    local held = tonumber(ARGV[i + 2])
    if held > 0 then
        redis.call('HSET', KEYS[i], ARGV[1], held)
        redis.call('PEXPIRE', KEYS[i], ARGV[3])
    else
        redis.call('HDEL', KEYS[i], ARGV[1])
    end
end
return 1
"""
)

# KEYS: the client's counts, the live servers. ARGV: this server's id. The other live
# servers that hold something of the client.
_HOLDERS = (
    _NOW
    + """
local holders = {}
local counts = redis.call('HGETALL', KEYS[1])
for i = 1, #counts, 2 do
    local deadline = redis.call('ZSCORE', KEYS[2], counts[i])
    if counts[i] ~= ARGV[1] and tonumber(counts[i + 1]) > 0 and deadline
        and tonumber(deadline) > now then
        table.insert(holders, counts[i])
    end
end
return holders
"""
)


class RedisClientCounter:
    """One kind of per-client count across the fleet (a :class:`chat.limits.ClientCounter`).

    :meth:`open` raises what Redis raises when it cannot be reached: nothing may be
    admitted uncounted. :meth:`close` only logs it: the count is dropped here either way,
    and the next refresh writes it to Redis.
    """

    def __init__(self, redis: Redis, *, kind: str, server_id: str, lease_seconds: float) -> None:
        self._kind = kind
        self._server_id = server_id
        self._servers = live_servers_key(kind)
        self._live_ms = max(1, round(lease_seconds * 1000))
        # A client's hash outlives a refresh or two that fail; then it goes by itself,
        # so the counts of clients that left with their servers do not stay forever.
        self._expiry_ms = 3 * self._live_ms
        self._interval = lease_seconds / 3
        self._open_script = redis.register_script(_OPEN)
        self._write_script = redis.register_script(_WRITE)
        self._holders_script = redis.register_script(_HOLDERS)
        self._held: Counter[str] = Counter()
        # Clients the next refresh writes even at 0, until one succeeds (module docstring).
        self._unsettled: set[str] = set()
        self._lock = asyncio.Lock()
        self._refresher = Periodic(self.refresh, self._interval, f"counts-refresh:{kind}")

    async def open(self, client: str, limit: int) -> bool:
        """Count one more for ``client`` unless the fleet holds ``limit`` already."""
        async with self._lock:
            held = self._held[client]
            try:
                counted = await self._open_script(
                    keys=[client_count_key(self._kind, client), self._servers],
                    args=[self._server_id, limit, held, self._live_ms, self._expiry_ms],
                )
            except BaseException:
                # Cancelled or failed, the script may have run and counted one more.
                self._unsettled.add(client)
                raise
            if counted != 1:
                return False
            self._held[client] += 1
            return True

    async def holders(self, client: str) -> list[str]:
        """The other live servers that hold something of ``client``."""
        found = await self._holders_script(
            keys=[client_count_key(self._kind, client), self._servers], args=[self._server_id]
        )
        return [server.decode() if isinstance(server, bytes) else str(server) for server in found]

    async def close(self, client: str) -> None:
        """One thing of ``client`` on this server ended."""
        async with self._lock:
            if self._held[client] <= 0:
                return
            self._held[client] -= 1
            if self._held[client] == 0:
                del self._held[client]
            self._unsettled.add(client)
            await self._write({client: self._held[client]}, self._live_ms, "closing")

    async def start(self) -> None:
        """Refresh this server's deadline and counts each third of the lease, until :meth:`stop`."""
        self._refresher.start()

    async def stop(self) -> None:
        """Stop refreshing and take this server's counts out of the fleet's at once."""
        await self._refresher.stop()
        async with self._lock:
            await self._write(dict.fromkeys(self._held.keys() | self._unsettled, 0), 0, "leaving")

    async def refresh(self) -> None:
        """Push this server's deadline back and write its counts (what the task does)."""
        async with self._lock:
            counts = {**dict.fromkeys(self._unsettled, 0), **self._held}
            if await self._write(counts, self._live_ms, "refreshing"):
                self._unsettled.clear()

    async def _write(self, counts: dict[str, int], live_ms: int, doing: str) -> bool:
        """Write ``counts`` (this server's, per client) and a deadline ``live_ms`` away,
        waiting for Redis no longer than a refresh interval. False if it may not have."""
        try:
            async with asyncio.timeout(self._interval):
                await self._write_script(
                    keys=[self._servers, *(client_count_key(self._kind, c) for c in counts)],
                    args=[self._server_id, live_ms, self._expiry_ms, *counts.values()],
                )
        except UNREACHABLE as error:
            logger.warning("%s %s counts failed: %r", doing, self._kind, error)
            return False
        return True
