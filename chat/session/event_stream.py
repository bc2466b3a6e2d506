"""A session's event stream: numbered with ``seq``, kept for replay, sent to every socket.

:class:`SessionEvents` is the seam: what a runner needs of its session's events.
:class:`EventStream` is the one-process implementation (an in-memory log, the sockets
of this process); a fleet's would keep the log in a Redis stream and fan out to the
sockets of every server. Only the session's owner numbers events, so ``stamp`` stays a
plain call; ``publish`` and ``attach`` are where the I/O of such a backend would go.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from django.conf import settings

from chat.protocol import ServerFrame
from chat.session.event_log import EventLog

logger = logging.getLogger("dashboard_ai.chat")

Send = Callable[[dict[str, Any]], Awaitable[None]]


class SessionEvents(Protocol):
    """The numbered events of one session, their replay log and the sockets they go to."""

    @property
    def seq(self) -> int:
        """The seq of the session's latest event."""

    def continue_from(self, seq: int) -> None: ...

    def stamp(
        self, frame: ServerFrame, *, advance: bool = False, client_message_id: str | None = None
    ) -> dict[str, Any]: ...

    def replay(self, after: int) -> list[dict[str, Any]] | None: ...

    async def publish(self, event: dict[str, Any]) -> None: ...

    async def attach(self, send: Send, after: int) -> None: ...

    def detach(self, send: Send) -> None: ...

    @property
    def attended(self) -> bool:
        """Whether any socket receives the events."""


#: What makes a session's events from its id (the runtime's ``make_events``).
EventsFactory = Callable[[str], SessionEvents]


class EventStream:
    """The events of one session and the sockets that receive them."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.seq = 0
        self.log = EventLog(
            max_events=settings.REPLAY_BUFFER_EVENTS, max_bytes=settings.REPLAY_BUFFER_BYTES
        )
        self.sockets: set[Send] = set()

    def continue_from(self, seq: int) -> None:
        """Numbering goes on from ``seq`` (stored with the session); earlier events are gone."""
        if seq > self.seq:
            self.seq = seq
            self.log.restart_at(seq)

    def stamp(
        self, frame: ServerFrame, *, advance: bool = False, client_message_id: str | None = None
    ) -> dict[str, Any]:
        """``frame`` on the wire with the session's id and seq.

        Events (``advance``) take the next seq; replies to one socket carry the
        current seq unchanged.
        """
        update: dict[str, Any] = {"session_id": self.session_id}
        if advance:
            self.seq += 1
        if client_message_id:
            update["client_message_id"] = client_message_id
        update["seq"] = self.seq
        return frame.model_copy(update=update).to_wire()

    def replay(self, after: int) -> list[dict[str, Any]] | None:
        """The held events after seq ``after``; ``None`` when some are no longer held."""
        return self.log.since(after)

    async def publish(self, event: dict[str, Any]) -> None:
        """Keep a stamped event for replay and send it to every socket."""
        self.log.append(event)
        for send in list(self.sockets):
            try:
                await send(event)
            except Exception:  # a socket that went away; its consumer will leave
                logger.debug("dropping a frame for a closed socket", exc_info=True)

    async def attach(self, send: Send, after: int) -> None:
        """Send the held events after seq ``after``, then attach with no event in between."""
        while events := self.log.since(after):
            for event in events:
                await send(event)
                after = event["seq"]
        self.sockets.add(send)  # no await since the last check: nothing missed

    def detach(self, send: Send) -> None:
        """Stop sending to ``send``."""
        self.sockets.discard(send)

    @property
    def attended(self) -> bool:
        """Whether any socket receives the events."""
        return bool(self.sockets)
