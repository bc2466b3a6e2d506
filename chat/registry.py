"""The live session runners of this server process."""

from __future__ import annotations

import asyncio

from django.conf import settings

from chat.exceptions import ServerBusy
from chat.protocol import InitFrame
from chat.sessions import SessionRunner
from chat.stream import Send


class SessionRegistry:
    """The live runners of this server process, by session id."""

    def __init__(self) -> None:
        self._runners: dict[str, SessionRunner] = {}

    async def open(self, session_id: str, send: Send, frame: InitFrame) -> SessionRunner:
        """Open the session for a socket (see :meth:`SessionRunner.open`), starting a runner.

        A runner that is closing is waited for first, so that two runners of one
        session never live at once.
        """
        while True:
            runner = self._runners.get(session_id)
            if runner is None:
                if len(self._runners) >= settings.MAX_SESSIONS:
                    raise ServerBusy("This server has too many live sessions; try again later.")
                runner = SessionRunner(session_id, self)
                self._runners[session_id] = runner
            if not runner.closed:
                break
            await runner.wait_closed()
        runner.hold()  # no await since the check: the runner cannot close under us
        try:
            await runner.open(send, frame)
        finally:
            runner.unhold()
        return runner

    def forget(self, runner: SessionRunner) -> None:
        """Called by a runner as it ends."""
        if self._runners.get(runner.session_id) is runner:
            del self._runners[runner.session_id]

    async def end_session(self, session_id: str) -> None:
        """End the session's live runner, if any: its turn is cancelled, its CLI closed."""
        runner = self._runners.get(session_id)
        if runner is not None:
            await runner.close()

    async def shutdown(self, deadline: float) -> None:
        """Stop every turn (each sends its terminal frame), then end every runner."""
        runners = list(self._runners.values())
        for runner in runners:
            runner.stop()
        if runners:
            waits = [asyncio.create_task(runner.wait_idle()) for runner in runners]
            _, pending = await asyncio.wait(waits, timeout=deadline)
            for wait in pending:
                wait.cancel()
        await asyncio.gather(*(runner.close() for runner in runners))

    @property
    def active(self) -> int:
        """How many sessions have a live runner."""
        return len(self._runners)


registry = SessionRegistry()
