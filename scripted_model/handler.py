"""The HTTP side: routes, SSE streaming over chunked HTTP/1.1, and the faults."""

from __future__ import annotations

import contextlib
import json
import logging
import select
import socket
import threading
import uuid
from collections.abc import Hashable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from scripted_model import sse
from scripted_model.blocks import Block, TextBlock
from scripted_model.conversation import RequestContext, request_context
from scripted_model.faults import DropConnection, Fault, HttpError, Stall
from scripted_model.recording import RecordedRequest, redact_headers, tool_names
from scripted_model.turns import Script, StopReason, Turn, no_turn_text

logger = logging.getLogger(__name__)

_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class Backend(Protocol):
    """What the handler needs from the server object that owns it."""

    default_script: str
    scripts: Mapping[str, Script]
    chunk_delay: float
    chunks_per_block: int
    stopping: threading.Event

    def record(self, request: RecordedRequest) -> None:
        """Keep a received request."""

    def should_fire(self, fault: Fault, key: Hashable) -> bool:
        """Whether ``fault`` fires for this request (counts the limited ones)."""

    def sent(self, event: str, data: dict[str, Any]) -> None:
        """A streamed event was written to the client."""

    def track(self, connection: socket.socket) -> bool:
        """Register an open connection; False once the server is stopping."""

    def untrack(self, connection: socket.socket) -> None:
        """Forget a closed connection."""


class ModelHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server whose handlers reach the :class:`Backend`.

    Handler threads are not daemons, so ``server_close()`` joins them.
    """

    daemon_threads = False
    block_on_close = True

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        super().__init__(address, MessagesHandler)
        self.backend = backend


class MessagesHandler(BaseHTTPRequestHandler):
    """Answers ``/v1/messages`` and ``/v1/messages/count_tokens``; 404 for the rest."""

    protocol_version = "HTTP/1.1"
    server_version = "scripted-model"
    disable_nagle_algorithm = True
    timeout = 300  # an idle keep-alive connection is closed after this many seconds
    server: ModelHTTPServer

    def setup(self) -> None:
        """Register the connection so that ``stop()`` can close it."""
        super().setup()
        self._tracked = self.server.backend.track(self.connection)

    def handle(self) -> None:
        """Serve requests on this connection unless the server is stopping."""
        if self._tracked:
            super().handle()

    def finish(self) -> None:
        """Forget the connection."""
        try:
            super().finish()
        finally:
            self.server.backend.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        """Send the access log to :mod:`logging` instead of stderr."""
        logger.debug("%s - " + format, self.address_string(), *args)

    def do_POST(self) -> None:  # noqa: N802 (stdlib naming)
        """Route a POST."""
        self._dispatch()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST  # noqa: N815

    # -- routing -------------------------------------------------------------

    def _dispatch(self) -> None:
        try:
            self._route()
        except _CLIENT_GONE:
            self.close_connection = True
        except OSError:
            self.close_connection = True
            logger.debug("connection error", exc_info=True)

    def _route(self) -> None:
        backend = self.server.backend
        url = urlsplit(self.path)
        raw = self._read_body()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = {
            "method": self.command,
            "path": url.path,
            "query": dict(parse_qsl(url.query, keep_blank_values=True)),
            "headers": redact_headers(self.headers.items()),
            "body": body,
            "tools": tool_names(body),
        }
        path = url.path.rstrip("/")
        if self.command != "POST" or path not in ("/v1/messages", "/v1/messages/count_tokens"):
            backend.record(RecordedRequest(**record))
            message = f"scripted model: no route for {self.command} {url.path}"
            self._send_json(404, sse.error_body("not_found_error", message))
            return
        if not isinstance(body, dict):
            backend.record(RecordedRequest(**record))
            message = "scripted model: the body must be a JSON object"
            self._send_json(400, sse.error_body("invalid_request_error", message))
            return
        if path.endswith("/count_tokens"):
            backend.record(RecordedRequest(**record))
            counted = {key: body.get(key) for key in ("system", "messages", "tools")}
            self._send_json(200, {"input_tokens": sse.estimate_tokens(counted)})
            return
        context = request_context(body, default_script=backend.default_script)
        backend.record(RecordedRequest(**record, script=context.script, step=context.step))
        self._messages(body, context)

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            parts: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # -- /v1/messages --------------------------------------------------------

    def _pick_turn(self, context: RequestContext) -> tuple[Turn | None, str]:
        script = self.server.backend.scripts.get(context.script)
        if script is None:
            return None, f"scripted model: unknown script {context.script}"
        if context.step >= len(script.turns):
            return None, no_turn_text(script=context.script, step=context.step)
        return script.turns[context.step], ""

    def _messages(self, body: dict[str, Any], context: RequestContext) -> None:
        backend = self.server.backend
        turn, fallback = self._pick_turn(context)
        fault: Fault | None = None
        if turn is not None and turn.fault is not None:
            fault = turn.fault if backend.should_fire(turn.fault, context.fault_key) else None
        if isinstance(fault, HttpError):
            self._send_http_error(fault)
            return
        blocks: list[Block]
        stop_reason: StopReason = "end_turn"
        if turn is None:
            blocks = [TextBlock(fallback)]
        else:
            try:
                blocks, stop_reason = turn.render(context)
            except Exception as error:  # a broken script must end the exchange, not loop
                logger.exception("turn %s of script %s failed", context.step, context.script)
                blocks = [TextBlock(f"scripted model: turn {context.step} failed: {error!r}")]
                stop_reason = "end_turn"
        resolved = sse.resolve_blocks(blocks)
        model = str(body.get("model") or "scripted-model")
        input_tokens = sse.estimate_tokens(body.get("messages"))
        message_id = sse.new_message_id()
        delay = (
            backend.chunk_delay if turn is None or turn.chunk_delay is None else turn.chunk_delay
        )
        if body.get("stream"):
            events = sse.stream_events(
                resolved,
                message_id=message_id,
                model=model,
                stop_reason=stop_reason,
                input_tokens=input_tokens,
                chunks=backend.chunks_per_block,
            )
            self._stream(events, fault=fault, delay=delay)
        elif isinstance(fault, Stall):
            self._stall()
        elif isinstance(fault, DropConnection):
            self._drop()
        else:
            message = sse.full_message(
                resolved,
                message_id=message_id,
                model=model,
                stop_reason=stop_reason,
                input_tokens=input_tokens,
            )
            self._send_json(200, message)

    def _stream(self, events: Iterable[sse.Event], *, fault: Fault | None, delay: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", _request_id())
        self.end_headers()
        stopping = self.server.backend.stopping
        for sent, (name, data) in enumerate(events):
            if isinstance(fault, Stall) and (sent >= 1 or not fault.after_message_start):
                self._stall()
                return
            if isinstance(fault, DropConnection) and sent >= fault.after_events:
                self._drop()
                return
            if delay > 0 and name == "content_block_delta" and stopping.wait(delay):
                self._drop()
                return
            self._write_chunk(sse.frame(name, data))
            self.server.backend.sent(name, data)
        self._write_chunk(b"")

    def _write_chunk(self, data: bytes) -> None:
        """Write one HTTP chunk; empty ``data`` writes the terminating chunk."""
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if data else b"0\r\n\r\n")

    # -- faults and plain responses -------------------------------------------

    def _stall(self) -> None:
        """Say nothing until the client closes the connection or the server stops."""
        self.close_connection = True
        connection = self.connection
        stopping = self.server.backend.stopping
        while not stopping.wait(0.05):
            readable, _, _ = select.select([connection], [], [], 0)
            if readable:
                try:
                    if not connection.recv(1, socket.MSG_PEEK):
                        return  # the client went away
                except OSError:
                    return
                return  # the client sent something unexpected: give up on it too

    def _drop(self) -> None:
        """Close the connection abruptly, mid-response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_http_error(self, fault: HttpError) -> None:
        headers = {}
        if fault.retry_after is not None:
            headers["retry-after"] = str(fault.retry_after)
        if fault.should_retry is not None:
            headers["x-should-retry"] = "true" if fault.should_retry else "false"
        self._send_json(fault.status, sse.error_body(fault.error_type, fault.message), headers)

    def _send_json(
        self, status: int, payload: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", _request_id())
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _request_id() -> str:
    return "req_" + uuid.uuid4().hex[:24]
