"""A step a Redis-backed part repeats while the server lives (a renewal, a refresh)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable


class Periodic:
    """Runs ``step`` every ``interval`` seconds, from :meth:`start` until :meth:`stop`.

    ``step`` handles its own failures: one that raises ends the repetition.
    """

    def __init__(self, step: Callable[[], Awaitable[None]], interval: float, name: str) -> None:
        self._step = step
        self._interval = interval
        self._name = name
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin repeating (once: a second call changes nothing)."""
        if self._task is None:
            self._task = asyncio.create_task(self._repeat(), name=self._name)

    async def stop(self) -> None:
        """Stop repeating and wait for a step under way to be cancelled."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _repeat(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self._step()
