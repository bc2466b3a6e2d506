"""Graceful shutdown on SIGTERM: end every turn, close every socket with 4012, exit.

daphne (Twisted) handles SIGTERM by stopping the reactor, which cancels the
consumers but not the turns they started: measured, the process then does not
exit while a turn streams, and a CLI can outlive it. So a handler of ours runs
first: it stops every turn (each sends its one terminal frame, within the stop
deadline), closes the sockets with code 4012 (service restart; see
SERVICE_RESTART), ends the runners (their CLIs with them), and only then hands the
signal to the handler it replaced. A second SIGTERM goes there at once.

Signal handlers belong to the main thread, and the server does not always run
there: under ``manage.py runserver``'s autoreloader it runs in a thread of its own
("django-main-thread") while the main thread watches files. So :func:`install` is
called where a server process starts, and does nothing off the main thread:

- ``dashboard_ai.asgi`` calls it on import, which is on the main thread under the
  ``daphne`` CLI and ``runserver --noreload``. Twisted installs its own SIGTERM
  handler when the reactor starts, later; we take over again then, in front of it.
- Under the autoreloader, ``chat.apps`` calls it when the reloader starts watching
  (``autoreload_started``, sent on the serving process's main thread after Django
  set its SIGTERM handler, which exits that process).

The handler runs on the main thread; the sessions live on the server's event loop,
recorded by :class:`OpenSockets` as sockets connect, so the shutdown is scheduled there.
What it ends is the process's :class:`chat.runtime.Runtime`, given to :func:`install`;
only what belongs to the process's signal handling itself is kept here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from chat.runtime import Runtime

logger = logging.getLogger("dashboard_ai.shutdown")

# 1012 ("service restart") is what we mean, but daphne's WebSocket library lets an
# application close only with 1000 or 3000-4999; 4012 mirrors it in the private range.
SERVICE_RESTART = 4012

CloseSocket = Callable[[int], Awaitable[None]]

# The process's signal handling: one handler, installed once, on the main thread.
_main_thread_id: int | None = None  # set by install(), which runs there
_previous: Any = signal.SIG_DFL
_runtime: Runtime | None = None
_shutting_down = False
_shutdown_task: asyncio.Task[None] | None = None


class OpenSockets:
    """The open sockets of a process, each with how to close it, and their event loop."""

    def __init__(self) -> None:
        self.closers: set[CloseSocket] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._none_open = asyncio.Event()
        self._none_open.set()

    def track(self, close: CloseSocket) -> None:
        """Remember how to close a socket with a code, and the loop it is served on."""
        self.loop = asyncio.get_running_loop()
        self.closers.add(close)
        self._none_open.clear()

    def forget(self, close: CloseSocket) -> None:
        """The socket is closed."""
        self.closers.discard(close)
        if not self.closers:
            self._none_open.set()

    async def close_all(self, code: int, *, wait: float) -> None:
        """Close every socket with ``code``; return once all are gone, or after ``wait`` s."""
        await asyncio.gather(*(close(code) for close in list(self.closers)), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._none_open.wait()


def install(runtime: Runtime) -> None:
    """Install the graceful SIGTERM handler for ``runtime``: once per process, from the
    main thread only."""
    global _main_thread_id, _runtime
    if _main_thread_id is not None or not _on_main_thread():
        return
    _main_thread_id = threading.get_ident()
    _runtime = runtime
    _take_over()
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is not None:
        # daphne's reactor is imported (never by us: which reactor is installed
        # depends on import order) and will install its own handler when it starts.
        reactor.callWhenRunning(_take_over)


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _take_over() -> None:
    """Put our handler in front of the current one (a reactor in a thread has none)."""
    global _previous
    if not _on_main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if current is not _on_sigterm:
        _previous = current
        signal.signal(signal.SIGTERM, _on_sigterm)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _shutting_down
    loop = _runtime.sockets.loop if _runtime is not None else None
    if _shutting_down or loop is None or loop.is_closed():
        # A second SIGTERM, the end of the graceful part, or no socket ever served.
        _shutting_down = True
        _hand_over(signum, frame)
        return
    _shutting_down = True
    loop.call_soon_threadsafe(_start_shutdown, signum)


def _start_shutdown(signum: int) -> None:
    global _shutdown_task
    _shutdown_task = asyncio.get_running_loop().create_task(_shutdown(signum))


async def _shutdown(signum: int) -> None:
    assert _runtime is not None  # a loop is known only through it
    sessions, sockets = _runtime.sessions, _runtime.sockets
    logger.info(
        "shutting down", extra={"sessions": sessions.active, "sockets": len(sockets.closers)}
    )
    try:
        await sessions.shutdown(deadline=settings.STOP_DEADLINE_SECONDS + 1)
        # Give the close frames time to leave and the clients time to answer them:
        # stopping the reactor drops whatever is still unsent.
        await sockets.close_all(SERVICE_RESTART, wait=2.0)
        await _runtime.per_client.stop()  # this server's sockets count for nobody now
    except Exception:
        logger.exception("graceful shutdown failed")
    finally:
        if _on_main_thread():
            _hand_over(signum, None)  # the daphne CLI: the loop runs on the main thread
        else:
            _signal_main_thread(signum)


def _signal_main_thread(signum: int) -> None:
    """Hand over on the main thread, from a server running in another one (the reloader).

    The previous handler must run there (Django's raises SystemExit to end the
    process), and a signal is what reaches it: ``_on_sigterm`` runs again and hands
    over. Python drops an exception raised by a handler that ran inside a finalizer
    (seen: Django's SystemExit lost in a weakref callback of the reloader's file
    scan), so the signal is repeated a few times until the process ends.
    """
    assert _main_thread_id is not None  # install() ran there
    main_thread_id = _main_thread_id

    def repeat() -> None:
        for _ in range(10):
            signal.pthread_kill(main_thread_id, signum)
            time.sleep(1)

    threading.Thread(target=repeat, name="shutdown-hand-over", daemon=True).start()


def _hand_over(signum: int, frame: FrameType | None) -> None:
    """Run the handler we replaced, or do what the signal does without one."""
    if callable(_previous):
        _previous(signum, frame)
        return
    signal.signal(signum, _previous if _previous is not None else signal.SIG_DFL)
    signal.raise_signal(signum)
