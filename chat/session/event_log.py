"""The recent events of a session, kept so that a reconnecting socket can catch up."""

from __future__ import annotations

import json
from collections import deque
from typing import Any


class EventLog:
    """The last events of a session (at most ``max_events`` and about ``max_bytes``).

    Events are wire frames with consecutive ``seq`` numbers. The log knows which
    numbers it no longer holds (dropped, or from before this process started), so it
    can tell a reconnecting client whether a full replay is possible.
    """

    def __init__(self, *, max_events: int, max_bytes: int, first_seq: int = 0) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._events: deque[tuple[int, dict[str, Any], int]] = deque()
        self._bytes = 0
        self._missing_through = first_seq  # events up to this seq are not held

    def restart_at(self, seq: int) -> None:
        """Events up to ``seq`` happened before this log existed and are not held."""
        if not self._events:
            self._missing_through = max(self._missing_through, seq)

    def append(self, event: dict[str, Any]) -> None:
        """Keep ``event``; drop the oldest ones past the bounds."""
        size = len(json.dumps(event, ensure_ascii=False))
        self._events.append((int(event["seq"]), event, size))
        self._bytes += size
        while len(self._events) > self.max_events or (
            self._bytes > self.max_bytes and len(self._events) > 1
        ):
            seq, _, dropped = self._events.popleft()
            self._bytes -= dropped
            self._missing_through = seq

    def since(self, seq: int) -> list[dict[str, Any]] | None:
        """Every held event after ``seq``, in order; ``None`` if some are no longer held."""
        if seq < self._missing_through:
            return None
        newest = self._events[-1][0] if self._events else self._missing_through
        if seq > newest:
            return None  # the client claims events this session never sent
        return [event for number, event, _ in self._events if number > seq]

    @property
    def size_bytes(self) -> int:
        """The JSON size of the held events."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._events)
