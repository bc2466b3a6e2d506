"""The event streams of this server's sessions, shared by a session's runner and sockets.

On the owner the runner numbers and publishes into the stream its sockets are
attached to; on another server the sockets of the session attach to a stream of that
server's own, which (with Redis) reads what the owner published. Either way there is
one stream per session per server, kept while something holds it.
"""

from __future__ import annotations

from chat.session.event_stream import EventsFactory, SessionEvents


class SessionStreams:
    """One :class:`SessionEvents` per session, kept while a runner or a socket holds it."""

    def __init__(self, make_events: EventsFactory) -> None:
        self._make_events = make_events
        self._streams: dict[str, tuple[SessionEvents, int]] = {}

    def hold(self, session_id: str) -> SessionEvents:
        """The session's stream, made on first use; each hold needs a :meth:`release`."""
        stream, holders = self._streams.get(session_id) or (self._make_events(session_id), 0)
        self._streams[session_id] = (stream, holders + 1)
        return stream

    async def release(self, session_id: str, stream: SessionEvents) -> None:
        """One holder is done with ``stream``; the last one closes it.

        A stream already ended (:meth:`end`) is not the session's any more: releasing
        it changes nothing.
        """
        held, holders = self._streams.get(session_id) or (None, 0)
        if held is not stream:
            return
        if holders > 1:
            self._streams[session_id] = (stream, holders - 1)
            return
        del self._streams[session_id]
        await stream.close()

    async def end(self, session_id: str) -> None:
        """Close the session's stream for every holder (the session was deleted)."""
        held = self._streams.pop(session_id, None)
        if held is not None:
            await held[0].close()

    def get(self, session_id: str) -> SessionEvents | None:
        """The session's stream if something holds it."""
        found = self._streams.get(session_id)
        return found[0] if found else None

    def attended(self) -> list[str]:
        """The sessions whose streams have sockets of this server attached."""
        return [sid for sid, (stream, _) in self._streams.items() if stream.attended]
