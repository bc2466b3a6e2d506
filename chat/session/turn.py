"""One turn through the agent: stream its events, watch for stop and stall, end it.

:class:`TurnRun` is used by the session runner's owner task, the only task that
touches the session's client; it reaches the client and the event stream through
the runner (:class:`TurnHost`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from django.conf import settings

from chat.agent.errors import error_for_result, model_error_for_exception
from chat.agent.pool import SlotWaitAbandoned
from chat.agent.process import AgentClient
from chat.events import FileTouched, TurnEnded, TurnTranslator
from chat.exceptions import InternalError
from chat.protocol import (
    CompleteFrame,
    Conflict,
    ErrorFrame,
    FileChangedFrame,
    ServerFrame,
    StatusFrame,
    StreamFrame,
    ToolStartFrame,
    Usage,
    error_frame_for,
    file_content,
    file_contents,
)
from chat.session import store
from workspaces import services as workspaces
from workspaces.exceptions import WorkspaceError
from workspaces.snapshots import FileState, Snapshot, diff_snapshots


@dataclass
class Turn:
    """One chat message being answered."""

    message: str
    client_message_id: str | None
    state_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    translator: TurnTranslator | None = None
    conflicts: list[Conflict] = field(default_factory=list)
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    last_activity: float = field(default_factory=time.monotonic)
    started: float = field(default_factory=time.monotonic)
    terminal: dict[str, Any] | None = None
    counted: bool = False  # the turn reached a result and is in the message count
    cost_usd: float = 0.0  # what the model cost, once the turn reached a result
    first_text_ms: int | None = None  # from the message to its first streamed text
    tools: list[str] = field(default_factory=list)  # the tools it started, in order

    def saw(self, frame: ServerFrame) -> None:
        """Note what the turn's log line tells of ``frame``, an event of the turn."""
        if isinstance(frame, StreamFrame) and self.first_text_ms is None:
            self.first_text_ms = int((time.monotonic() - self.started) * 1000)
        elif isinstance(frame, ToolStartFrame):
            self.tools.append(frame.tool)

    def summary(self, terminal: ServerFrame) -> dict[str, Any]:
        """The fields of the turn's one log line, once ``terminal`` ends it."""
        fields: dict[str, Any] = {
            "durationMs": int((time.monotonic() - self.started) * 1000),
            "firstTextMs": self.first_text_ms,
            "tools": self.tools,
        }
        if isinstance(terminal, CompleteFrame):
            fields.update(
                outcome="stopped" if terminal.stopped else "complete",
                inputTokens=terminal.usage.input_tokens,
                outputTokens=terminal.usage.output_tokens,
                costUsd=terminal.cost_usd,
            )
        elif isinstance(terminal, ErrorFrame):
            fields["outcome"] = terminal.code
        return fields


class TurnHost(Protocol):
    """What a turn needs of its session runner."""

    session_id: str

    async def connected_client(self, *, stop: asyncio.Event) -> AgentClient:
        """The session's client, started if needed (``stop`` ends a wait for a slot)."""

    async def close_agent(self) -> None:
        """Close the session's CLI."""

    def turn_cost(self, total_usd: float) -> float:
        """The turn's own cost, from the CLI's running total of what it has spent."""

    async def halt_agent(self, pump: asyncio.Task[TurnEnded | None]) -> None:
        """End a running pump within the stop deadline."""

    async def emit(self, frame: ServerFrame) -> dict[str, Any]:
        """Publish an event of the session."""


class TurnRun:
    """Runs one :class:`Turn` through the agent."""

    def __init__(self, host: TurnHost, turn: Turn, translator: TurnTranslator) -> None:
        self.host = host
        self.turn = turn
        self.translator = translator

    async def converse(self, before: Snapshot) -> ServerFrame:
        """Run the turn through the agent; its terminal frame (``complete`` or ``error``)."""
        turn = self.turn
        try:
            client = await self.host.connected_client(stop=turn.stop_requested)
        except SlotWaitAbandoned:
            return await self._complete(before, stopped=True)
        if turn.stop_requested.is_set():
            return await self._complete(before, stopped=True)
        await client.query(turn.message)
        pump = asyncio.create_task(self._pump(client))
        try:
            outcome = await self._supervise(pump)
        finally:
            if not pump.done():  # _supervise failed: never leave the pump running
                pump.cancel()
                await asyncio.gather(pump, return_exceptions=True)
        if outcome == "done":
            ended = pump.result()  # re-raises what the agent raised
            if ended is None:
                await self.host.close_agent()
                return error_frame_for(InternalError("The agent ended the turn without a result."))
        else:
            ended = _result_if_any(pump)
        if ended is not None:
            ended = replace(ended, cost_usd=self.host.turn_cost(ended.cost_usd))
            await store.record_turn(self.host.session_id, ended.session_id, ended.cost_usd)
            turn.counted, turn.cost_usd = True, ended.cost_usd
        if outcome == "stalled":
            return error_frame_for(model_error_for_exception(TimeoutError()))
        if outcome == "stopped" or (ended is not None and ended.interrupted):
            return await self._complete(before, stopped=True, ended=ended)
        assert ended is not None
        if ended.is_error:
            return error_frame_for(error_for_result(ended))
        return await self._complete(before, stopped=False, ended=ended)

    async def _pump(self, client: AgentClient) -> TurnEnded | None:
        """Translate and emit the SDK messages of the turn until its result."""
        turn, translator = self.turn, self.translator
        async for message in client.receive_response():
            turn.last_activity = time.monotonic()
            for output in translator.translate(message):
                if isinstance(output, TurnEnded):
                    return output
                if isinstance(output, FileTouched):
                    await self._emit_file(output.path)
                elif not turn.stop_requested.is_set() or not isinstance(output, StatusFrame):
                    await self.host.emit(output)
        return None

    async def _supervise(self, pump: asyncio.Task[TurnEnded | None]) -> str:
        """Wait for the pump; on stop or stall, end it within the stop deadline."""
        turn = self.turn
        stop = asyncio.create_task(turn.stop_requested.wait())
        try:
            while True:
                # Sleep until the stall deadline the last message set; a message that came
                # meanwhile moves the deadline, so wake, look, and wait for the rest.
                stall_in = turn.last_activity + settings.MODEL_STALL_SECONDS - time.monotonic()
                done, _ = await asyncio.wait(
                    {pump, stop}, timeout=max(stall_in, 0), return_when=asyncio.FIRST_COMPLETED
                )
                if pump in done:
                    return "done"
                if stop in done:
                    reason = "stopped"
                    break
                if time.monotonic() - turn.last_activity >= settings.MODEL_STALL_SECONDS:
                    reason = "stalled"
                    break
        finally:
            stop.cancel()
        await self.host.halt_agent(pump)
        return reason

    async def _emit_file(self, path: str) -> None:
        try:
            content = await workspaces.read_file(session_id=self.host.session_id, path=path)
        except WorkspaceError:
            return  # gone again, or not a regular file: complete will tell
        await self.host.emit(
            FileChangedFrame(
                path=path, content=file_content(content), hash=FileState.of(content).sha256
            )
        )

    async def _complete(
        self, before: Snapshot, *, stopped: bool, ended: TurnEnded | None = None
    ) -> CompleteFrame:
        turn = self.turn
        after = await workspaces.snapshot(session_id=self.host.session_id)
        await workspaces.record_current(session_id=self.host.session_id, files=after)
        diff = await asyncio.to_thread(diff_snapshots, before, after)
        written = diff.written
        return CompleteFrame(
            files=file_contents(written),
            hashes={path: after[path].sha256 for path in written},
            conflicts=turn.conflicts or None,
            deleted=diff.deleted,
            result=ended.result if ended else "",
            stopped=stopped,
            usage=Usage(**ended.usage) if ended else Usage(),
            cost_usd=ended.cost_usd if ended else 0.0,
            duration_ms=int((time.monotonic() - turn.started) * 1000),
        )


def _result_if_any(pump: asyncio.Task[TurnEnded | None]) -> TurnEnded | None:
    """The pump's result if it finished cleanly before it was stopped."""
    if pump.done() and not pump.cancelled() and pump.exception() is None:
        return pump.result()
    return None
