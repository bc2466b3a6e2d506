"""A socket whose credentials expire is closed, but never in the middle of its turn.

When the token a socket connected with expires (a JWT's ``exp``), the socket takes no
more frames (each is answered ``TOKEN_EXPIRED``); once every turn it started has sent
its terminal frame, it gets an ``error`` ``TOKEN_EXPIRED`` and is closed with 4401. The
client connects again with a fresh token and replays what it missed (``lastSeq``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

TERMINAL_TYPES = frozenset({"complete", "error"})


class Expiring(Protocol):
    async def end_expired(self) -> None:
        """Tell the client its credentials expired, and close the socket."""


class CredentialExpiry:
    """Watches one socket's credentials and the turns it started."""

    def __init__(self, socket: Expiring) -> None:
        self._socket = socket
        self.expired = False
        self._running: set[str] = set()  # sessions (server ids) with a turn it started
        self._timer: asyncio.TimerHandle | None = None
        self._ending: asyncio.Task[None] | None = None

    def watch(self, expires_at: float | None) -> None:
        """Expire at ``expires_at`` (epoch seconds); ``None``: never."""
        if expires_at is not None:
            delay = max(0.0, expires_at - time.time())
            self._timer = asyncio.get_running_loop().call_later(delay, self._expire)

    def cancel(self) -> None:
        """The socket is gone."""
        if self._timer is not None:
            self._timer.cancel()

    @contextmanager
    def turn_of(self, session_id: str) -> Iterator[None]:
        """A ``message`` for ``session_id`` is being handed over: its turn runs until
        :meth:`saw` sees its terminal frame (a refused message has none)."""
        self._running.add(session_id)
        try:
            yield
        except BaseException:
            self._running.discard(session_id)
            raise

    def saw(self, frame: dict[str, Any]) -> None:
        """``frame`` of a session was sent: a terminal one ends that session's turn."""
        if frame.get("type") in TERMINAL_TYPES and self._running:
            self._running.discard(frame.get("sessionId", ""))
            self._end_if_idle()

    def expire_now(self) -> None:
        """The credentials ended before their time (a logout)."""
        self.cancel()
        self._expire()

    def _expire(self) -> None:
        self.expired = True
        self._end_if_idle()

    def _end_if_idle(self) -> None:
        if self.expired and not self._running and self._ending is None:
            self._ending = asyncio.create_task(self._socket.end_expired())
