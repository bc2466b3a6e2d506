"""Session leases in Redis: which server of the fleet owns a session, and until when.

A lease is one key per session (:func:`chat.cluster.keys.lease_key`) holding
``"<server id> <fencing token>"`` with an expiry its owner renews while it lives. The
token comes from an ``INCR`` of the session's fencing counter, which never expires, so
every new owner gets a higher one than any before it, whichever server it is and however
often servers restart. Every change is a Lua script that compares the whole value first:
nobody acts on a lease it checked a moment earlier but no longer holds.

What a server believes it holds is local: a lease counts as held until its expiry,
counted on this server's monotonic clock from the moment it sent the last successful
acquire or renewal (Redis counts from when it received it, a little later, so this
server gives up no later than Redis lets the key go). A paused or partitioned owner
thus stops believing in its lease by itself, and what it still writes is refused by
the fencing token.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from chat.cluster.connection import UNREACHABLE
from chat.cluster.keys import fence_key, lease_key, lease_value
from chat.cluster.periodic import Periodic
from chat.session.ownership import Lease, LossCallback

logger = logging.getLogger("dashboard_ai.chat")

# KEYS: lease, fence. ARGV: server id, the value this server holds ("" if none), lease ms.
# The token of the lease, or nil when another's. A new value is built here as
# keys.lease_value builds it: its token exists only in Redis.
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current then
    if current == ARGV[2] then
        redis.call('PEXPIRE', KEYS[1], ARGV[3])
        return tonumber(string.match(current, '%d+$'))
    end
    return false
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', ARGV[3])
return token
"""

# KEYS: lease. ARGV: the value this server holds, lease ms. 1 if renewed, 0 if not ours.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS: lease. ARGV: the value this server holds. 1 if deleted, 0 if not ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass
class _Held:
    """A lease of this server and the monotonic time its belief in it ends."""

    lease: Lease
    expires: float


def _value(lease: Lease) -> str:
    return lease_value(lease.server_id, lease.token)


def _holder(value: bytes | str | None) -> str | None:
    """The server id of a lease key's value (``None``: nobody holds the session)."""
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else str(value)
    return text.split(" ", 1)[0]


def lease_holders(redis: SyncRedis, session_ids: Sequence[str]) -> dict[str, str]:
    """Which server holds each session's lease, in one round trip (sessions nobody
    holds are left out); for synchronous readers such as the admin's pages."""
    pipeline = redis.pipeline(transaction=False)  # keys of many slots: no MULTI
    for session_id in session_ids:
        pipeline.get(lease_key(session_id))
    held = zip(session_ids, (_holder(value) for value in pipeline.execute()), strict=True)
    return {session_id: server for session_id, server in held if server is not None}


class RedisOwnership:
    """The leases of this server in a Redis shared by the fleet (an :class:`Ownership`).

    :meth:`acquire` and :meth:`owner` raise what Redis raises when it cannot be reached:
    the caller cannot go on without an answer. :meth:`release` and :meth:`close` only
    log it: the lease is dropped here either way, and Redis lets it go at its expiry.
    """

    def __init__(self, redis: Redis, *, server_id: str, lease_seconds: float) -> None:
        self._redis = redis
        self._server_id = server_id
        self._lease_seconds = lease_seconds
        self._lease_ms = max(1, round(lease_seconds * 1000))
        self._interval = lease_seconds / 3
        self._acquire_script = redis.register_script(_ACQUIRE)
        self._renew_script = redis.register_script(_RENEW)
        self._release_script = redis.register_script(_RELEASE)
        self._held: dict[str, _Held] = {}
        # One acquire or release of a session at a time here, or two acquires of the same
        # free session would see each other's new lease as another server's.
        self._busy: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._callbacks: list[LossCallback] = []
        self._renewal = Periodic(self.renew, self._interval, "lease-renewal")

    @property
    def server_id(self) -> str:
        return self._server_id

    async def acquire(self, session_id: str) -> Lease | None:
        """The lease this server holds (its expiry pushed back), or a new one with a
        higher token when nobody holds the session; ``None`` when another server does.

        A lease this server held but finds gone or taken is lost (the callbacks hear of
        it) even if a new one is acquired in its place.
        """
        async with self._lock(session_id):
            held = self._held.get(session_id)
            sent = time.monotonic()
            token = await self._acquire_script(
                keys=[lease_key(session_id), fence_key(session_id)],
                args=[self._server_id, _value(held.lease) if held else "", self._lease_ms],
            )
            if held is not None and token == held.lease.token:
                held.expires = sent + self._lease_seconds
                return held.lease
            if held is not None:
                self._lose(held)
            if token is None:
                return None
            lease = Lease(session_id, self._server_id, int(token))
            self._held[session_id] = _Held(lease, sent + self._lease_seconds)
            return lease

    async def owner(self, session_id: str) -> str | None:
        return _holder(await self._redis.get(lease_key(session_id)))

    async def release(self, lease: Lease) -> None:
        """Give the lease up; the key is deleted only if it still holds this very lease."""
        async with self._lock(lease.session_id):
            held = self._held.get(lease.session_id)
            if held is not None and held.lease == lease:
                del self._held[lease.session_id]
            await self._release_all([lease])

    def holds(self, lease: Lease) -> bool:
        held = self._held.get(lease.session_id)
        return held is not None and held.lease == lease and time.monotonic() < held.expires

    def on_lost(self, callback: LossCallback) -> None:
        """Call ``callback`` (from the renewal task, or an :meth:`acquire`) with each lease
        found taken, gone, or expired here unrenewed; what it raises is logged."""
        self._callbacks.append(callback)

    async def start(self) -> None:
        """Renew every held lease each third of its length, until :meth:`close`."""
        self._renewal.start()

    async def close(self) -> None:
        """Stop renewing, and release every lease in one round trip (a graceful leave)."""
        await self._renewal.stop()
        held, self._held = list(self._held.values()), {}
        await self._release_all([one.lease for one in held])

    @property
    def owned(self) -> int:
        now = time.monotonic()
        return sum(now < held.expires for held in self._held.values())

    def _lock(self, session_id: str) -> asyncio.Lock:
        lock = self._busy.get(session_id)
        if lock is None:
            lock = self._busy[session_id] = asyncio.Lock()
        return lock

    async def renew(self) -> None:
        """Push back the expiry of every held lease (what the renewal task does each
        interval); drop each that is not this server's any more, or whose expiry passed.

        A Redis that does not answer within the interval counts as unreachable, so a
        stalled one cannot hold the loss of a lease back past its expiry.
        """
        held = list(self._held.values())
        if not held:
            return
        sent = time.monotonic()
        results: list[Any]
        try:
            async with asyncio.timeout(self._interval):
                results = await self._run_each(
                    self._renew_script, [one.lease for one in held], self._lease_ms
                )
        except UNREACHABLE as error:
            logger.warning("renewing %d session leases failed: %r", len(held), error)
            results = [error] * len(held)
        for one, result in zip(held, results, strict=True):
            if self._held.get(one.lease.session_id) is not one:
                continue  # released or replaced meanwhile
            if result == 1:
                one.expires = sent + self._lease_seconds
            elif result == 0 or time.monotonic() >= one.expires:
                self._lose(one)

    async def _release_all(self, leases: list[Lease]) -> None:
        """Release the leases, waiting for Redis no longer than they would last anyway."""
        if not leases:
            return
        try:
            async with asyncio.timeout(self._lease_seconds):
                await self._run_each(self._release_script, leases)
        except UNREACHABLE as error:
            logger.warning("releasing %d session leases failed: %r", len(leases), error)

    async def _run_each(self, script: AsyncScript, leases: list[Lease], *args: int) -> list[Any]:
        """``script`` on each lease's key and value (then ``args``) in one round trip:
        what it returned, or the error it raised, per lease."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for lease in leases:
                await script(
                    keys=[lease_key(lease.session_id)], args=[_value(lease), *args], client=pipe
                )
            return list(await pipe.execute(raise_on_error=False))

    def _lose(self, held: _Held) -> None:
        del self._held[held.lease.session_id]
        logger.warning(
            "lease on session %s lost (token %d)", held.lease.session_id, held.lease.token
        )
        for callback in self._callbacks:
            try:
                callback(held.lease)
            except Exception:
                logger.exception("a lease-loss callback failed")
