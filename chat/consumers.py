"""The ``/ws/chat`` consumer: parse a frame, call the session runner, send frames.

Nothing here runs a turn: :meth:`SessionRunner.submit` queues it and returns, so
``stop`` and every other frame are read while Claude streams.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any

from channels.consumer import get_handler_name
from channels.db import aclose_old_connections
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from chat import logouts, metrics, owners
from chat.auth import NOBODY, SUBPROTOCOL, Identity, identify_socket
from chat.credential_expiry import CredentialExpiry
from chat.exceptions import (
    ChatError,
    FrameTooLarge,
    InvalidMessage,
    NotInitialized,
    RateLimited,
    ServerBusy,
    TokenExpired,
    Unauthorized,
)
from chat.limits import TokenBucket
from chat.protocol import (
    ClientFrame,
    FrameLimits,
    InitFrame,
    MessageFrame,
    StopFrame,
    UndoFrame,
    error_frame_for,
)
from chat.runtime import Runtime, get_runtime
from chat.send_buffer import SendBuffer, attach_send_buffer
from chat.session.routing import SessionHandle
from workspaces.exceptions import WorkspaceError

logger = logging.getLogger("dashboard_ai.ws")

# Application close codes (autobahn allows 1000 and 3000-4999 only): 4000 + the
# HTTP status or the RFC 6455 code they stand for.
CLOSE_UNAUTHORIZED = 4401
CLOSE_BUSY = 4013
CLOSE_SLOW_READER = 4008  # 1008, policy violation: it let too much pile up unread


def utf8_length(text: str) -> int:
    """How many bytes ``text`` takes in UTF-8, without encoding it when it is ASCII."""
    if text.isascii():  # a flag of the string: no scan, unlike encoding 30 MiB
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


#: The queued closes of old database connections (:meth:`ChatConsumer.dispatch`), kept
#: until they have run.
_closing: set[asyncio.Task[None]] = set()


def _closed(task: asyncio.Task[None]) -> None:
    _closing.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.error("closing old database connections failed", exc_info=task.exception())


class ChatConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Speaks the chat protocol of docs/protocol.md on one socket."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Handle ``message`` without waiting for the ORM thread.

        Channels closes the ORM thread's old database connections before each message
        and waits for it: on the one thread that runs every session's ORM work
        (transcript lines, workspace records), so under load a handshake, a frame or a
        stop waited behind all of it, for seconds. The close is queued here instead,
        before anything this message does, and the one thread runs calls in order: it
        still comes before any ORM call the message leads to.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        closing = asyncio.ensure_future(aclose_old_connections())
        _closing.add(closing)
        closing.add_done_callback(_closed)
        await asyncio.sleep(0)  # the close's first step queues it on the ORM thread
        await handler(message)

    async def connect(self) -> None:
        self.runtime: Runtime = get_runtime()
        self.connection_id = secrets.token_hex(4)  # in every log line about the socket
        self.opened_at = time.monotonic()
        self.sessions: dict[str, SessionHandle] = {}
        self.rate = TokenBucket(settings.CHAT_RATE_PER_SECOND, settings.CHAT_RATE_BURST)
        self.client_address = (self.scope.get("client") or ("unknown",))[0]
        self.counted = False
        self.dropping = False  # closed for not reading: nothing more is sent
        self.send_buffer: SendBuffer | None = None
        self.identity: Identity = NOBODY
        self.names = owners.Names()
        self.expiry = CredentialExpiry(self)
        self.login_group: str | None = None
        offered = self.scope.get("subprotocols") or []
        await self.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        await self.runtime.start()
        self.send_buffer = attach_send_buffer(self.base_send, settings.CHAT_MAX_SEND_BUFFER_BYTES)
        try:
            self.identity = await identify_socket(self.scope)
        except Unauthorized as exc:
            await self.refuse(exc, CLOSE_UNAUTHORIZED)
            return
        limit = settings.MAX_SOCKETS_PER_CLIENT
        if not await self.runtime.per_client.open(self.client_address, limit):
            await self.refuse(ServerBusy("Too many connections from this address."), CLOSE_BUSY)
            return
        self.counted = True
        self.expiry.watch(self.identity.expires_at)
        await self._join_login_group()
        self.runtime.sockets.track(self.close_with)
        logger.info("connection opened", extra=self._who())

    async def refuse(self, exc: ChatError, close_code: int) -> None:
        """Tell the client why in an ``error`` frame, then close the socket."""
        logger.warning("websocket refused", extra={**self._who(), "code": exc.code})
        await self.send_error(exc, None)
        await self.close(code=close_code)

    async def disconnect(self, code: int) -> None:
        if not self.counted:
            return
        self.expiry.cancel()
        if self.login_group is not None:
            await self.channel_layer.group_discard(self.login_group, self.channel_name)
        await self.runtime.per_client.close(self.client_address)
        self.runtime.sockets.forget(self.close_with)
        sessions, self.sessions = self.sessions, {}
        for handle in sessions.values():
            await handle.leave()
        logger.info(
            "connection closed",
            extra={
                **self._who(),
                "closeCode": code,
                "durationMs": round((time.monotonic() - self.opened_at) * 1000),
            },
        )

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        frame: ClientFrame | None = None
        try:
            if not self.counted:
                return  # refused at connect; the close is on its way
            if not self.rate.take():
                raise RateLimited("Too many frames; slow down.")
            if text_data is None:
                raise InvalidMessage("Frames must be JSON text, not binary.")
            limit = settings.CHAT_MAX_FRAME_BYTES
            if len(text_data) > limit or utf8_length(text_data) > limit:
                raise FrameTooLarge(
                    f"The frame is larger than {settings.CHAT_MAX_FRAME_BYTES} bytes."
                )
            frame = await self.runtime.frames.parse(text_data, FrameLimits.from_settings())
            await self.dispatch_frame(frame)
        except (ChatError, WorkspaceError) as exc:
            await self.send_error(exc, frame)
        except Exception:
            logger.exception("frame handling failed", extra=self._who())
            await self.send_error(Exception(), frame)
        finally:
            metrics.frame_in(frame)

    async def dispatch_frame(self, frame: ClientFrame) -> None:
        """Hand one validated frame to the session it names (by the server's id of it:
        see :mod:`chat.owners`)."""
        if self.expiry.expired:
            raise TokenExpired("Your credentials expired; connect again with fresh ones.")
        if isinstance(frame, InitFrame):
            key = await owners.claim(self.identity, frame.session_id)
            self.names.add(key, frame.session_id)
            # A refused init leaves the socket's earlier hold on the session as it was.
            handle = await self.runtime.router.open(
                key,
                self.send_frame,
                frame.model_copy(update={"session_id": key}),
                client=self.client_address,
                user=self.identity.user,
            )
            previous, self.sessions[frame.session_id] = self.sessions.get(frame.session_id), handle
            if previous is not None:
                await previous.leave()
        elif isinstance(frame, MessageFrame | StopFrame | UndoFrame):
            handle = self.session(frame.session_id)
            keyed = frame.model_copy(update={"session_id": handle.session_id})
            if isinstance(frame, MessageFrame):
                with self.expiry.turn_of(handle.session_id):
                    await handle.dispatch(keyed)
            else:
                await handle.dispatch(keyed)

    def session(self, session_id: str) -> SessionHandle:
        """This socket's hold on a session it opened with ``init``."""
        handle = self.sessions.get(session_id)
        if handle is None or handle.closed:
            self.sessions.pop(session_id, None)
            raise NotInitialized(f"Send an 'init' for session {session_id!r} first.")
        return handle

    async def close_with(self, code: int) -> None:
        """Close the socket with ``code`` (used by the graceful shutdown)."""
        await self.close(code=code)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        """Send one of a session's frames (an event, or the owner's answer to a frame)."""
        await self._send(frame)
        self.expiry.saw(frame)

    async def _send(self, frame: dict[str, Any]) -> None:
        """Send one wire frame as JSON text, unless the client has stopped reading.

        A client that lets more than ``CHAT_MAX_SEND_BUFFER_BYTES`` pile up unread is
        closed with :data:`CLOSE_SLOW_READER` (see :mod:`chat.send_buffer`).
        """
        if self.dropping:
            return
        text = json.dumps(self.names.outgoing(frame), ensure_ascii=False)
        size = utf8_length(text)
        if self.send_buffer is not None and not self.send_buffer.admit(size):
            self.dropping = True
            logger.warning(
                "websocket closed: the client does not read",
                extra={**self._who(), "queuedBytes": self.send_buffer.queued},
            )
            await self.close(code=CLOSE_SLOW_READER)
            return
        await self.send(text_data=text)
        metrics.frame_out(frame.get("type"))

    async def send_error(self, exc: Exception, about: ClientFrame | None) -> None:
        """Answer this socket alone with an ``error`` about the frame it sent.

        The session's seq is not advanced: the error is not an event of the session.
        """
        error = error_frame_for(exc)
        fields = {**self._who(), "code": error.code}
        if about is not None:  # the server's id, as in the session's lines ("turn ended")
            fields["sessionId"] = owners.server_id(self.identity, about.session_id)
        level = logging.ERROR if error.code == "INTERNAL" else logging.WARNING
        logger.log(level, "error sent", extra=fields)
        if isinstance(about, MessageFrame) and about.client_message_id:
            error = error.model_copy(update={"client_message_id": about.client_message_id})
        handle = self.sessions.get(about.session_id) if about else None
        if handle is not None:
            await self._send(handle.reply(error))
        else:
            session_id = about.session_id if about else None
            await self._send(error.model_copy(update={"session_id": session_id}).to_wire())
        metrics.error_answered(error.code)  # a refusal, when the code is one

    async def _join_login_group(self) -> None:
        """A socket of a Django login hears of its logout (:mod:`chat.logouts`)."""
        session = self.scope.get("session")
        session_key = getattr(session, "session_key", None)
        if settings.AUTH_MODE == "django" and session_key and self.channel_layer is not None:
            self.login_group = logouts.group_for(session_key)
            await self.channel_layer.group_add(self.login_group, self.channel_name)

    async def login_ended(self, event: dict[str, Any]) -> None:
        """The Django login this socket connected with logged out: end it as expired."""
        logger.info("websocket login ended", extra=self._who())
        self.expiry.expire_now()

    async def end_expired(self) -> None:
        """The socket's credentials expired and its turns have ended: say so and close."""
        logger.info("websocket credentials expired", extra=self._who())
        await self.send_error(TokenExpired("Your credentials expired; connect again."), None)
        await self.close(code=CLOSE_UNAUTHORIZED)

    def _who(self) -> dict[str, Any]:
        client = self.scope.get("client") or ("?", 0)
        headers = dict(self.scope.get("headers") or [])
        return {
            "connectionId": self.connection_id,
            "client": f"{client[0]}:{client[1]}",
            "origin": headers.get(b"origin", b"").decode("latin-1")[:200],
        }
