"""Per-client counts across a fleet: one limit for every server, and no count outlives its server.

Two :class:`RedisClientCounter` objects on one redis-server are two servers. A killed
server is one whose refresh never runs again (never started) and that never stops.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from chat.cluster.connection import connect
from chat.cluster.counters import RedisClientCounter
from chat.cluster.keys import client_count_key
from tests.support.redis import RedisServer

pytestmark = pytest.mark.timeout(60)

LEASE = 0.6
KEY = client_count_key("sockets", "10.0.0.1")


class Servers:
    """Makes the counters of servers on one Redis, and closes their clients at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.clients: list[Redis] = []
        self.counters: list[RedisClientCounter] = []

    def __call__(self, server_id: str, kind: str = "sockets") -> RedisClientCounter:
        client = connect(self.url)
        self.clients.append(client)
        counter = RedisClientCounter(client, kind=kind, server_id=server_id, lease_seconds=LEASE)
        self.counters.append(counter)
        return counter

    async def close(self) -> None:
        for counter in self.counters:
            await counter.stop()
        for client in self.clients:
            await client.aclose()


@pytest.fixture
async def servers(redis_server: RedisServer) -> AsyncIterator[Servers]:
    servers = Servers(redis_server.url)
    yield servers
    await servers.close()


async def opens(counter: RedisClientCounter, count: int, client: str = "10.0.0.1", limit: int = 2):
    return [await counter.open(client, limit) for _ in range(count)]


async def unreachable(*args, **kwargs):
    """What a Redis client's ``evalsha`` does while Redis cannot be reached."""
    raise RedisConnectionError("Redis unreachable")


async def test_a_limit_counts_what_the_client_holds_on_every_server(servers: Servers) -> None:
    a, b = servers("a"), servers("b")

    assert await opens(a, 1) == [True]
    assert await opens(b, 2) == [True, False]
    assert await opens(a, 1) == [False]


async def test_a_close_on_one_server_frees_a_place_on_another(servers: Servers) -> None:
    a, b = servers("a"), servers("b")
    await opens(a, 2)
    await a.close("10.0.0.1")

    assert await opens(b, 2) == [True, False]


async def test_holders_are_the_other_live_servers_that_count_something_of_the_client(
    servers: Servers,
) -> None:
    a, b, c, d = servers("a"), servers("b"), servers("c"), servers("d")
    await opens(a, 1)
    await opens(b, 1)
    await opens(c, 1, client="10.0.0.2")
    await opens(d, 1)
    await d.close("10.0.0.1")  # nothing of the client left on d

    assert sorted(await a.holders("10.0.0.1")) == ["b"]
    assert sorted(await c.holders("10.0.0.1")) == ["a", "b"]
    await b.stop()  # b leaves
    assert await a.holders("10.0.0.1") == []


async def test_clients_and_kinds_are_counted_apart(servers: Servers) -> None:
    sockets, sessions = servers("a"), servers("a", kind="sessions")
    await opens(sockets, 2)

    assert await opens(sockets, 1, client="10.0.0.2") == [True]
    assert await opens(sessions, 2) == [True, True]


async def test_concurrent_opens_from_several_servers_never_pass_the_limit(
    servers: Servers,
) -> None:
    fleet = [servers(f"s{n}") for n in range(4)]

    results = await asyncio.gather(
        *(counter.open("10.0.0.1", 7) for counter in fleet for _ in range(10))
    )

    assert results.count(True) == 7


async def test_a_killed_servers_counts_go_once_its_liveness_expires(servers: Servers) -> None:
    killed, b = servers("killed"), servers("b")
    await opens(killed, 2)  # and then nothing: no refresh, no stop
    refused = await opens(b, 1)
    await asyncio.sleep(LEASE + 0.2)

    assert refused == [False]
    assert await opens(b, 3) == [True, True, False]


async def test_a_live_servers_counts_stay_while_it_refreshes(servers: Servers) -> None:
    a, b = servers("a"), servers("b")
    await a.start()
    await opens(a, 2)
    await asyncio.sleep(3 * LEASE)

    assert await opens(b, 1) == [False]


async def test_a_server_that_stops_takes_its_counts_with_it_at_once(servers: Servers) -> None:
    a, b = servers("a"), servers("b")
    await opens(a, 2)
    await a.stop()

    assert await opens(b, 3) == [True, True, False]


async def test_counts_a_redis_lost_are_written_again_by_the_next_refresh(
    servers: Servers, redis_server: RedisServer
) -> None:
    a, b = servers("a"), servers("b")
    await opens(a, 2)
    redis = servers.clients[0]
    await redis.flushall()
    lost = await opens(b, 1)
    await b.close("10.0.0.1")
    await a.refresh()

    assert lost == [True]  # nothing counted a's sockets meanwhile
    assert await opens(b, 1) == [False]


async def test_a_client_with_nothing_left_leaves_no_key(servers: Servers) -> None:
    a = servers("a")
    await opens(a, 2)
    for _ in range(2):
        await a.close("10.0.0.1")

    assert await servers.clients[0].exists(KEY) == 0


async def test_a_close_of_nothing_counted_changes_nothing(servers: Servers) -> None:
    a, b = servers("a"), servers("b")
    await opens(b, 1)
    await a.close("10.0.0.1")

    assert await opens(b, 2) == [True, False]


async def test_a_close_whose_write_failed_is_written_by_the_next_refresh(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = servers("a"), servers("b")
    await opens(a, 1)
    await opens(b, 1)
    redis = servers.clients[0]
    with monkeypatch.context() as patch:
        patch.setattr(redis, "evalsha", unreachable)
        await a.close("10.0.0.1")  # the client's last on a, and Redis still counts it
    await a.refresh()

    assert await redis.hgetall(KEY) == {b"b": b"1"}
    assert await opens(b, 2) == [True, False]


async def test_a_refresh_that_failed_leaves_what_it_should_have_written_to_the_next(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = servers("a"), servers("b")
    await opens(a, 1)
    await opens(b, 1)
    redis = servers.clients[0]
    with monkeypatch.context() as patch:
        patch.setattr(redis, "evalsha", unreachable)
        await a.close("10.0.0.1")
        await a.refresh()
    await a.refresh()

    assert await redis.hgetall(KEY) == {b"b": b"1"}


async def test_an_open_whose_reply_was_lost_is_corrected_by_the_next_refresh(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = servers("a"), servers("b")
    redis = servers.clients[0]
    evalsha = redis.evalsha

    async def reply_lost(*args):
        await evalsha(*args)
        raise RedisConnectionError("Connection closed by server")

    with monkeypatch.context() as patch:
        patch.setattr(redis, "evalsha", reply_lost)
        with pytest.raises(RedisConnectionError):
            await a.open("10.0.0.1", 2)  # counted in Redis, not on a
    counted = await redis.hgetall(KEY)
    await a.refresh()

    assert counted == {b"a": b"1"}
    assert await opens(b, 3) == [True, True, False]
