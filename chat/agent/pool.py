"""A bound on live Claude CLI processes (each holds about 220 MB), by slots and by memory.

A runner takes a slot before it starts its CLI and gives it back when the CLI
closes. When every slot is taken, the pool asks an idle runner to close its CLI
(its next turn resumes the conversation): first one whose CLI was started ahead
of a turn and never used (a warm-up), then the least recently used; if no agent
is idle, the caller waits up to ``AGENT_SLOT_WAIT_SECONDS`` and then gets
:class:`ServerBusy`. When less memory than ``AGENT_MIN_AVAILABLE_MB`` is left
(:mod:`chat.agent.memory`), idle runners are asked in the same order until enough
is left or none is idle, and the CLI then starts: memory short is no reason to
refuse a turn, only to close what nobody uses.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from django.conf import settings

from chat.agent import memory
from chat.exceptions import ServerBusy

logger = logging.getLogger("dashboard_ai.chat")


class SlotWaitAbandoned(Exception):
    """The caller stopped waiting for a slot (its turn was stopped)."""


class NoSpareSlot(Exception):
    """No slot is free right now for a warm-up (see :meth:`AgentPool.acquire`)."""


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

    def __init__(self, available_mb: Callable[[], float | None] = memory.available_mb) -> None:
        self._available_mb = available_mb  # the memory left, read before each start
        self._holders: OrderedDict[str, AgentHolder] = OrderedDict()
        # Holders whose CLI was started ahead of a turn and has not run one yet.
        self._spares: set[str] = set()
        self._waiting = 0  # callers waiting for a slot: a warm-up never takes one first
        # Set (and replaced) whenever a slot is given back: what a waiter waits for.
        self._released = asyncio.Event()

    @property
    def live(self) -> int:
        """How many CLI processes hold a slot."""
        return len(self._holders)

    def session_ids(self) -> tuple[str, ...]:
        """The sessions whose CLI holds a slot (for the metrics of their memory)."""
        return tuple(self._holders)

    async def acquire(
        self, holder: AgentHolder, *, stop: asyncio.Event | None = None, spare: bool = False
    ) -> None:
        """Take a slot for ``holder``, making room or waiting; :class:`ServerBusy` if none.

        While every slot is taken, an idle holder not asked yet is asked to close its
        CLI (see :meth:`_close_order`), and the caller waits for a slot to be given
        back. While memory is short (:meth:`_short_of_memory`), idle holders are asked
        the same way, one at a time, and the caller starts once enough is left or no
        idle holder is left to ask. ``stop`` (the turn's stop request) ends the wait with
        :class:`SlotWaitAbandoned`.

        ``spare`` is for a warm-up, a CLI started before any turn asks for it: it takes
        only a slot that is free right now and that no caller is waiting for, and
        raises :class:`NoSpareSlot` otherwise, as it does while memory is short; it
        never waits and never asks anyone to close. Until its first turn (:meth:`touch`)
        the holder is among the first asked.
        """
        if spare:
            if (
                self._waiting
                or len(self._holders) >= settings.MAX_LIVE_AGENTS
                or self._short_of_memory()
            ):
                raise NoSpareSlot
            self._holders[holder.session_id] = holder
            self._spares.add(holder.session_id)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.AGENT_SLOT_WAIT_SECONDS
        asked: set[str] = set()
        self._waiting += 1
        try:
            while True:
                full = len(self._holders) >= settings.MAX_LIVE_AGENTS
                short = not full and self._short_of_memory()
                if not (full or short):
                    break
                if stop is not None and stop.is_set():
                    raise SlotWaitAbandoned
                idle = next(
                    (h for h in self._close_order() if not h.busy and h.session_id not in asked),
                    None,
                )
                if idle is not None:
                    if short:
                        logger.info(
                            "closing an idle agent: memory is short",
                            extra={"sessionId": idle.session_id, "forSession": holder.session_id},
                        )
                    asked.add(idle.session_id)
                    idle.close_agent_soon()
                elif not full:
                    break  # short of memory, and nothing idle is left to close
                elif loop.time() >= deadline:
                    raise ServerBusy("Every agent is busy right now; try again in a moment.")
                await self._wait_for_release(stop, timeout=deadline - loop.time())
        finally:
            self._waiting -= 1
        self._holders[holder.session_id] = holder

    def _short_of_memory(self) -> bool:
        """Whether less than ``AGENT_MIN_AVAILABLE_MB`` is left (never, when it is 0)."""
        minimum = settings.AGENT_MIN_AVAILABLE_MB
        if not minimum:
            return False
        available = self._available_mb()
        return available is not None and available < minimum

    def _close_order(self) -> list[AgentHolder]:
        """Who is asked to close first: the warm-ups never used (oldest first), then the
        rest, least recently used first (a stable sort keeps each group's order)."""
        return sorted(self._holders.values(), key=lambda h: h.session_id not in self._spares)

    async def _wait_for_release(self, stop: asyncio.Event | None, *, timeout: float) -> None:
        """Until a slot is given back, ``stop`` is set, or ``timeout`` seconds pass."""
        waits = {asyncio.ensure_future(self._released.wait())}
        if stop is not None:
            waits.add(asyncio.ensure_future(stop.wait()))
        try:
            await asyncio.wait(waits, timeout=max(timeout, 0), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    def touch(self, holder: AgentHolder) -> None:
        """``holder`` just used its agent: it is the last to be asked to close."""
        if holder.session_id in self._holders:
            self._holders.move_to_end(holder.session_id)
            self._spares.discard(holder.session_id)

    def release(self, holder: AgentHolder) -> None:
        """``holder``'s CLI has closed: its slot goes to a waiter, if any."""
        if self._holders.get(holder.session_id) is holder:
            del self._holders[holder.session_id]
            self._spares.discard(holder.session_id)
            released, self._released = self._released, asyncio.Event()
            released.set()
