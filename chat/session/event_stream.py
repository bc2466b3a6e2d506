"""A session's event stream: numbered with ``seq``, kept for replay, sent to every socket."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from chat.protocol import ServerFrame
from chat.session.event_log import EventLog

logger = logging.getLogger("dashboard_ai.chat")

Send = Callable[[dict[str, Any]], Awaitable[None]]


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
