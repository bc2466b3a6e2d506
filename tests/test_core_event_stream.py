"""The event stream: seq numbering, fan-out, and attaching with nothing missed or repeated."""

from __future__ import annotations

import asyncio

import pytest

from chat.protocol import StreamFrame
from chat.session.event_stream import EventStream
from chat.session.ownership import Lease

LEASE = Lease("s1", "this-server", 1)


@pytest.fixture(autouse=True)
def _small_log(settings) -> None:
    settings.REPLAY_BUFFER_EVENTS = 1000
    settings.REPLAY_BUFFER_BYTES = 1_000_000


class Socket:
    """A socket's send: what it got, optionally slow or broken."""

    def __init__(self, *, pause: bool = False, broken: bool = False) -> None:
        self.frames: list[dict] = []
        self.pause = pause
        self.broken = broken

    async def __call__(self, frame: dict) -> None:
        if self.broken:
            raise ConnectionError("gone")
        if self.pause:
            await asyncio.sleep(0)
        self.frames.append(frame)

    @property
    def seqs(self) -> list[int]:
        return [frame["seq"] for frame in self.frames]


async def publish(stream: EventStream, text: str = "x", **kwargs) -> dict:
    event = stream.stamp(StreamFrame(text=text), advance=True, **kwargs)
    await stream.publish(event)
    return event


def test_events_take_consecutive_seqs_and_replies_the_current_one() -> None:
    stream = EventStream("s1")

    first = stream.stamp(StreamFrame(text="a"), advance=True)
    second = stream.stamp(StreamFrame(text="b"), advance=True)
    reply = stream.stamp(StreamFrame(text="c"))

    assert (first["seq"], second["seq"], reply["seq"]) == (1, 2, 2)
    assert first["sessionId"] == "s1" and first["type"] == "stream" and first["text"] == "a"


def test_stamp_echoes_the_client_message_id() -> None:
    stream = EventStream("s1")

    assert (
        stream.stamp(StreamFrame(text="a"), advance=True, client_message_id="m1")["clientMessageId"]
        == "m1"
    )
    assert "clientMessageId" not in stream.stamp(StreamFrame(text="a"), advance=True)


def test_stamp_leaves_the_frame_unchanged() -> None:
    stream = EventStream("s1")
    frame = StreamFrame(text="a")
    before = frame.model_dump()
    stream.stamp(frame, advance=True, client_message_id="m1")

    assert frame.model_dump() == before


async def test_publish_keeps_the_event_and_sends_it_to_every_socket() -> None:
    stream = EventStream("s1")
    one, two = Socket(), Socket()
    stream.sockets |= {one, two}

    event = await publish(stream)

    assert one.frames == [event] and two.frames == [event]
    assert stream.log.since(0) == [event]


async def test_a_broken_socket_does_not_stop_the_others() -> None:
    stream = EventStream("s1")
    broken, fine = Socket(broken=True), Socket()
    stream.sockets |= {broken, fine}

    await publish(stream)

    assert fine.seqs == [1]


async def test_attach_replays_what_came_after_then_sends_live_events() -> None:
    stream = EventStream("s1")
    for _ in range(3):
        await publish(stream)
    socket = Socket()

    await stream.attach(socket, after=1)
    await publish(stream)

    assert socket.seqs == [2, 3, 4]
    assert socket in stream.sockets


async def test_events_published_during_a_replay_reach_the_socket_once_in_order() -> None:
    stream = EventStream("s1")
    for _ in range(5):
        await publish(stream)
    socket = Socket(pause=True)  # every send yields to the publisher

    async def publisher() -> None:
        for _ in range(5):
            await publish(stream)
            await asyncio.sleep(0)

    await asyncio.gather(stream.attach(socket, after=0), publisher())

    assert socket.seqs == list(range(1, 11))


async def test_attach_after_the_last_event_only_attaches() -> None:
    stream = EventStream("s1")
    await publish(stream)
    socket = Socket()

    await stream.attach(socket, after=1)

    assert socket.frames == [] and socket in stream.sockets


async def test_owning_goes_on_numbering_after_the_stored_seq_and_earlier_events_are_gone() -> None:
    stream = EventStream("s1")
    await stream.own(LEASE, 41)

    assert stream.stamp(StreamFrame(text="a"), advance=True)["seq"] == 42
    assert stream.log.since(40) is None
    assert stream.log.since(41) == []


async def test_owning_with_an_older_stored_seq_changes_nothing() -> None:
    stream = EventStream("s1")
    stream.stamp(StreamFrame(text="a"), advance=True)
    stream.stamp(StreamFrame(text="b"), advance=True)
    await stream.own(LEASE, 1)

    assert stream.seq == 2
