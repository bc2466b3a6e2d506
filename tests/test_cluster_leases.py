"""Session leases: one owner at a time, fencing tokens that only grow, renewal, loss.

Two :class:`RedisOwnership` objects on one redis-server are two servers of a fleet. A
paused owner is one whose renewal does not run (never started, or called by hand).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from chat.cluster.connection import connect
from chat.cluster.keys import lease_key, lease_value
from chat.cluster.leases import RedisOwnership
from chat.session.ownership import Lease, LocalOwnership
from tests.support.live import free_port
from tests.support.redis import RedisServer

pytestmark = pytest.mark.timeout(60)

LEASE = 1.0


class Servers:
    """Makes the ownerships of servers on one Redis, and closes them all at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.clients: list[Redis] = []
        self.ownerships: list[RedisOwnership] = []
        self.lost: dict[str, list[Lease]] = {}

    def __call__(self, server_id: str, lease_seconds: float = LEASE) -> RedisOwnership:
        client = connect(self.url)
        ownership = RedisOwnership(client, server_id=server_id, lease_seconds=lease_seconds)
        lost = self.lost.setdefault(server_id, [])
        ownership.on_lost(lost.append)
        self.clients.append(client)
        self.ownerships.append(ownership)
        return ownership

    async def close(self) -> None:
        for ownership in self.ownerships:
            await ownership.close()
        for client in self.clients:
            await client.aclose()


@pytest.fixture
async def servers(redis_server: RedisServer) -> AsyncIterator[Servers]:
    servers = Servers(redis_server.url)
    yield servers
    await servers.close()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A plain client of the test's Redis, to look at the keys."""
    client = connect(redis_server.url)
    yield client
    await client.aclose()


async def eventually(found: Callable[[], bool], timeout: float = LEASE * 3) -> None:
    async with asyncio.timeout(timeout):
        while not found():
            await asyncio.sleep(0.02)


async def acquired_eventually(
    acquire: Callable[[], Awaitable[Lease | None]], timeout: float = LEASE * 3
) -> Lease:
    """Try to acquire until it succeeds (the other owner's lease expires)."""
    async with asyncio.timeout(timeout):
        while (lease := await acquire()) is None:
            await asyncio.sleep(0.02)
    return lease


async def test_only_one_server_owns_a_session(servers: Servers, session_id: str) -> None:
    a, b = servers("a"), servers("b")

    lease = await a.acquire(session_id)

    assert lease == Lease(session_id, "a", 1)
    assert await b.acquire(session_id) is None
    assert await a.owner(session_id) == "a" and await b.owner(session_id) == "a"
    assert a.holds(lease) and not b.holds(lease)
    assert (a.owned, b.owned) == (1, 0)


async def test_a_session_nobody_holds_has_no_owner(servers: Servers, session_id: str) -> None:
    assert await servers("a").owner(session_id) is None


async def test_the_holder_acquiring_again_gets_the_same_lease(
    servers: Servers, session_id: str
) -> None:
    a = servers("a")
    first = await a.acquire(session_id)

    again = await a.acquire(session_id)

    assert first is not None and again == first and a.owned == 1
    await a.release(first)
    assert await a.acquire(session_id) == Lease(session_id, "a", first.token + 1)


async def test_acquires_of_a_free_session_at_once_get_one_lease(
    servers: Servers, session_id: str
) -> None:
    a = servers("a")

    leases = await asyncio.gather(*(a.acquire(session_id) for _ in range(3)))

    assert leases == [Lease(session_id, "a", 1)] * 3


async def test_tokens_grow_with_every_new_owner(servers: Servers, session_id: str) -> None:
    a, b = servers("a"), servers("b")
    first = await a.acquire(session_id)
    assert first is not None
    await a.release(first)

    second = await b.acquire(session_id)
    assert second is not None and second.server_id == "b"
    third = await acquired_eventually(lambda: a.acquire(session_id))  # after b's expiry

    assert first.token < second.token < third.token
    assert third.server_id == "a"
    assert not b.holds(second)


async def test_a_restarted_server_does_not_adopt_the_lease_of_its_previous_life(
    servers: Servers, session_id: str
) -> None:
    before = await servers("a").acquire(session_id)
    assert before is not None

    restarted = servers("a")

    assert await restarted.acquire(session_id) is None
    after = await acquired_eventually(lambda: restarted.acquire(session_id))
    assert after.token > before.token


async def test_an_expired_lease_is_taken_over_and_the_paused_owner_learns_it_lost(
    servers: Servers, redis: Redis, session_id: str
) -> None:
    a, b = servers("a"), servers("b")
    old = await a.acquire(session_id)
    assert old is not None

    new = await acquired_eventually(lambda: b.acquire(session_id))
    assert not a.holds(old)
    await a.renew()

    assert new.token > old.token
    assert servers.lost["a"] == [old] and a.owned == 0
    assert await redis.get(lease_key(session_id)) == lease_value("b", new.token).encode()
    assert b.holds(new)


async def test_a_renewal_that_finds_the_lease_taken_reports_it_lost_before_its_expiry(
    servers: Servers, redis: Redis, session_id: str
) -> None:
    a, b = servers("a", lease_seconds=3.0), servers("b", lease_seconds=30.0)
    await a.start()
    old = await a.acquire(session_id)
    assert old is not None
    acquired = time.monotonic()
    await redis.delete(lease_key(session_id))  # as if it had expired early
    assert await b.acquire(session_id) is not None

    await eventually(lambda: servers.lost["a"] == [old], timeout=2.0)

    assert time.monotonic() < acquired + 3.0
    assert not a.holds(old)
    assert await b.owner(session_id) == "b"


async def test_releasing_a_lease_taken_over_leaves_the_new_owners_key(
    servers: Servers, redis: Redis, session_id: str
) -> None:
    a, b = servers("a"), servers("b")
    old = await a.acquire(session_id)
    assert old is not None
    new = await acquired_eventually(lambda: b.acquire(session_id))

    await a.release(old)

    assert await redis.get(lease_key(session_id)) == lease_value("b", new.token).encode()
    assert await a.acquire(session_id) is None


async def test_close_releases_every_lease_so_another_server_acquires_at_once(
    servers: Servers, session_id: str
) -> None:
    a, b = servers("a", lease_seconds=30.0), servers("b")
    await a.start()
    sessions = [f"{session_id}-{n}" for n in range(3)]
    leases = [await a.acquire(one) for one in sessions]
    assert all(leases) and a.owned == 3

    await a.close()

    assert a.owned == 0
    assert all([await b.acquire(one) for one in sessions])
    assert servers.lost["a"] == []


async def test_renewal_keeps_a_lease_past_several_lease_periods(
    servers: Servers, session_id: str
) -> None:
    a, b = servers("a"), servers("b")
    await a.start()
    lease = await a.acquire(session_id)
    assert lease is not None

    await asyncio.sleep(LEASE * 3.5)

    assert a.holds(lease) and a.owned == 1
    assert await b.acquire(session_id) is None
    assert servers.lost["a"] == []


async def test_a_failing_loss_callback_is_logged_and_the_others_still_hear(
    servers: Servers, redis: Redis, session_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    a = servers("a")
    heard: list[Lease] = []

    def fail(lease: Lease) -> None:
        raise RuntimeError("callback broke")

    a.on_lost(fail)
    a.on_lost(heard.append)
    lease = await a.acquire(session_id)
    await redis.delete(lease_key(session_id))

    with caplog.at_level(logging.WARNING, logger="dashboard_ai.chat"):
        await a.renew()

    assert heard == [lease] and servers.lost["a"] == [lease]
    assert "a lease-loss callback failed" in caplog.text


async def test_a_lease_counts_as_lost_after_its_expiry_once_redis_is_gone(
    servers: Servers, redis_server: RedisServer, session_id: str
) -> None:
    a = servers("a")
    await a.start()
    lease = await a.acquire(session_id)
    assert lease is not None
    acquired = time.monotonic()

    redis_server.stop()
    await asyncio.sleep(LEASE / 2)
    assert a.holds(lease) and servers.lost["a"] == []
    await eventually(lambda: servers.lost["a"] == [lease])

    assert time.monotonic() >= acquired + LEASE
    assert not a.holds(lease) and a.owned == 0


async def test_a_lease_counts_as_lost_after_its_expiry_when_redis_stops_answering(
    servers: Servers, redis_server: RedisServer, session_id: str
) -> None:
    """A stalled Redis (here stopped with SIGSTOP) holds a renewal until the 15 s socket
    timeout; the loss must not wait for it."""
    a = servers("a")
    await a.start()
    lease = await a.acquire(session_id)
    assert lease is not None and redis_server.process is not None
    acquired = time.monotonic()

    os.kill(redis_server.process.pid, signal.SIGSTOP)
    try:
        await eventually(lambda: servers.lost["a"] == [lease])
    finally:
        os.kill(redis_server.process.pid, signal.SIGCONT)

    assert time.monotonic() >= acquired + LEASE
    assert not a.holds(lease)


async def test_a_lease_on_a_redis_never_reached_is_not_acquired() -> None:
    client = connect(f"redis://127.0.0.1:{free_port()}/0")
    ownership = RedisOwnership(client, server_id="a", lease_seconds=LEASE)
    try:
        with pytest.raises(RedisConnectionError):
            await ownership.acquire("s1")
        assert ownership.owned == 0
    finally:
        await ownership.close()
        await client.aclose()


async def test_local_ownership_holds_every_session_it_opens() -> None:
    local = LocalOwnership("solo")

    first = await local.acquire("s1")
    again = await local.acquire("s1")

    assert first == again == Lease("s1", "solo", 1)
    assert await local.owner("s1") == "solo" and await local.owner("s2") is None
    assert local.holds(first) and local.owned == 1

    await local.release(first)
    assert not local.holds(first) and await local.owner("s1") is None
    assert await local.acquire("s1") == Lease("s1", "solo", 2)
    await local.close()
    assert local.owned == 0
