"""The wire schema of ``/ws/chat``: one pydantic model per frame, both directions.

This module is the single source of truth: incoming frames are validated by these
models, outgoing frames are built from them, and ``docs/protocol.md`` is checked
against them by a test. Field names are snake_case in Python and camelCase on the
wire.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel

from chat.exceptions import InvalidJson, InvalidMessage, UnknownType
from workspaces.content import encode_for_wire
from workspaces.exceptions import PayloadTooLarge, short_repr
from workspaces.paths import validate_session_id

PROTOCOL_VERSION = 1
MAX_LOC_PART = 60  # a file path as a key of ``files`` can be long: name, don't echo
MAX_ERROR_MESSAGE = 500


class WireModel(BaseModel):
    """camelCase on the wire; unknown incoming fields are ignored (forward compatible)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )


# --- client to server ----------------------------------------------------------


class ClientModel(WireModel):
    """Incoming: only the camelCase wire names are read, never the Python ones."""

    model_config = ConfigDict(populate_by_name=False)


class EncodedFile(ClientModel):
    """A file's content with an explicit encoding (``base64`` for binary data)."""

    content: str
    encoding: Literal["base64", "utf-8"] = "utf-8"


FileContent = str | EncodedFile


def file_content(data: bytes) -> FileContent:
    """A file's bytes as sent on the wire: text as a string, anything else as base64."""
    encoded = encode_for_wire(data)
    return encoded if isinstance(encoded, str) else EncodedFile.model_validate(encoded)


def file_contents(files: Mapping[str, bytes]) -> dict[str, FileContent]:
    """Files (path to bytes) as sent on the wire, sorted by path."""
    return {path: file_content(data) for path, data in sorted(files.items())}


ClientMessageId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class ClientFrame(ClientModel):
    """Fields every client frame has."""

    session_id: str


Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class InitFrame(ClientFrame):
    """Open or re-open a session, (re)writing its workspace from ``files``."""

    type: Literal["init"]
    files: dict[str, FileContent] | None = None
    last_seq: Annotated[int, Field(ge=0)] | None = None
    base_hashes: dict[str, Sha256] | None = None


class MessageFrame(ClientFrame):
    """A chat message: runs one turn of the agent."""

    type: Literal["message"]
    message: Annotated[str, StringConstraints(min_length=1)]
    files: dict[str, FileContent] | None = None
    client_message_id: ClientMessageId | None = None
    base_hashes: dict[str, Sha256] | None = None


class StopFrame(ClientFrame):
    """Stop the turn running in the session, if any."""

    type: Literal["stop"]


class UndoFrame(ClientFrame):
    """Restore the files and the conversation to before the last ``turns`` turns."""

    type: Literal["undo"]
    turns: Annotated[int, Field(ge=1, le=100)] = 1


CLIENT_FRAMES: dict[str, type[ClientFrame]] = {
    "init": InitFrame,
    "message": MessageFrame,
    "stop": StopFrame,
    "undo": UndoFrame,
}


@dataclass(frozen=True, slots=True)
class FrameLimits:
    """The limits a client frame is parsed under (read from settings by the caller).

    Plain data, so that a frame can be parsed in another process (see
    :mod:`chat.frame_parser`).
    """

    max_message_chars: int
    max_files: int
    max_file_bytes: int
    max_total_bytes: int

    @classmethod
    def from_settings(cls) -> FrameLimits:
        """The limits configured in ``django.conf.settings``."""
        return cls(
            max_message_chars=int(settings.CHAT_MAX_MESSAGE_CHARS),
            max_files=int(settings.WORKSPACE_MAX_FILES),
            max_file_bytes=int(settings.WORKSPACE_MAX_FILE_BYTES),
            max_total_bytes=int(settings.WORKSPACE_MAX_TOTAL_BYTES),
        )


def parse_client_frame(text: str, limits: FrameLimits) -> ClientFrame:
    """Validate one text frame from a client, raising a :class:`ChatError` subclass.

    The file count and sizes are checked on the parsed JSON before the schema is: a
    frame with millions of ``files`` entries is refused before the costly part.
    """
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # ValueError: also integers past Python's digit cap
        raise InvalidJson("The frame is not valid JSON.") from None
    if not isinstance(data, dict):
        raise InvalidMessage("A frame must be a JSON object with a 'type'.")
    frame_type = data.get("type")
    if not isinstance(frame_type, str):
        raise InvalidMessage("A frame must have a string 'type'.")
    model = CLIENT_FRAMES.get(frame_type)
    if model is None:
        raise UnknownType(f"Unknown frame type {frame_type[:40]!r}.")
    session_id = data.get("sessionId")
    if not isinstance(session_id, str):
        raise InvalidMessage("A frame must have a string 'sessionId'.")
    validate_session_id(session_id)
    message = data.get("message") if frame_type == "message" else None
    if isinstance(message, str) and len(message) > limits.max_message_chars:
        raise InvalidMessage(f"The message is longer than {limits.max_message_chars} characters.")
    _check_sync_size(data, limits)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidMessage(describe_validation_error(exc)) from None


def _check_sync_size(data: dict[str, Any], limits: FrameLimits) -> None:
    """Refuse ``files`` (and ``baseHashes``) over the sync limits, from cheap lower bounds.

    The workspace service checks the exact decoded sizes again; these bounds never
    refuse what it would accept (text is at least one byte a character, base64 at
    least three bytes for four characters, less padding).
    """
    for key in ("files", "baseHashes"):
        entries = data.get(key)
        if isinstance(entries, dict) and len(entries) > limits.max_files:
            what = "number of files" if key == "files" else f"number of {key} entries"
            raise PayloadTooLarge(what, limits.max_files, len(entries))
    files = data.get("files")
    if not isinstance(files, dict):
        return
    total = 0
    for path, content in files.items():
        size = _least_decoded_size(content)
        if size > limits.max_file_bytes:
            what = f"size of {short_repr(path)} in bytes"
            raise PayloadTooLarge(f"{what} (at least)", limits.max_file_bytes, size)
        total += size
    if total > limits.max_total_bytes:
        raise PayloadTooLarge("total size in bytes (at least)", limits.max_total_bytes, total)


def _least_decoded_size(content: object) -> int:
    """A lower bound of the bytes ``content`` decodes to (0 if it is malformed)."""
    if isinstance(content, str):
        return len(content)
    if isinstance(content, dict) and isinstance(content.get("content"), str):
        text = content["content"]
        if content.get("encoding") == "base64":
            return max(0, len(text) * 3 // 4 - 2)
        return len(text)
    return 0


def describe_validation_error(exc: ValidationError) -> str:
    """A short account of what is wrong, naming fields but never echoing values."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False)[:5]:
        where = ".".join(str(part)[:MAX_LOC_PART] for part in error["loc"]) or "frame"
        problems.append(f"{where}: {error['msg']}")
    return ("Invalid frame: " + "; ".join(problems))[:MAX_ERROR_MESSAGE]


# --- server to client ----------------------------------------------------------


class ServerFrame(WireModel):
    """Fields every server frame has; the session runner stamps them."""

    type: str
    session_id: str | None = None
    seq: int = 0
    client_message_id: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The JSON object sent on the socket (camelCase, absent optionals dropped)."""
        data = self.model_dump(by_alias=True, exclude_none=True)
        data.setdefault("sessionId", None)
        return data


class Conflict(WireModel):
    """A file changed both in the editor and on the server since the editor's version."""

    path: str
    server: FileContent
    client: FileContent


class ReadyFrame(ServerFrame):
    """The session is open: its files and whether an earlier conversation exists."""

    type: Literal["ready"] = "ready"
    files: list[str]
    resumed: bool
    message_count: int
    protocol_version: int = PROTOCOL_VERSION
    replay_truncated: bool = False
    contents: dict[str, FileContent] | None = None
    hashes: dict[str, str] = Field(default_factory=dict)
    conflicts: list[Conflict] | None = None


class StreamFrame(ServerFrame):
    """New text from Claude (only the new part)."""

    type: Literal["stream"] = "stream"
    text: str


class ToolStartFrame(ServerFrame):
    """Claude started a tool; file paths in ``input`` are relative to the workspace."""

    type: Literal["tool_start"] = "tool_start"
    tool_use_id: str
    tool: str
    input: dict[str, Any]


class ToolResultFrame(ServerFrame):
    """A tool finished."""

    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    tool: str
    is_error: bool
    summary: str


class FileChangedFrame(ServerFrame):
    """A Write or Edit succeeded; the file's new content, so the editor can update."""

    type: Literal["file_changed"] = "file_changed"
    path: str
    content: FileContent
    hash: str


class StatusFrame(ServerFrame):
    """Progress that is not text: e.g. the model API is being retried."""

    type: Literal["status"] = "status"
    status: Literal["retrying"]
    attempt: int | None = None
    max_attempts: int | None = None
    message: str


class Usage(WireModel):
    """Token counts of a turn."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0


class CompleteFrame(ServerFrame):
    """The turn ended: the files it created or changed, and what it cost."""

    type: Literal["complete"] = "complete"
    files: dict[str, FileContent]
    deleted: list[str]
    result: str
    stopped: bool
    usage: Usage
    cost_usd: float
    duration_ms: int
    hashes: dict[str, str] = Field(default_factory=dict)
    conflicts: list[Conflict] | None = None


class UndoneFrame(ServerFrame):
    """An undo happened: the files it wrote back and the ones it deleted."""

    type: Literal["undone"] = "undone"
    files: dict[str, FileContent]
    deleted: list[str]
    turns: int
    message_count: int


class ErrorFrame(ServerFrame):
    """Something went wrong; ``code`` is stable, ``message`` is for a person."""

    type: Literal["error"] = "error"
    code: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    message: str
    recoverable: bool
    conflicts: list[Conflict] | None = None


SERVER_FRAMES: tuple[type[ServerFrame], ...] = (
    ReadyFrame,
    StreamFrame,
    ToolStartFrame,
    ToolResultFrame,
    FileChangedFrame,
    StatusFrame,
    CompleteFrame,
    UndoneFrame,
    ErrorFrame,
)


def error_frame_for(exc: Exception, *, session_id: str | None = None) -> ErrorFrame:
    """The ``error`` frame for a known error type (chat or workspace error)."""
    code = getattr(exc, "code", "INTERNAL")
    message = getattr(exc, "message", None) or "Internal server error."
    recoverable = getattr(exc, "recoverable", True)
    return ErrorFrame(session_id=session_id, code=code, message=message, recoverable=recoverable)
