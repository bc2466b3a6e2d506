"""RedisEventStream on a real redis-server: two instances on two clients are two servers.

The owner numbers and publishes; every instance's sockets get the events through the
instance's one reader, each event once and in order, also while attaching as events
are published, and the stream's caps, fencing and loss behave as replay needs.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from chat.cluster import keys
from chat.cluster.connection import connect
from chat.cluster.event_stream import STREAM_TTL_SECONDS, RedisEventStream
from chat.protocol import StreamFrame
from chat.session.ownership import Lease, LeaseLost
from tests.support.redis import RedisServer

pytestmark = pytest.mark.timeout(60)

SESSION = "s1"


@pytest.fixture(autouse=True)
def _caps(settings) -> None:
    settings.REPLAY_BUFFER_EVENTS = 1000
    settings.REPLAY_BUFFER_BYTES = 1_000_000


class Socket:
    """A socket's send: what it got, optionally slow, held at a gate or broken."""

    def __init__(self, *, delay: float = 0.0, broken: bool = False) -> None:
        self.frames: list[dict] = []
        self.delay = delay
        self.broken = broken
        self.gate: asyncio.Event | None = None

    async def __call__(self, frame: dict) -> None:
        if self.broken:
            raise ConnectionError("gone")
        if self.gate is not None:
            await self.gate.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        self.frames.append(frame)

    @property
    def seqs(self) -> list[int]:
        return [frame["seq"] for frame in self.frames]


async def until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait for ``condition`` (a plain or an async one); fail at the deadline."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (await met if inspect.isawaitable(met := condition()) else met):
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def publish(stream: RedisEventStream, text: str = "x") -> dict:
    event = stream.stamp(StreamFrame(text=text), advance=True)
    await stream.publish(event)
    return event


async def grant(redis: Redis, server_id: str = "server-a", token: int = 1) -> Lease:
    """Put a lease into Redis as an acquire would, and return it."""
    await redis.set(keys.lease_key(SESSION), keys.lease_value(server_id, token))
    return Lease(SESSION, server_id, token)


@pytest.fixture
async def clients(redis_server: RedisServer) -> AsyncIterator[tuple[Redis, Redis]]:
    """Two clients of the same redis-server: what two servers have."""
    one, two = connect(redis_server.url), connect(redis_server.url)
    yield one, two
    await one.aclose()
    await two.aclose()


@pytest.fixture
async def streams() -> AsyncIterator[Callable[[Redis], RedisEventStream]]:
    """Make RedisEventStreams of the session; each is closed after the test."""
    made: list[RedisEventStream] = []

    def make(redis: Redis) -> RedisEventStream:
        made.append(RedisEventStream(SESSION, redis))
        return made[-1]

    yield make
    for stream in made:
        await stream.close()


@pytest.fixture
async def owner(clients, streams) -> RedisEventStream:
    """The owner's stream, on the first client, owning the session."""
    stream = streams(clients[0])
    await stream.own(await grant(clients[0]), stored_seq=0)
    return stream


@pytest.fixture
def other(clients, streams) -> RedisEventStream:
    """Another server's stream of the session, on the second client."""
    return streams(clients[1])


async def readers(redis: Redis) -> int:
    """How many connections are blocked in XREAD."""
    return sum(
        client["cmd"] == "xread" and "b" in client["flags"] for client in await redis.client_list()
    )


async def not_reading(redis: Redis) -> bool:
    return await readers(redis) == 0


async def no_read_follows(owner: RedisEventStream, redis: Redis) -> bool:
    """Whether publishing an event leaves the XREADs Redis has served as they were (a
    reader still running would be woken by it and read again)."""
    before = await xreads_served(redis)
    await publish(owner)
    await asyncio.sleep(0.2)
    return await xreads_served(redis) == before


async def xreads_served(redis: Redis) -> int:
    return (await redis.info("commandstats")).get("cmdstat_xread", {}).get("calls", 0)


async def answers(redis: Redis) -> bool:
    try:
        return bool(await redis.ping())
    except RedisConnectionError:
        return False


async def test_sockets_on_two_servers_get_the_same_events(owner, other) -> None:
    here, there = Socket(), Socket()
    await owner.attach(here, after=0)
    await other.attach(there, after=0)

    published = [await publish(owner, f"event {n}") for n in range(50)]

    await until(lambda: len(here.frames) == len(there.frames) == 50)
    assert here.frames == there.frames == published
    assert here.seqs == list(range(1, 51))
    assert other.seq == owner.seq == 50


async def test_attach_after_k_sends_the_rest_then_live_events(owner, other) -> None:
    for _ in range(10):
        await publish(owner)
    socket = Socket()

    await other.attach(socket, after=4)
    assert socket.seqs == list(range(5, 11))  # the catch-up is done when attach returns
    for _ in range(5):
        await publish(owner)

    await until(lambda: len(socket.frames) >= 11)
    await asyncio.sleep(0.05)
    assert socket.seqs == list(range(5, 16))


async def test_attaching_while_events_are_published_misses_and_repeats_nothing(
    owner, other, clients, streams
) -> None:
    watcher = Socket()
    await other.attach(watcher, after=0)  # the other server's reader is running
    fresh = streams(clients[1])  # a third server: its reader starts mid-stream
    total = 400
    for _ in range(20):
        await publish(owner)

    async def publish_the_rest() -> None:
        for _ in range(total - 20):
            await publish(owner)
            await asyncio.sleep(0)

    async def attach_soon(stream: RedisEventStream, socket: Socket, after: int, wait: float):
        await asyncio.sleep(wait)
        await stream.attach(socket, after=after)

    attaching = [
        (stream, Socket(delay=0.001), after, wait)
        for stream in (owner, other, fresh)
        for after, wait in ((0, 0.0), (7, 0.01), (15, 0.03), (20, 0.05))
    ]
    await asyncio.gather(
        publish_the_rest(),
        *(attach_soon(stream, socket, after, wait) for stream, socket, after, wait in attaching),
    )

    await until(
        lambda: all(len(socket.frames) == total - after for _, socket, after, _ in attaching)
    )
    await asyncio.sleep(0.05)
    for _, socket, after, _ in attaching:
        assert socket.seqs == list(range(after + 1, total + 1))
    assert watcher.seqs == list(range(1, total + 1))


async def test_attach_ahead_of_a_lagging_reader_gets_each_event_once(owner, other) -> None:
    held = Socket()
    held.gate = asyncio.Event()
    await other.attach(held, after=0)
    for _ in range(10):
        await publish(owner)  # the other server's reader is stuck sending seq 1 to `held`
    await until(lambda: other.seq == 1)

    ahead = Socket()
    await other.attach(ahead, after=6)
    assert ahead.seqs == [7, 8, 9, 10]
    await publish(owner)
    held.gate.set()

    await until(lambda: len(held.frames) == 11 and len(ahead.frames) == 5)
    await asyncio.sleep(0.05)
    assert ahead.seqs == [7, 8, 9, 10, 11]
    assert held.seqs == list(range(1, 12))


async def test_a_socket_claiming_events_not_sent_yet_costs_others_nothing(owner, other) -> None:
    for _ in range(5):
        await publish(owner)
    ahead, behind = Socket(), Socket()

    await other.attach(ahead, after=9)  # starts the other server's reader
    await other.attach(behind, after=5)
    for _ in range(5):
        await publish(owner)

    await until(lambda: len(behind.frames) == 5)
    await asyncio.sleep(0.05)
    assert behind.seqs == [6, 7, 8, 9, 10]
    assert ahead.seqs == [10]


@pytest.mark.parametrize(
    "in_redis",
    [("server-a", 2), ("server-b", 1), None],
    ids=["newer-token", "other-server", "no-lease"],
)
async def test_a_lease_that_is_not_the_sessions_is_refused_and_writes_nothing(
    clients, streams, in_redis
) -> None:
    redis = clients[0]
    if in_redis is not None:
        await grant(redis, *in_redis)
    stale = streams(redis)
    await stale.own(Lease(SESSION, "server-a", 1), stored_seq=0)

    with pytest.raises(LeaseLost):
        await publish(stale)
    assert await redis.exists(keys.stream_key(SESSION)) == 0


async def test_publish_before_own_is_refused(clients, streams) -> None:
    await grant(clients[0])

    with pytest.raises(LeaseLost):
        await publish(streams(clients[0]))
    assert await clients[0].exists(keys.stream_key(SESSION)) == 0


async def test_an_event_not_after_the_streams_last_is_refused(owner, clients, streams) -> None:
    behind = streams(clients[1])
    await behind.own(await grant(clients[1]), stored_seq=0)  # numbers from 1 too
    for _ in range(3):
        await publish(owner, "the owner's")

    with pytest.raises(LeaseLost):
        await publish(behind, "a late writer's")
    assert [frame["text"] for frame in await owner.replay(0)] == ["the owner's"] * 3


async def test_own_numbers_after_the_streams_last_event(owner, clients, streams) -> None:
    for _ in range(5):
        await publish(owner)
    successor = streams(clients[1])

    await successor.own(await grant(clients[1], token=2), stored_seq=2)

    assert (await publish(successor))["seq"] == 6
    assert [event["seq"] for event in await successor.replay(0)] == [1, 2, 3, 4, 5, 6]


async def test_own_numbers_after_the_stored_seq(owner, clients, streams) -> None:
    for _ in range(5):
        await publish(owner)
    successor = streams(clients[1])

    await successor.own(await grant(clients[1], token=2), stored_seq=9)

    assert (await publish(successor))["seq"] == 10
    assert await successor.replay(5) is None  # 6 to 9 are not in the stream
    assert [event["seq"] for event in await successor.replay(9)] == [10]


async def test_replay_of_a_trimmed_seq_is_none(owner, settings) -> None:
    settings.REPLAY_BUFFER_EVENTS = 5
    for _ in range(12):
        await publish(owner)

    assert await owner._redis.xlen(keys.stream_key(SESSION)) == 5
    assert [event["seq"] for event in await owner.replay(7)] == [8, 9, 10, 11, 12]
    assert await owner.replay(6) is None
    assert await owner.replay(12) == []
    assert await owner.replay(13) is None  # beyond the newest event


async def test_the_stream_keeps_about_the_byte_cap(owner, settings, clients) -> None:
    settings.REPLAY_BUFFER_BYTES = 1024
    events = [await publish(owner, "y" * 200) for _ in range(20)]
    size = len((await clients[0].xrange(keys.stream_key(SESSION)))[0][1][b"frame"])

    held = await owner.replay(20 - 1024 // size)

    assert held == events[-(1024 // size) :]
    assert await owner.replay(20 - 1024 // size - 1) is None
    big = await publish(owner, "z" * 2000)  # one event over the cap is still kept
    assert await owner.replay(20) == [big]


async def test_each_write_renews_the_streams_expiry(owner, clients) -> None:
    key = keys.stream_key(SESSION)
    await publish(owner)
    assert (
        STREAM_TTL_SECONDS * 1000 - 5000 < await clients[0].pttl(key) <= STREAM_TTL_SECONDS * 1000
    )
    await clients[0].pexpire(key, 10_000)

    await publish(owner)

    assert await clients[0].pttl(key) > STREAM_TTL_SECONDS * 1000 - 5000


async def test_a_lost_stream_replays_nothing_old_and_publishing_goes_on(
    owner, other, clients
) -> None:
    socket = Socket()
    await other.attach(socket, after=0)
    for _ in range(5):
        await publish(owner)
    await until(lambda: len(socket.frames) == 5)

    await clients[0].flushall()

    assert await other.replay(2) is None
    assert await owner.replay(2) is None
    late = Socket()  # its catch-up finds none of what the reader took: it waits for new events
    await asyncio.wait_for(other.attach(late, after=2), timeout=5)
    with pytest.raises(LeaseLost):  # the lease went with everything else
        await publish(owner)
    await owner.own(await grant(clients[0], token=2), stored_seq=3)
    assert (await publish(owner))["seq"] == 7  # seq 6 was refused, and stays taken
    await until(lambda: len(socket.frames) == 6)
    assert socket.seqs == [1, 2, 3, 4, 5, 7]
    await until(lambda: late.seqs == [7])
    assert await other.replay(5) is None
    assert [event["seq"] for event in await other.replay(6)] == [7]


async def test_a_socket_whose_send_fails_is_dropped(owner, other) -> None:
    broken, fine = Socket(broken=True), Socket()
    await other.attach(broken, after=0)
    await other.attach(fine, after=0)

    for _ in range(3):
        await publish(owner)

    await until(lambda: len(fine.frames) == 3)
    assert fine.seqs == [1, 2, 3]
    other.detach(fine)
    assert not other.attended  # the broken one went at its first failed send


async def test_the_reader_runs_only_while_sockets_are_attached(owner, other, clients) -> None:
    one, two = Socket(), Socket()
    await other.attach(one, after=0)
    await other.attach(two, after=0)
    await until(lambda: readers(clients[0]))
    assert await readers(clients[0]) == 1  # one reader for both sockets

    other.detach(one)
    other.detach(two)
    await publish(owner)  # wakes the reader, which finds nobody to read for

    await until(lambda: not_reading(clients[0]))
    assert await no_read_follows(owner, clients[0])
    assert not one.frames and not two.frames


async def test_close_stops_the_reader(owner, other, clients) -> None:
    socket = Socket()
    await other.attach(socket, after=0)
    await until(lambda: readers(clients[0]))

    await other.close()

    await until(lambda: not_reading(clients[0]))
    assert await no_read_follows(owner, clients[0])
    assert not other.attended and not socket.frames


async def test_the_reader_survives_a_redis_restart(
    owner, other, clients, redis_server: RedisServer, caplog
) -> None:
    socket = Socket()
    await other.attach(socket, after=0)
    for _ in range(3):
        await publish(owner)
    await until(lambda: len(socket.frames) == 3)

    with caplog.at_level(logging.INFO, logger="dashboard_ai.chat"):
        redis_server.stop()
        await until(lambda: "reading session events from Redis failed" in caplog.text)
        await asyncio.sleep(1.0)  # several failed attempts, one warning
        redis_server.start()
        await until(lambda: answers(clients[0]))  # its pooled connection died with the server
        await grant(clients[0])  # the restarted Redis holds nothing: the lease is acquired again
        await publish(owner)
        await until(lambda: len(socket.frames) == 4)

    assert socket.seqs == [1, 2, 3, 4]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "reading session events from Redis failed; retrying"
    ]
    assert "reading session events from Redis works again" in caplog.text
