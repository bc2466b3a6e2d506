"""One session's live Claude CLI: started with a pool slot, stopped on a deadline.

Only the session runner's owner task uses an :class:`AgentProcess`: the SDK's
client must stay in the task that connected it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Protocol

from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKError, Message
from django.conf import settings

from chat.agent import options
from chat.agent.pool import AgentHolder, AgentPool
from chat.agent.process_group import kill_process_group

logger = logging.getLogger("dashboard_ai.chat")


class AgentClient(Protocol):
    """What the core uses of ``ClaudeSDKClient``: a test's fake client offers the same."""

    async def connect(self) -> None: ...

    async def query(self, prompt: str) -> None: ...

    def receive_response(self) -> AsyncIterator[Message]: ...

    async def interrupt(self) -> None: ...

    async def disconnect(self) -> None: ...


#: What makes a session's SDK client from its options: ``ClaudeSDKClient`` itself, or in
#: tests a fake that replays streams recorded from the real CLI.
ClientFactory = Callable[[ClaudeAgentOptions], AgentClient]


class AgentProcess:
    """A connected SDK client and the CLI process behind it."""

    def __init__(self, holder: AgentHolder, client: AgentClient, pool: AgentPool) -> None:
        self.holder = holder
        self.client = client
        self.pool = pool
        self._spent_usd = 0.0  # what the CLI reported it has spent so far (all its turns)
        self._pidfile = options.paths_for(holder.session_id).pidfile

    @property
    def spent_usd(self) -> float:
        """What the CLI reported it has spent since it started."""
        return self._spent_usd

    def turn_cost(self, total_usd: float) -> float:
        """The cost of the turn that just ended, from the ``total_cost_usd`` its result
        reported: the CLI counts what it has spent since it started, so on a warm CLI
        that total holds every earlier turn too."""
        cost, self._spent_usd = max(0.0, total_usd - self._spent_usd), total_usd
        return cost

    @classmethod
    async def start(
        cls,
        holder: AgentHolder,
        *,
        workspace: Path,
        resume: str | None,
        resume_at: str | None,
        pool: AgentPool,
        make_client: ClientFactory,
        stop: asyncio.Event | None = None,
        spare: bool = False,
    ) -> AgentProcess:
        """Take a slot of ``pool`` (see :meth:`AgentPool.acquire`, which says what
        ``stop`` and ``spare`` mean) and start the CLI."""
        agent_options = options.build_options(
            session_id=holder.session_id, workspace=workspace, resume=resume, resume_at=resume_at
        )
        await pool.acquire(holder, stop=stop, spare=spare)
        client = make_client(agent_options)
        try:
            await client.connect()
        except BaseException:
            pool.release(holder)
            raise
        return cls(holder, client, pool)

    async def close(self) -> None:
        """Disconnect, make sure the process group is gone, give the slot back."""
        try:
            await self.client.disconnect()
        except Exception:
            logger.warning("closing the agent failed", extra={"sessionId": self.holder.session_id})
        finally:
            self._kill()

    async def halt(self, pump: Awaitable[object]) -> bool:
        """End the running turn within ``STOP_DEADLINE_SECONDS``; True if the CLI survived.

        First an interrupt (the CLI ends the turn itself and stays usable), then a
        disconnect, then SIGKILL to the CLI's process group: each step gets a third
        of the deadline.
        """
        step = settings.STOP_DEADLINE_SECONDS / 3
        try:
            async with asyncio.timeout(step):  # not wait_for: see SessionRunner._own
                await self.client.interrupt()
            async with asyncio.timeout(step):
                await asyncio.shield(pump)
            return True
        except (TimeoutError, ClaudeSDKError):
            logger.warning(
                "interrupt did not end the turn", extra={"sessionId": self.holder.session_id}
            )
        try:
            async with asyncio.timeout(step):
                await self.client.disconnect()
        except (TimeoutError, Exception):
            logger.warning("closing the agent failed", extra={"sessionId": self.holder.session_id})
        finally:
            self._kill()
        return False

    def _kill(self) -> None:
        kill_process_group(self._pidfile)
        self.pool.release(self.holder)
