"""Session events through Redis: what a socket waits, and how many events one stream takes.

Against a redis-server of its own on a free loopback port (tests/support/redis.py):

- **latency**: from just before ``publish`` to the socket's ``send``, one event at a time
  (the next is published once the last arrived), over ``--events`` events, for the
  in-memory :class:`chat.session.event_stream.EventStream`, and for
  :class:`chat.cluster.event_stream.RedisEventStream` with the socket on the owner's own
  instance and on another instance (another client: another server).
- **throughput**: ``--events`` events published back to back by the owner, until a
  socket on another instance has them all: events per second through one stream; and
  the owner's publishing alone (the reader and the publisher share this one process
  and its event loop, where two servers would not).

Prints p50 and p95 in milliseconds and events per second; asserts nothing. Run by hand::

    .venv/bin/python bench/redis_events.py [--events N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard_ai.settings")

import django  # noqa: E402

django.setup()

from bench.harness import p95  # noqa: E402
from chat.cluster import keys  # noqa: E402
from chat.cluster.connection import connect  # noqa: E402
from chat.cluster.event_stream import RedisEventStream  # noqa: E402
from chat.protocol import StreamFrame  # noqa: E402
from chat.session.event_stream import EventStream, SessionEvents  # noqa: E402
from chat.session.ownership import Lease  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402

TEXT = "a line of streamed text, about as long as one the model sends "


class Socket:
    """A socket's send that notes when each event arrived."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.wanted = 0
        self.reached = asyncio.Event()

    async def __call__(self, frame: dict[str, Any]) -> None:
        self.arrived[frame["seq"]] = time.perf_counter()
        if frame["seq"] >= self.wanted:
            self.reached.set()

    async def until(self, seq: int) -> None:
        self.wanted = seq
        if max(self.arrived, default=0) < seq:
            self.reached.clear()
            await self.reached.wait()


async def latencies(owner: SessionEvents, reader: SessionEvents, events: int) -> list[float]:
    """Milliseconds from publish to send, one event at a time."""
    socket = Socket()
    await reader.attach(socket, after=owner.seq)
    times = []
    for _ in range(events):
        event = owner.stamp(StreamFrame(text=TEXT), advance=True)
        start = time.perf_counter()
        await owner.publish(event)
        await socket.until(event["seq"])
        times.append((socket.arrived[event["seq"]] - start) * 1000)
    reader.detach(socket)
    return times


async def throughput(owner: SessionEvents, reader: SessionEvents, events: int) -> float:
    """Events per second published back to back until the socket has them all."""
    socket = Socket()
    await reader.attach(socket, after=owner.seq)
    start = time.perf_counter()
    for _ in range(events):
        await owner.publish(owner.stamp(StreamFrame(text=TEXT), advance=True))
    await socket.until(owner.seq)
    elapsed = time.perf_counter() - start
    reader.detach(socket)
    return events / elapsed


async def publish_rate(owner: SessionEvents, events: int) -> float:
    """Events per second the owner publishes back to back with no reader in this process."""
    start = time.perf_counter()
    for _ in range(events):
        await owner.publish(owner.stamp(StreamFrame(text=TEXT), advance=True))
    return events / (time.perf_counter() - start)


def report(name: str, times: list[float]) -> None:
    print(f"  {name:<34} p50 {statistics.median(times):7.3f} ms   p95 {p95(times):7.3f} ms")


async def main(events: int) -> None:
    memory = EventStream("bench-memory")
    print(f"latency, publish -> socket send, {events} events one at a time:")
    report("in-memory EventStream", await latencies(memory, memory, events))
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(log_path=Path(directory) / "redis.log")
        server.start()
        one, two = connect(server.url), connect(server.url)
        try:
            session = "bench-redis"
            lease = Lease(session, "bench-a", 1)
            await one.set(keys.lease_key(session), keys.lease_value(lease.server_id, lease.token))
            owner, other = RedisEventStream(session, one), RedisEventStream(session, two)
            await owner.own(lease, stored_seq=0)
            report("Redis, socket on the owner", await latencies(owner, owner, events))
            report("Redis, socket on another server", await latencies(owner, other, events))
            print(f"throughput, {events} events back to back:")
            for name, (publisher, reader) in {
                "in-memory EventStream": (memory, memory),
                "Redis, to another server": (owner, other),
            }.items():
                rate = await throughput(publisher, reader, events)
                print(f"  {name:<34} {rate:9.0f} events/s")
            rate = await publish_rate(owner, events)
            print(f"  {'Redis, publish alone (no reader)':<34} {rate:9.0f} events/s")
            await owner.close()
            await other.close()
        finally:
            await one.aclose()
            await two.aclose()
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    asyncio.run(main(parser.parse_args().events))
