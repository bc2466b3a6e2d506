"""Graceful shutdown on SIGTERM: end every turn, close every socket with 4012, exit.

daphne (Twisted) handles SIGTERM by stopping the reactor, which cancels the
consumers but not the turns they started: measured, the process then does not
exit while a turn streams, and a CLI can outlive it. So the first connection
installs a handler in front of Twisted's: it stops every turn (each sends its one
terminal frame, within the stop deadline), closes the sockets with code 4012
(service restart; see SERVICE_RESTART), ends the runners (their CLIs with them), and only then hands
the signal to Twisted. A second SIGTERM goes to Twisted at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

from django.conf import settings

from chat.registry import registry

logger = logging.getLogger("dashboard_ai.shutdown")

# 1012 ("service restart") is what we mean, but daphne's WebSocket library lets an
# application close only with 1000 or 3000-4999; 4012 mirrors it in the private range.
SERVICE_RESTART = 4012

_previous: Any = None
_closers: set[Callable[[int], Awaitable[None]]] = set()
_shutting_down = False


def track_socket(close: Callable[[int], Awaitable[None]]) -> None:
    """Remember how to close a socket with a code, so shutdown can close it."""
    _closers.add(close)


def forget_socket(close: Callable[[int], Awaitable[None]]) -> None:
    """The socket is closed."""
    _closers.discard(close)


def install() -> None:
    """Put our SIGTERM handler in front of the server's (once, from the event loop)."""
    global _previous
    if _previous is not None:
        return
    loop = asyncio.get_running_loop()
    _previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        global _shutting_down
        if _shutting_down:
            _hand_over(signum, frame)
            return
        _shutting_down = True
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(_shutdown(signum)))

    signal.signal(signal.SIGTERM, on_sigterm)


async def _shutdown(signum: int) -> None:
    logger.info("shutting down", extra={"sessions": registry.active, "sockets": len(_closers)})
    try:
        await registry.shutdown(deadline=settings.STOP_DEADLINE_SECONDS + 1)
        await asyncio.gather(
            *(close(SERVICE_RESTART) for close in list(_closers)), return_exceptions=True
        )
        # Give the close frames time to leave and the clients time to answer them:
        # stopping the reactor drops whatever is still unsent.
        for _ in range(40):
            if not _closers:
                break
            await asyncio.sleep(0.05)
    except Exception:
        logger.exception("graceful shutdown failed")
    finally:
        _hand_over(signum, None)


def _hand_over(signum: int, frame: FrameType | None) -> None:
    if callable(_previous):
        _previous(signum, frame)
    else:
        raise SystemExit(0)
