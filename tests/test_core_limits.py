"""The per-socket frame rate and the per-client socket count."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from chat.limits import SocketCounter, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr("chat.limits.time", SimpleNamespace(monotonic=clock.monotonic))
    return clock


def test_a_burst_is_allowed_then_frames_are_refused(clock) -> None:
    bucket = TokenBucket(rate=1.0, burst=3, updated=clock.now)

    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_tokens_come_back_at_the_rate(clock) -> None:
    bucket = TokenBucket(rate=2.0, burst=3, updated=clock.now)
    for _ in range(3):
        bucket.take()

    clock.now += 0.4  # 0.8 of a token
    assert bucket.take() is False
    clock.now += 0.1  # 0.8 + 0.2 = 1 token
    assert bucket.take() is True
    assert bucket.take() is False


def test_a_long_pause_saves_up_no_more_than_the_burst(clock) -> None:
    bucket = TokenBucket(rate=10.0, burst=2, updated=clock.now)
    bucket.take()

    clock.now += 3600
    assert [bucket.take() for _ in range(3)] == [True, True, False]


def test_a_refused_frame_costs_nothing(clock) -> None:
    bucket = TokenBucket(rate=1.0, burst=1, updated=clock.now)
    bucket.take()
    for _ in range(5):
        assert bucket.take() is False

    clock.now += 1.0
    assert bucket.take() is True


async def test_sockets_are_counted_per_client_up_to_the_limit() -> None:
    counter = SocketCounter()

    assert [await counter.open("10.0.0.1", limit=2) for _ in range(3)] == [True, True, False]
    assert await counter.open("10.0.0.2", limit=2) is True


async def test_a_closed_socket_frees_its_place() -> None:
    counter = SocketCounter()
    await counter.open("10.0.0.1", limit=1)
    await counter.close("10.0.0.1")

    assert await counter.open("10.0.0.1", limit=1) is True


async def test_a_refused_socket_is_not_counted() -> None:
    counter = SocketCounter()
    await counter.open("10.0.0.1", limit=1)
    await counter.open("10.0.0.1", limit=1)  # refused
    await counter.close("10.0.0.1")

    assert await counter.open("10.0.0.1", limit=1) is True


async def test_a_client_with_no_socket_left_is_forgotten() -> None:
    counter = SocketCounter()
    for client in ("a", "b", "c"):
        await counter.open(client, limit=5)
        await counter.close(client)

    assert not counter._open
