"""A bound on what one socket may have waiting to be sent (a client that never reads).

ASGI has no back-pressure: ``websocket.send`` returns at once and daphne hands the
bytes to Twisted, whose transport buffers whatever the peer does not read, without
limit. So each socket registers a :class:`SendBuffer` as the streaming producer of its
daphne transport: Twisted pauses it when its
write buffer passes 64 KiB and resumes it once the buffer has drained. Every byte sent
while paused counts against ``CHAT_MAX_SEND_BUFFER_BYTES``; past it the consumer
closes the socket, and autobahn drops the connection (freeing the buffer) when the
close handshake times out, which it does with a peer that reads nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("dashboard_ai.ws")


class SendBuffer:
    """Bytes queued for a socket beyond what its transport holds (a Twisted push producer).

    It takes the place of the producer the transport had (daphne's HTTP channel, which
    stops reading from a client while writes to it back up) and passes every call on.
    """

    def __init__(self, limit: int, previous: Any = None) -> None:
        self.limit = limit
        self.previous = previous
        self.paused = False
        self.queued = 0

    def pauseProducing(self) -> None:
        """The transport's buffer is full: count what is sent from now on."""
        self.paused = True
        if self.previous is not None:
            self.previous.pauseProducing()

    def resumeProducing(self) -> None:
        """The transport sent everything it held."""
        self.paused = False
        self.queued = 0
        if self.previous is not None:
            self.previous.resumeProducing()

    def stopProducing(self) -> None:
        """The connection is gone."""
        self.paused = False
        if self.previous is not None:
            self.previous.stopProducing()

    def admit(self, size: int) -> bool:
        """Count a frame of ``size`` bytes about to be sent; False once over the limit."""
        if self.paused:
            self.queued += size
        return self.queued <= self.limit


def attach_send_buffer(send: Callable[..., Any], limit: int) -> SendBuffer | None:
    """A :class:`SendBuffer` watching the transport behind an ASGI ``send``, if it is daphne's.

    daphne gives each application ``functools.partial(server.handle_reply, protocol)``,
    and the protocol's Twisted ``transport`` takes one producer (its documented
    ``producer`` attribute). Any other server, or a test communicator, gets no bound,
    and a debug line says so.
    """
    protocol = next(iter(getattr(send, "args", ())), None)
    transport = getattr(protocol, "transport", None)
    if transport is None or not callable(getattr(transport, "registerProducer", None)):
        logger.debug("no transport to watch: sends to this socket are not bounded")
        return None
    previous = getattr(transport, "producer", None)
    if previous is not None:
        transport.unregisterProducer()
    buffer = SendBuffer(limit, previous)
    transport.registerProducer(buffer, True)
    return buffer
