"""A stand-in for ``ClaudeSDKClient`` that replays message streams recorded from the CLI.

The core's unit tests drive the turn and the runner with it, in milliseconds and with
no CLI. Its messages are the SDK's own parsed objects, read from ``tests/data/*.jsonl``
(written by ``tests.support.record_sdk_messages`` from the real CLI), and each query is
answered by a :class:`Reply` that can also hang, end without a result, be slow, or
ignore an interrupt. It is for the state machine only: every behaviour keeps an
end-to-end test through the real SDK, CLI and scripted model.

    sdk = FakeSDK(Reply(recorded("write_app")))
    client = sdk(options)          # what a ClientFactory is called with
    ...
    assert sdk.queries == ["make an app"]
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from claude_agent_sdk import CLIConnectionError, Message, ResultMessage
from claude_agent_sdk._internal.message_parser import parse_message

DATA = Path(__file__).resolve().parents[1] / "data"


@cache
def _raw(name: str) -> tuple[str, ...]:
    return tuple((DATA / f"sdk_{name}.jsonl").read_text().splitlines())


def recorded(name: str) -> list[Message]:
    """The parsed messages of ``tests/data/sdk_<name>.jsonl``, fresh objects each call."""
    messages = [parse_message(json.loads(line)) for line in _raw(name)]
    return [message for message in messages if message is not None]


def interrupt_tail() -> list[Message]:
    """What the CLI sent after an interrupt during a turn's first text (aborted result)."""
    return recorded("interrupt_tail")


@dataclass
class Reply:
    """How a fake client answers one query.

    ``messages`` are yielded in order, ``delay`` seconds apart (before each one). After
    ``hang_after`` messages nothing more comes until the client is interrupted or
    disconnected. An interrupt ends the replay with ``on_interrupt`` (by default what
    the real CLI sent after an interrupt), unless ``ignore_interrupt`` (a CLI that does
    not answer it); a disconnect ends the stream at once. ``without_result`` drops every
    ``ResultMessage``: the stream just ends, as when the CLI dies mid-turn.
    """

    messages: Sequence[Message]
    hang_after: int | None = None
    without_result: bool = False
    delay: float = 0.0
    on_interrupt: Sequence[Message] = field(default_factory=interrupt_tail)
    ignore_interrupt: bool = False

    def _shown(self, messages: Sequence[Message]) -> list[Message]:
        if self.without_result:
            return [m for m in messages if not isinstance(m, ResultMessage)]
        return list(messages)


class FakeSDK:
    """A client factory (``make_client``) whose clients answer queries with its replies.

    Replies are taken in order by whichever of its clients gets a query (a session's
    next client, after its CLI was closed, answers the next reply). It keeps every
    client it made, so a test can see what they were asked.
    """

    def __init__(self, *replies: Reply, connect_error: BaseException | None = None) -> None:
        self.replies: deque[Reply] = deque(replies)
        #: Raised by every ``connect()`` while set (a CLI that fails to start).
        self.connect_error = connect_error
        #: How long ``connect()`` takes once the process is up (the CLI's start-up).
        self.connect_delay = 0.0
        self.clients: list[FakeClient] = []

    def __call__(self, options: Any = None) -> FakeClient:
        client = FakeClient(options, self)
        self.clients.append(client)
        return client

    def answer(self, *replies: Reply) -> None:
        """Queue more replies, for later queries."""
        self.replies.extend(replies)

    @property
    def queries(self) -> list[str]:
        """Every prompt any of its clients was sent, in order."""
        return [prompt for client in self.clients for prompt in client.queries]

    @property
    def interrupts(self) -> int:
        """How many times any of its clients was interrupted."""
        return sum(client.interrupts for client in self.clients)

    def _next_reply(self, prompt: str) -> Reply:
        if not self.replies:
            raise AssertionError(f"FakeSDK has no reply for the query {prompt!r}")
        return self.replies.popleft()


class FakeClient:
    """The surface of ``ClaudeSDKClient`` the core uses, replaying :class:`Reply` objects."""

    def __init__(self, options: Any, sdk: FakeSDK) -> None:
        self.options = options
        self.sdk = sdk
        self.connected = False
        self.queries: list[str] = []
        self.interrupts = 0
        self.disconnects = 0
        self._reply: Reply | None = None
        self._interrupted = asyncio.Event()
        self._disconnected = asyncio.Event()

    async def connect(self, prompt: object = None) -> None:
        """Start, taking the factory's ``connect_delay``, or raise its ``connect_error``.

        As in the SDK, the process is up (``connected``) during that delay, and a
        ``connect()`` that fails or is cancelled then disconnects before it raises.
        """
        if self.sdk.connect_error is not None:
            raise self.sdk.connect_error
        self.connected = True
        self._disconnected.clear()
        try:
            await asyncio.sleep(self.sdk.connect_delay)
        except BaseException:
            await self.disconnect()
            raise

    async def query(self, prompt: str, session_id: str = "default") -> None:
        """Take the factory's next reply for ``prompt``."""
        self._require_connection()
        self.queries.append(prompt)
        self._reply = self.sdk._next_reply(prompt)
        self._interrupted.clear()

    async def receive_response(self) -> AsyncIterator[Message]:
        """The current reply's messages, through its ``ResultMessage`` if it has one."""
        self._require_connection()
        reply, self._reply = self._reply, None
        if reply is None:
            return
        shown = reply._shown(reply.messages)
        hang_at = None if reply.hang_after is None else min(reply.hang_after, len(shown))
        for count in range(len(shown) + 1):
            if count == hang_at:
                await self._woken(reply, timeout=None)
            elif reply.delay and count < len(shown):
                await self._woken(reply, timeout=reply.delay)
            if self._disconnected.is_set():
                return
            if self._interrupted.is_set() and not reply.ignore_interrupt:
                for tail in reply._shown(reply.on_interrupt):
                    yield tail
                    if isinstance(tail, ResultMessage):
                        return
                return
            if count == len(shown):
                return
            yield shown[count]
            if isinstance(shown[count], ResultMessage):
                return

    async def interrupt(self) -> None:
        """Ask the running reply to end (see :class:`Reply`)."""
        self._require_connection()
        self.interrupts += 1
        self._interrupted.set()

    async def disconnect(self) -> None:
        """End any stream at once."""
        self.disconnects += 1
        self.connected = False
        self._disconnected.set()

    async def _woken(self, reply: Reply, *, timeout: float | None) -> None:
        """Wait ``timeout`` seconds (None: for ever) or until a disconnect or a heeded
        interrupt."""
        waits = [asyncio.ensure_future(self._disconnected.wait())]
        if not reply.ignore_interrupt:
            waits.append(asyncio.ensure_future(self._interrupted.wait()))
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    def _require_connection(self) -> None:
        if not self.connected:
            raise CLIConnectionError("Not connected. Call connect() first.")
