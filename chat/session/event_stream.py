"""A session's event stream: numbered with ``seq``, kept for replay, sent to every socket.

:class:`SessionEvents` is the seam: what a runner needs of its session's events.
:class:`EventStream` is the one-process implementation (an in-memory log, the sockets
of this process); a fleet's keeps the log in a Redis stream and fans out to the
sockets of every server (:class:`chat.cluster.event_stream.RedisEventStream`). Only
the session's owner numbers events, so ``stamp`` stays a plain call; ``own``,
``replay``, ``publish`` and ``attach`` are where such a backend does its I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from django.conf import settings

from chat.protocol import ServerFrame
from chat.session.event_log import EventLog
from chat.session.ownership import Lease

logger = logging.getLogger("dashboard_ai.chat")

Send = Callable[[dict[str, Any]], Awaitable[None]]


class SessionEvents(Protocol):
    """The numbered events of one session, their replay log and the sockets they go to.

    One per session on each server that has its runner or its sockets: the owner
    numbers (:meth:`stamp`) and publishes, every server's sockets :meth:`attach`.
    """

    @property
    def seq(self) -> int:
        """The seq of the session's latest event known here (the owner: it numbered it)."""

    async def own(self, lease: Lease, stored_seq: int) -> None:
        """This server owns the session under ``lease``: numbering goes on after the
        newest of ``stored_seq`` and the events held, and :meth:`publish` is fenced by it."""

    def stamp(
        self, frame: ServerFrame, *, advance: bool = False, client_message_id: str | None = None
    ) -> dict[str, Any]: ...

    async def replay(self, after: int) -> list[dict[str, Any]] | None:
        """The events after seq ``after``; ``None`` when some are no longer held."""

    async def publish(self, event: dict[str, Any]) -> None:
        """Keep a stamped event and send it to every socket; :class:`LeaseLost` when
        the lease given to :meth:`own` is not this server's any more."""

    async def attach(self, send: Send, after: int) -> None:
        """Send ``send`` every event after seq ``after`` exactly once, in order, then
        every later one."""

    def detach(self, send: Send) -> None: ...

    @property
    def attended(self) -> bool:
        """Whether any socket of this server receives the events."""

    async def close(self) -> None:
        """Let go of what the events hold beyond memory (a reader of a shared log)."""


class Numbering:
    """What both event streams number frames with: the session's ``seq``, and
    :meth:`stamp`, which only the session's owner calls with ``advance``."""

    session_id: str
    seq: int

    def stamp(
        self, frame: ServerFrame, *, advance: bool = False, client_message_id: str | None = None
    ) -> dict[str, Any]:
        """``frame`` on the wire with the session's id, its seq and the ``clientMessageId``
        of the turn it belongs to. Events (``advance``) take the next seq; replies to
        one socket carry the current seq unchanged."""
        if advance:
            self.seq += 1
        update: dict[str, Any] = {"session_id": self.session_id, "seq": self.seq}
        if client_message_id:
            update["client_message_id"] = client_message_id
        return frame.model_copy(update=update).to_wire()


#: What makes a session's events from its id (the runtime's ``make_events``).
EventsFactory = Callable[[str], SessionEvents]


class EventStream(Numbering):
    """The events of one session and the sockets that receive them."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.seq = 0
        self.log = EventLog(
            max_events=settings.REPLAY_BUFFER_EVENTS, max_bytes=settings.REPLAY_BUFFER_BYTES
        )
        self.sockets: set[Send] = set()

    async def own(self, lease: Lease, stored_seq: int) -> None:
        """Numbering goes on from ``stored_seq`` if it is newer (this process has just
        started the session: events before it are gone). One process has no one to
        fence out, so the lease is not kept."""
        if stored_seq > self.seq:
            self.seq = stored_seq
            self.log.restart_at(stored_seq)

    async def replay(self, after: int) -> list[dict[str, Any]] | None:
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

    async def close(self) -> None:
        """Nothing is held beyond memory."""
