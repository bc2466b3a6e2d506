"""The event log: bounded by count and bytes, and honest about what it no longer holds."""

from __future__ import annotations

import json

from chat.session.event_log import EventLog


def event(seq: int, text: str = "x") -> dict:
    return {"type": "stream", "seq": seq, "text": text}


def log_of(*seqs: int, max_events: int = 100, max_bytes: int = 1_000_000) -> EventLog:
    log = EventLog(max_events=max_events, max_bytes=max_bytes)
    for seq in seqs:
        log.append(event(seq))
    return log


def test_since_gives_every_later_event_in_order() -> None:
    log = log_of(1, 2, 3, 4)

    assert [e["seq"] for e in log.since(1)] == [2, 3, 4]
    assert [e["seq"] for e in log.since(0)] == [1, 2, 3, 4]


def test_since_the_newest_event_is_empty_and_beyond_it_is_none() -> None:
    log = log_of(1, 2, 3)

    assert log.since(3) == []
    assert log.since(4) is None


def test_an_empty_log_has_nothing_to_replay_and_nothing_beyond() -> None:
    log = log_of()

    assert log.since(0) == []
    assert log.since(1) is None


def test_past_max_events_the_oldest_are_dropped_and_a_replay_from_before_them_is_none() -> None:
    log = log_of(1, 2, 3, 4, 5, max_events=3)

    assert len(log) == 3
    assert [e["seq"] for e in log.since(2)] == [3, 4, 5]
    assert log.since(1) is None
    assert log.since(0) is None


def test_past_max_bytes_the_oldest_are_dropped() -> None:
    one = len(json.dumps(event(1)))
    log = log_of(1, 2, 3, 4, max_bytes=2 * one)

    assert [e["seq"] for e in log.since(2)] == [3, 4]
    assert log.since(1) is None
    assert log.size_bytes == 2 * one


def test_an_event_larger_than_max_bytes_is_still_held_alone() -> None:
    log = EventLog(max_events=10, max_bytes=10)
    log.append(event(1))
    log.append(event(2, text="y" * 100))

    assert [e["seq"] for e in log.since(1)] == [2]
    assert log.since(0) is None


def test_size_bytes_is_the_json_size_of_what_is_held() -> None:
    log = log_of(1, 2)

    assert log.size_bytes == len(json.dumps(event(1))) + len(json.dumps(event(2)))


def test_restart_at_marks_earlier_events_as_not_held() -> None:
    log = log_of()
    log.restart_at(10)

    assert log.since(9) is None
    assert log.since(10) == []
    assert log.since(11) is None
    log.append(event(11))
    assert [e["seq"] for e in log.since(10)] == [11]


def test_restart_at_never_moves_backwards() -> None:
    log = log_of()
    log.restart_at(10)
    log.restart_at(5)

    assert log.since(5) is None
    assert log.since(10) == []


def test_restart_at_is_ignored_once_events_are_held() -> None:
    log = log_of(1, 2)
    log.restart_at(10)

    assert [e["seq"] for e in log.since(0)] == [1, 2]


def test_first_seq_starts_the_log_after_events_it_never_held() -> None:
    log = EventLog(max_events=10, max_bytes=1000, first_seq=5)

    assert log.since(4) is None
    assert log.since(5) == []
