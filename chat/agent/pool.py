"""A bound on live Claude CLI processes (each holds about 220 MB).

A runner takes a slot before it starts its CLI and gives it back when the CLI
closes. When every slot is taken, the pool asks the least recently used runner
whose agent sits idle to close it (its next turn resumes the conversation); if no
agent is idle, the caller waits up to ``AGENT_SLOT_WAIT_SECONDS`` and then gets
:class:`ServerBusy`.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from django.conf import settings

from chat.exceptions import ServerBusy


class SlotWaitAbandoned(Exception):
    """The caller stopped waiting for a slot (its turn was stopped)."""


class AgentHolder(Protocol):
    """What the pool needs of a session runner."""

    session_id: str

    @property
    def busy(self) -> bool:
        """Whether a turn is running."""

    def close_agent_soon(self) -> None:
        """Ask the runner's owner task to close its CLI (and release its slot)."""


class AgentPool:
    """Slots for live CLI processes in this server process."""

    def __init__(self) -> None:
        self._holders: OrderedDict[str, AgentHolder] = OrderedDict()

    @property
    def live(self) -> int:
        """How many CLI processes hold a slot."""
        return len(self._holders)

    async def acquire(
        self, holder: AgentHolder, *, give_up: Callable[[], bool] = lambda: False
    ) -> None:
        """Take a slot for ``holder``, making room or waiting; :class:`ServerBusy` if none.

        While it waits, ``give_up()`` is asked each time round: when it says yes (the
        turn was stopped), :class:`SlotWaitAbandoned` ends the wait.
        """
        deadline = time.monotonic() + settings.AGENT_SLOT_WAIT_SECONDS
        asked: set[str] = set()
        while len(self._holders) >= settings.MAX_LIVE_AGENTS:
            if give_up():
                raise SlotWaitAbandoned
            idle = next(
                (h for h in self._holders.values() if not h.busy and h.session_id not in asked),
                None,
            )
            if idle is not None:
                asked.add(idle.session_id)
                idle.close_agent_soon()
            elif time.monotonic() >= deadline:
                raise ServerBusy("Every agent is busy right now; try again in a moment.")
            await asyncio.sleep(0.05)
        self._holders[holder.session_id] = holder

    def touch(self, holder: AgentHolder) -> None:
        """``holder`` just used its agent: it is the last to be asked to close."""
        if holder.session_id in self._holders:
            self._holders.move_to_end(holder.session_id)

    def release(self, holder: AgentHolder) -> None:
        """``holder``'s CLI has closed."""
        if self._holders.get(holder.session_id) is holder:
            del self._holders[holder.session_id]


pool = AgentPool()
