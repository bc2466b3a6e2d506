"""Frames reach the session's owner, whichever server the socket is on.

A socket's frames for a session go through its :class:`SessionHandle`. When this
server owns the session (its runner holds the lease), the runner is called directly;
when another server does, the frame is sent to that server's channel on the channel
layer (:func:`chat.cluster.keys.server_channel`) and its answer (the frames for this
socket alone, or the error) comes back on this server's channel. When nobody owns the
session, this server takes its lease and starts its runner. Either way the socket's
events come from this server's stream of the session, so every socket of a session,
on every server, receives the same events in the same order.

The :class:`SessionRouter` also watches the sessions this server has sockets of but
does not own: when their owner's lease is gone (the owner died, or left), it takes the
session over, so its sockets learn at once how an interrupted turn ended.

On one process without Redis the same code runs: every lease is this process's, so
nothing is ever routed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer
from django.conf import settings
from redis.exceptions import RedisError

from chat import metrics
from chat.cluster.keys import server_channel
from chat.exceptions import ChatError, InternalError, SessionUnavailable
from chat.outage import Outage
from chat.protocol import (
    CLIENT_FRAMES,
    ClientFrame,
    InitFrame,
    MessageFrame,
    ServerFrame,
    StopFrame,
    UndoFrame,
    error_frame_for,
)
from chat.session.event_stream import Send, SessionEvents
from chat.session.ownership import LeaseLost
from chat.session.registry import ClientAtLimit, OwnedElsewhere, SessionRegistry
from chat.session.runner import SessionRunner
from workspaces.exceptions import WorkspaceError

logger = logging.getLogger("dashboard_ai.chat")

#: How long a server waits for the owner to answer a routed frame. The owner answers
#: once the frame is taken (a turn queued, a stop asked, files written), not when the
#: turn ends; an init with a large upload is the slowest. Below daphne's 10 s
#: application close timeout: a socket that closes while its frame waits must still
#: get its disconnect handled (its counts and holds given back).
ROUTE_TIMEOUT_SECONDS = 8.0

#: How long a server waits for another to release one of a client's sessions.
RELEASE_TIMEOUT_SECONDS = 5.0

#: How often a server looks again at who owns a session it is waiting on.
HANDOVER_POLL_SECONDS = 0.05


class RoutedError(ChatError):
    """An error the owner answered a routed frame with, raised again on this server."""

    def __init__(self, code: str, message: str, recoverable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.recoverable = recoverable


class SessionHandle:
    """One socket's hold on one session: its frames go to the owner, its events come here.

    The stream sends the socket's events to :meth:`deliver`, the handle's own callable:
    a socket that opens a session again is attached anew before its earlier handle
    lets go, and the stream tells the two apart.
    """

    def __init__(
        self,
        router: SessionRouter,
        session_id: str,
        send: Send,
        stream: SessionEvents,
        *,
        client: str,
        user: str = "",
    ) -> None:
        self.router = router
        self.session_id = session_id
        self.send = send
        self.stream = stream
        self.client = client
        self.user = user
        self.holding: SessionRunner | None = None  # held while this socket is attached

    async def deliver(self, event: dict[str, Any]) -> None:
        """Send one of the session's events to the socket."""
        await self.send(event)

    async def dispatch(self, frame: MessageFrame | StopFrame | UndoFrame) -> None:
        """Run a ``message``, ``stop`` or ``undo`` where the session's owner is; this
        socket gets the owner's answer (a stored outcome, an error), every socket the
        session's events."""
        answer = await self.router.run(self, frame)
        for reply in answer.get("frames", ()):
            await self.send(reply)

    def reply(self, frame: ServerFrame) -> dict[str, Any]:
        """``frame`` as a reply to this socket alone (the session's current seq)."""
        return self.stream.stamp(frame)

    @property
    def closed(self) -> bool:
        """Whether the session was ended here (deleted): the socket must ``init`` again."""
        return self.router.registry.streams.get(self.session_id) is not self.stream

    async def leave(self) -> None:
        """The socket is gone: stop sending to it and let go of the session's stream."""
        runner = self.router.registry.live(self.session_id)
        if runner is not None and runner.stream is self.stream:
            runner.leave(self.deliver)
        else:
            self.stream.detach(self.deliver)
        await self.router.registry.streams.release(self.session_id, self.stream)


class SessionRouter:
    """Where each frame of a session runs, and the takeover of orphaned sessions."""

    def __init__(self, registry: SessionRegistry, layer: BaseChannelLayer) -> None:
        self.registry = registry
        self.layer = layer
        self.channel = server_channel(registry.ownership.server_id)
        self._answers: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Listen on this server's channel and watch for orphaned sessions."""
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._listen(), name="router:listen"),
                asyncio.create_task(self._watch(), name="router:watch"),
            ]

    async def close(self) -> None:
        """Stop listening and watching."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- a socket's frames -------------------------------------------------------

    async def open(
        self, session_id: str, send: Send, frame: InitFrame, *, client: str, user: str = ""
    ) -> SessionHandle:
        """Answer a socket's ``init`` with ``ready`` and attach it to the session's events.

        The owner syncs the init's files and makes ``ready``; the socket then gets every
        event after the seq the owner gave (all those after ``lastSeq`` when they are
        still held), exactly once and in order, from this server's stream.
        """
        stream = self.registry.streams.hold(session_id)
        handle = SessionHandle(self, session_id, send, stream, client=client, user=user)
        try:
            answer = await self.run(handle, frame)
            ready, start = answer["frames"][0], answer["start"]
            await send(ready)
            await stream.attach(handle.deliver, after=start)
        except BaseException:
            await self.registry.streams.release(session_id, stream)
            raise
        finally:
            if handle.holding is not None:
                handle.holding.unhold()
                handle.holding = None
        return handle

    async def run(self, handle: SessionHandle, frame: ClientFrame) -> dict[str, Any]:
        """:meth:`_run`, with Redis or the channel layer out of reach answered as
        :class:`SessionUnavailable` (recoverable) rather than as a server error."""
        try:
            return await self._run(handle, frame)
        except (RedisError, ChannelFull, OSError, LeaseLost) as exc:
            logger.warning(
                "a frame could not reach the session's owner",
                extra={"sessionId": handle.session_id, "error": type(exc).__name__},
            )
            raise SessionUnavailable(
                "The session cannot be reached right now; try again."
            ) from None

    async def _run(self, handle: SessionHandle, frame: ClientFrame) -> dict[str, Any]:
        """``frame`` run by the owner, here or elsewhere; the owner's answer.

        An owner that is giving the session up (leaving, or its lease lost) answers
        "not the owner" until its lease is gone; the frame then runs where it is taken.
        """
        session_id = handle.session_id
        deadline = time.monotonic() + ROUTE_TIMEOUT_SECONDS
        while (runner := self.registry.live(session_id)) is None:
            try:
                runner = await self.registry.start(
                    session_id, client=handle.client, user=handle.user
                )
                break
            except ClientAtLimit:
                if not await self._release_elsewhere(handle.client):
                    raise
                # one of the client's sessions elsewhere made room: look again
            except OwnedElsewhere:
                owner = await self.registry.ownership.owner(session_id)
                if owner is None:
                    continue  # released meanwhile: take it
                answer = await self._call(owner, handle, frame)
                if answer is not None:
                    return answer
                if time.monotonic() > deadline:
                    raise SessionUnavailable(
                        "The server running this session is handing it over; try again."
                    ) from None
                await asyncio.sleep(HANDOVER_POLL_SECONDS)  # it is giving the session up
        return await _run_here(runner, frame, handle)

    # --- between servers ---------------------------------------------------------

    async def _call(
        self, owner: str, handle: SessionHandle, frame: ClientFrame
    ) -> dict[str, Any] | None:
        """Send ``frame`` to server ``owner``; its answer (``None``: not the owner)."""
        call = {
            "type": "session.call",
            "client": handle.client,
            "frame": frame.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        metrics.routed.labels("sent").inc()
        try:
            async with asyncio.timeout(ROUTE_TIMEOUT_SECONDS):
                result = await self._ask(owner, call, session_id=handle.session_id)
        except TimeoutError:
            logger.warning(
                "the owner did not answer",
                extra={"sessionId": handle.session_id, "owner": owner},
            )
            raise SessionUnavailable(
                "The server running this session does not answer; try again."
            ) from None
        if result is None:
            return None
        if "error" in result:
            error = result["error"]
            raise RoutedError(error["code"], error["message"], error["recoverable"])
        answered: dict[str, Any] | None = result["answer"]
        return answered

    async def _ask(
        self, server: str, message: dict[str, Any], *, session_id: str | None = None
    ) -> dict[str, Any] | None:
        """Send ``message`` to ``server`` and wait for its answer; with ``session_id``,
        ``None`` once ``server`` no longer owns that session."""
        call_id = uuid.uuid4().hex
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._answers[call_id] = answer
        try:
            await self.layer.send(
                server_channel(server), {**message, "call": call_id, "reply_to": self.channel}
            )
            if session_id is None:
                return await answer
            return await self._answer(answer, server, session_id)
        finally:
            self._answers.pop(call_id, None)

    async def _release_elsewhere(self, client: str) -> bool:
        """Ask the other servers that hold sessions of ``client``, one at a time, to
        release an unattended one (the client is at ``MAX_SESSIONS_PER_CLIENT``)."""
        for server in await self.registry.per_client.holders(client):
            try:
                async with asyncio.timeout(RELEASE_TIMEOUT_SECONDS):
                    result = await self._ask(server, {"type": "session.release", "client": client})
            except TimeoutError:
                continue  # gone or stuck: its counts stop counting when its deadline passes
            if result is not None and result.get("released"):
                return True
        return False

    async def _answer(
        self, answer: asyncio.Future[dict[str, Any]], owner: str, session_id: str
    ) -> dict[str, Any] | None:
        """The owner's answer; ``None`` once ``owner`` no longer holds the session (it
        died or left with the frame unanswered: the frame is run where it goes now)."""
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(answer), HANDOVER_POLL_SECONDS * 10)
            except TimeoutError:
                if await self.registry.ownership.owner(session_id) != owner:
                    return None

    async def _listen(self) -> None:
        """Take the calls routed to this server and the answers to its own calls."""
        serving: set[asyncio.Task[None]] = set()
        outage = Outage("receiving routed frames")
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except Exception as exc:
                await outage.wait(exc)
                continue
            outage.over()
            if message.get("type") in ("session.call", "session.release"):
                serve = self._serve if message["type"] == "session.call" else self._release
                task = asyncio.create_task(serve(message))
                serving.add(task)
                task.add_done_callback(serving.discard)
            elif message.get("type") == "session.answer":
                waiting = self._answers.get(message["call"])
                if waiting is not None and not waiting.done():
                    waiting.set_result(message)

    async def _serve(self, message: dict[str, Any]) -> None:
        """Run a frame another server routed here; answer it."""
        data = message["frame"]
        frame = CLIENT_FRAMES[data["type"]].model_validate(data)
        metrics.routed.labels("served").inc()
        result: dict[str, Any]
        try:
            runner = self.registry.live(frame.session_id)
            answer = None if runner is None else await _run_here(runner, frame)
            result = {"answer": answer}
        except (ChatError, WorkspaceError) as exc:
            result = {"error": _error_fields(exc)}
        except Exception:
            logger.exception("a routed frame failed", extra={"sessionId": frame.session_id})
            result = {"error": _error_fields(InternalError("Internal server error."))}
        await self._reply(message, result)

    async def _release(self, message: dict[str, Any]) -> None:
        """Release an unattended session of the client another server asks room for."""
        try:
            released = await self.registry.release_one_of(message["client"])
        except Exception:
            logger.exception("releasing a session for another server failed")
            released = False
        await self._reply(message, {"released": released})

    async def _reply(self, message: dict[str, Any], result: dict[str, Any]) -> None:
        with contextlib.suppress(Exception):  # the caller gives up after its timeout
            await self.layer.send(
                message["reply_to"], {"type": "session.answer", "call": message["call"], **result}
            )

    # --- takeover ----------------------------------------------------------------

    async def _watch(self) -> None:
        """Take over the sessions this server has sockets of once nobody owns them."""
        interval = min(1.0, settings.SESSION_LEASE_SECONDS / 4)
        outage = Outage("taking a session over")
        while True:
            await asyncio.sleep(interval)
            if self.registry.leaving:
                continue
            for session_id in self.registry.streams.attended():
                if self.registry.live(session_id) is not None:
                    continue
                try:
                    if await self.registry.ownership.owner(session_id) is None:
                        await self.registry.start(session_id, client="")
                        logger.info("session taken over", extra={"sessionId": session_id})
                        metrics.takeovers.inc()
                except OwnedElsewhere:
                    pass  # another server was quicker
                except Exception as exc:
                    await outage.wait(exc)
                else:
                    outage.over()


async def _run_here(
    runner: SessionRunner, frame: ClientFrame, handle: SessionHandle | None = None
) -> dict[str, Any]:
    """Run ``frame`` on this server's runner; the frames for the socket that sent it.

    An ``init`` from a socket of this server (``handle``) leaves the runner held until
    the socket is attached (:meth:`SessionRouter.open`): a runner with a socket on its
    way is not released as unattended.
    """
    frames: list[dict[str, Any]] = []

    async def collect(reply: dict[str, Any]) -> None:
        frames.append(reply)

    if isinstance(frame, InitFrame):
        runner.hold()
        try:
            ready, start = await runner.prepare(frame)
        except BaseException:
            runner.unhold()
            raise
        if handle is None:
            runner.unhold()
        else:
            handle.holding = runner
        return {"frames": [ready], "start": start}
    if isinstance(frame, MessageFrame):
        await runner.submit(collect, frame)
    elif isinstance(frame, StopFrame):
        runner.stop()
    elif isinstance(frame, UndoFrame):
        await runner.undo(frame)
    return {"frames": frames}


def _error_fields(exc: Exception) -> dict[str, Any]:
    """What the caller needs to raise the same error again (see :class:`RoutedError`)."""
    frame = error_frame_for(exc)
    return {"code": frame.code, "message": frame.message, "recoverable": frame.recoverable}
