"""A terminal client of ``/ws/chat``: one turn of a session, as ``manage.py chat`` runs it.

It speaks only the documented protocol (docs/protocol.md), over the ``websockets``
library, so it works against any server, local or remote, and shows a developer what a
frontend receives.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from websockets import ConnectionClosed
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

DEFAULT_URL = "ws://127.0.0.1:3000/ws/chat"

#: A file's content on the wire: text, or ``{"content": <base64>, "encoding": "base64"}``.
FileContent = str | dict[str, str]


class TurnFailed(Exception):
    """The turn did not complete: an ``error`` frame (its ``code``) or a failed connection."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(f"{code}: {message}" if code else message)
        self.code = code


class UnsafePath(ValueError):
    """A path the server sent that would land outside the local folder."""


def checked_path(path: str) -> PurePosixPath:
    """``path`` as a relative path that stays inside any folder, else :class:`UnsafePath`.

    The server only sends paths its own gate accepted; this check is the client's, so
    that a faulty or hostile server cannot write outside ``--out``.
    """
    if (
        path.startswith("/")
        or "\0" in path
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise UnsafePath(f"refused the path {path!r}: not a plain relative path")
    return PurePosixPath(path)


def _inside(root: Path, path: str) -> Path:
    """Where ``path`` goes under ``root``, refused if a symlink there leads outside it."""
    target = root / checked_path(path)
    if not target.resolve().is_relative_to(root.resolve()):
        raise UnsafePath(f"refused the path {path!r}: it leads outside {root}")
    return target


def folder_files(folder: Path) -> dict[str, FileContent]:
    """Every regular file under ``folder``, as ``init``'s ``files``: UTF-8 text as a
    string, other bytes as base64. Nothing is left out: what the server refuses, it says."""
    files: dict[str, FileContent] = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        name = path.relative_to(folder).as_posix()
        try:
            files[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            files[name] = {"content": base64.b64encode(data).decode("ascii"), "encoding": "base64"}
    return files


def content_bytes(content: Any) -> bytes:
    """The bytes of a file content from the server (either form of docs/protocol.md)."""
    if isinstance(content, str):
        return content.encode("utf-8")
    if content.get("encoding") == "base64":
        try:
            return base64.b64decode(content["content"], validate=True)
        except binascii.Error as exc:
            raise TurnFailed(f"the server sent invalid base64: {exc}") from None
    return str(content["content"]).encode("utf-8")


def write_changes(out: Path, files: Mapping[str, Any], deleted: Iterable[str]) -> None:
    """Write ``complete``'s changed files into ``out`` and remove its deleted ones.

    Every path is checked before anything is written, so a refused path writes nothing.
    """
    writes = [(_inside(out, path), content_bytes(content)) for path, content in files.items()]
    removals = [_inside(out, path) for path in deleted]
    for target, data in writes:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    for target in removals:
        target.unlink(missing_ok=True)


class TurnPrinter:
    """What a person reads of a turn: text as it streams, and a line per tool, status,
    error and the end, each with the seconds since the message was sent."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self._write = write
        self._started = time.monotonic()
        self._mid_line = False

    def line(self, text: str) -> None:
        """``text`` on a line of its own, after any text streamed so far."""
        elapsed = time.monotonic() - self._started
        self._write(("\n" if self._mid_line else "") + f"[{elapsed:.1f}s] {text}\n")
        self._mid_line = False

    def show(self, frame: Mapping[str, Any]) -> None:
        """Print one frame of the turn; frames a person need not see print nothing."""
        kind = frame.get("type")
        if kind == "stream":
            self._write(frame["text"])
            self._mid_line = not frame["text"].endswith("\n")
        elif kind == "tool_start":
            self.line(f"> {frame['tool']} {_tool_target(frame.get('input') or {})}".rstrip())
        elif kind == "tool_result":
            outcome = "failed" if frame.get("isError") else "done"
            self.line(f"< {frame['tool']} {outcome}: {frame.get('summary', '')}")
        elif kind == "status":
            attempt = f" (attempt {frame['attempt']})" if "attempt" in frame else ""
            self.line(f"{frame.get('status')}{attempt}: {frame.get('message', '')}")
        elif kind == "complete":
            usage = frame.get("usage") or {}
            self.line(
                ("stopped" if frame.get("stopped") else "complete")
                + f" in {frame.get('durationMs', 0) / 1000:.1f} s,"
                f" {usage.get('inputTokens', 0)} input / {usage.get('outputTokens', 0)}"
                f" output tokens, ${frame.get('costUsd', 0):.4f}"
            )
        elif kind == "error":
            self.line(f"error {frame.get('code')}: {frame.get('message', '')}")


def _tool_target(tool_input: Mapping[str, Any]) -> str:
    """The one input field that says what a tool works on (a path or a pattern)."""
    for key in ("file_path", "path", "pattern"):
        if isinstance(tool_input.get(key), str):
            return str(tool_input[key])
    return ""


def _subprotocols(token: str) -> list[Subprotocol]:
    """``dashboard-ai``, and the token beside it as ``auth.<token>`` (docs/protocol.md,
    Handshake): in a header, not the URL, so it stays out of access logs."""
    offered = [Subprotocol("dashboard-ai")]
    if token:
        offered.append(Subprotocol(f"auth.{token}"))
    return offered


async def _send(ws: ClientConnection, frame: Mapping[str, Any]) -> None:
    """Send ``frame``; on a socket already closed, nothing: the next read says why (a
    refused socket's ``error`` frame arrives before its close, else the close code)."""
    with contextlib.suppress(ConnectionClosed):
        await ws.send(json.dumps(frame))


async def _next_frame(ws: ClientConnection) -> dict[str, Any]:
    try:
        raw = await ws.recv()
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else 1006
        raise TurnFailed(f"the server closed the connection (close code {code})") from None
    try:
        frame = json.loads(raw)
    except ValueError:
        frame = None
    if not isinstance(frame, dict):
        raise TurnFailed(f"the server sent a frame that is not a JSON object: {raw!r:.200}")
    return frame


async def run_turn(
    *,
    url: str,
    token: str,
    session_id: str,
    message: str,
    files: Mapping[str, FileContent] | None,
    write: Callable[[str], None],
    stop_requested: asyncio.Event,
) -> dict[str, Any]:
    """Open ``session_id`` (with ``files``), send ``message`` and show its turn through
    ``write``; the turn's ``complete`` frame, or :class:`TurnFailed`.

    When ``stop_requested`` is set during the turn, ``stop`` is sent and the turn's
    terminal frame is still awaited: the server always sends exactly one.
    """
    try:
        ws = await connect(url, subprotocols=_subprotocols(token), max_size=None)
    except (OSError, TimeoutError) as exc:
        raise TurnFailed(f"cannot connect to {url}: {exc}") from None
    async with ws:
        init: dict[str, Any] = {"type": "init", "sessionId": session_id}
        if files is not None:
            init["files"] = dict(files)
        await _send(ws, init)
        ready = await _next_frame(ws)
        if ready.get("type") == "error":
            raise TurnFailed(ready.get("message", ""), code=ready.get("code"))
        if stop_requested.is_set():
            raise TurnFailed("interrupted before the message was sent")
        client_message_id = f"cli-{uuid.uuid4().hex}"
        await _send(
            ws,
            {
                "type": "message",
                "sessionId": session_id,
                "message": message,
                "clientMessageId": client_message_id,
            },
        )
        view = TurnPrinter(write)
        stopper = asyncio.create_task(_stop_when_asked(ws, session_id, stop_requested, view))
        try:
            while True:
                frame = await _next_frame(ws)
                # Frames of other turns of the session (another tab's) are not this one's;
                # an error without an id is a reply to this socket's own frame.
                mine = frame.get("clientMessageId") == client_message_id
                if not mine and not (
                    frame.get("type") == "error" and "clientMessageId" not in frame
                ):
                    continue
                view.show(frame)
                if frame.get("type") == "error":
                    raise TurnFailed(frame.get("message", ""), code=frame.get("code"))
                if frame.get("type") == "complete":
                    return frame
        finally:
            stopper.cancel()


async def _stop_when_asked(
    ws: ClientConnection, session_id: str, stop_requested: asyncio.Event, view: TurnPrinter
) -> None:
    await stop_requested.wait()
    view.line("stopping the turn (Ctrl-C again to quit without waiting)")
    await _send(ws, {"type": "stop", "sessionId": session_id})
