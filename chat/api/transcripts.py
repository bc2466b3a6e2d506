"""Sessions over HTTP: their facts, their conversation, their removal.

The conversation is read back from the database, from the store the agent mirrors its
transcripts to (:class:`chat.agent.transcript_store.TranscriptStore`), through the
SDK's own store reader (``get_session_messages_from_store``), which builds the
conversation chain: what any server on the same database shows, whatever its disk
holds. Tool activity goes through :class:`chat.events.TurnTranslator`, so paths and
summaries read exactly as they did in the ``tool_start`` and ``tool_result`` frames.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from claude_agent_sdk import (
    AssistantMessage,
    ContentBlock,
    SessionMessage,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
    get_session_messages_from_store,
    project_key_for_directory,
)

from chat import owners
from chat.agent import options
from chat.agent.transcript_store import TranscriptStore
from chat.auth import Identity
from chat.events import TurnTranslator
from chat.exceptions import ChatError
from chat.models import ChatSession
from chat.protocol import ToolResultFrame, ToolStartFrame, WireModel
from chat.session.registry import SessionRegistry
from workspaces import services as workspaces
from workspaces import undo_states
from workspaces.exceptions import WorkspaceNotFound
from workspaces.paths import validate_session_id
from workspaces.trees import remove_tree

logger = logging.getLogger("dashboard_ai.chat")

# What the CLI writes as a user message when a turn is stopped; not something typed.
INTERRUPT_MARKER = "[Request interrupted by user"
# The model name of messages the CLI makes up itself (API error notices and the like).
SYNTHETIC_MODEL = "<synthetic>"


class SessionNotFound(ChatError):
    """No session with this id exists on the server."""

    code = "SESSION_NOT_FOUND"

    def __init__(self, session_id: str) -> None:
        super().__init__(f"There is no session {session_id!r}.")
        self.session_id = session_id


class SessionSummary(WireModel):
    """What the server remembers about a session, and the files of its workspace."""

    session_id: str
    created_at: datetime
    last_active_at: datetime
    message_count: int
    cost_usd: float
    files: list[str]


class ToolActivity(WireModel):
    """One tool call of an assistant message, with its result once there is one."""

    tool_use_id: str
    tool: str
    input: dict[str, Any]
    is_error: bool | None = None
    summary: str | None = None


class HistoryMessage(WireModel):
    """One message of the conversation as the chat shows it."""

    role: Literal["user", "assistant"]
    text: str
    tools: list[ToolActivity]
    uuid: str


class SessionHistory(WireModel):
    """A session's conversation, oldest message first."""

    session_id: str
    messages: list[HistoryMessage]


class SessionListing(WireModel):
    """One of the caller's sessions, as ``GET /api/sessions`` lists it."""

    session_id: str
    created_at: datetime
    last_active_at: datetime
    message_count: int
    cost_usd: float


class SessionList(WireModel):
    """The caller's sessions, most recently active first."""

    sessions: list[SessionListing]


# --- Reading ---------------------------------------------------------------------


async def session_summary(*, session_id: str) -> SessionSummary:
    """The session's row and its workspace files; :class:`SessionNotFound` if unknown."""
    record = await _record(session_id)
    try:
        files = await workspaces.list_files(session_id=session_id)
    except WorkspaceNotFound:  # removed by the cleanup command: the row outlives it
        files = []
    return SessionSummary(
        session_id=owners.client_id(record),
        created_at=record.created_at,
        last_active_at=record.last_active_at,
        message_count=record.message_count,
        cost_usd=record.cost_usd,
        files=files,
    )


async def session_list(identity: Identity) -> SessionList:
    """The sessions ``identity`` owns (every session, when the server has no users)."""
    return SessionList(
        sessions=[
            SessionListing(
                session_id=owners.client_id(row),
                created_at=row.created_at,
                last_active_at=row.last_active_at,
                message_count=row.message_count,
                cost_usd=row.cost_usd,
            )
            for row in await owners.owned(identity)
        ]
    )


async def session_history(*, session_id: str) -> SessionHistory:
    """The session's user and assistant messages, read from the transcript store.

    Empty when no turn has run yet (or every turn was undone); turns undone since the
    last turn are left out. :class:`SessionNotFound` if the session is unknown.
    """
    record = await _record(session_id)
    workspace = workspaces.path_for(session_id)
    entries: list[SessionMessage] = []
    if record.sdk_session_id:
        entries = await get_session_messages_from_store(
            TranscriptStore(), record.sdk_session_id, directory=str(workspace)
        )
    if record.resume_at:
        entries = _up_to(entries, record.resume_at)
    return SessionHistory(
        session_id=owners.client_id(record), messages=conversation(entries, workspace=workspace)
    )


def _up_to(entries: list[SessionMessage], uuid: str) -> list[SessionMessage]:
    """The entries up to and including ``uuid``: after an undo, the rest is undone.

    The transcript keeps the undone turns until the next turn forks the conversation
    at ``ChatSession.resume_at``; all of it if that message is not there.
    """
    for index, entry in enumerate(entries):
        if entry.uuid == uuid:
            return entries[: index + 1]
    return entries


async def _record(session_id: str) -> ChatSession:
    record = await ChatSession.objects.filter(session_id=validate_session_id(session_id)).afirst()
    if record is None:
        raise SessionNotFound(session_id)
    return record


@dataclass
class _Draft:
    """A chat message while the transcript is being folded."""

    role: Literal["user", "assistant"]
    uuid: str
    texts: list[str] = field(default_factory=list)
    tool_ids: list[str] = field(default_factory=list)


def conversation(entries: list[SessionMessage], *, workspace: Path) -> list[HistoryMessage]:
    """Fold transcript messages into chat messages (pure).

    A prompt is a user message. Everything up to the next prompt is one assistant
    message: its texts concatenated (as the ``stream`` frames delivered them) and its
    tool calls, each with the result the CLI sent back. The CLI's own notices (a stop
    marker, API error texts) are left out.
    """
    translator = TurnTranslator(workspace=PurePosixPath(workspace))
    drafts: list[_Draft] = []
    starts: dict[str, ToolStartFrame] = {}
    results: dict[str, ToolResultFrame] = {}
    for entry in entries:
        message = _parsed(entry)
        if message is None:
            continue
        outputs = translator.translate(message)
        started = [o for o in outputs if isinstance(o, ToolStartFrame)]
        starts.update((o.tool_use_id, o) for o in started)
        results.update((o.tool_use_id, o) for o in outputs if isinstance(o, ToolResultFrame))
        if isinstance(message, UserMessage):
            prompt = _prompt_text(message)
            if prompt is not None:
                drafts.append(_Draft(role="user", uuid=entry.uuid, texts=[prompt]))
            continue
        if not drafts or drafts[-1].role != "assistant":
            drafts.append(_Draft(role="assistant", uuid=entry.uuid))
        drafts[-1].texts += [b.text for b in message.content if isinstance(b, TextBlock)]
        drafts[-1].tool_ids += [o.tool_use_id for o in started]
    return [
        HistoryMessage(
            role=draft.role,
            text="".join(draft.texts),
            tools=[_activity(starts[i], results.get(i)) for i in draft.tool_ids],
            uuid=draft.uuid,
        )
        for draft in drafts
        if draft.role == "user" or "".join(draft.texts) or draft.tool_ids
    ]


def _activity(start: ToolStartFrame, result: ToolResultFrame | None) -> ToolActivity:
    return ToolActivity(
        tool_use_id=start.tool_use_id,
        tool=start.tool,
        input=start.input,
        is_error=result.is_error if result else None,
        summary=result.summary if result else None,
    )


def _parsed(entry: SessionMessage) -> UserMessage | AssistantMessage | None:
    """The SDK's typed message for a transcript entry; ``None`` if it cannot be read or
    is the CLI's own (an API error notice)."""
    message = entry.message if isinstance(entry.message, dict) else {}
    content = message.get("content")
    if entry.type == "user" and isinstance(content, str):
        return UserMessage(content=content, uuid=entry.uuid)
    blocks = _blocks(content)
    if blocks is None:
        logger.warning("unreadable transcript entry", extra={"uuid": entry.uuid})
        return None
    if entry.type == "user":
        return UserMessage(content=blocks, uuid=entry.uuid)
    model = message.get("model")
    if model == SYNTHETIC_MODEL:
        return None
    return AssistantMessage(content=blocks, model=str(model or ""), uuid=entry.uuid)


def _blocks(content: object) -> list[ContentBlock] | None:
    """The text, tool use and tool result blocks of a message (the ones the chat shows);
    ``None`` if the content is not a list of blocks."""
    if not isinstance(content, list):
        return None
    blocks: list[ContentBlock] = []
    for block in content:
        if not isinstance(block, dict):
            return None
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            blocks.append(TextBlock(text=block["text"]))
        elif kind == "tool_use" and isinstance(block.get("input"), dict):
            blocks.append(
                ToolUseBlock(
                    id=str(block.get("id")), name=str(block.get("name")), input=block["input"]
                )
            )
        elif kind == "tool_result":
            blocks.append(
                ToolResultBlock(
                    tool_use_id=str(block.get("tool_use_id")),
                    content=block.get("content"),
                    is_error=block.get("is_error"),
                )
            )
    return blocks


def _prompt_text(message: UserMessage) -> str | None:
    """The text a person typed, or ``None`` for tool results and the CLI's notices."""
    if isinstance(message.content, str):
        text = message.content
    else:
        parts = [block.text for block in message.content if isinstance(block, TextBlock)]
        if not parts:
            return None
        text = "".join(parts)
    return None if text.startswith(INTERRUPT_MARKER) else text


# --- Removing --------------------------------------------------------------------


async def delete_session(*, sessions: SessionRegistry, session_id: str) -> bool:
    """End the session's runner (in ``sessions``); remove its workspace, undo states,
    transcripts (on disk and in the store) and rows.

    Returns whether the session existed (a row, a workspace, a CLI config directory or a
    stored transcript).
    """
    validate_session_id(session_id)
    await sessions.end_session(session_id)
    removed_workspace = await workspaces.delete(session_id=session_id)
    await undo_states.delete_history(session_id=session_id)
    removed_config = await asyncio.to_thread(remove_tree, options.paths_for(session_id).config_dir)
    removed_transcripts = await delete_transcripts(workspace=workspaces.path_for(session_id))
    deleted_rows, _ = await ChatSession.objects.filter(session_id=session_id).adelete()
    existed = removed_workspace or removed_config or removed_transcripts > 0 or deleted_rows > 0
    if existed:
        logger.info("session deleted", extra={"sessionId": session_id})
    return existed


async def delete_transcripts(*, workspace: Path) -> int:
    """Remove every conversation the store holds for ``workspace``; how many there were.

    Every one, not only the session's current one: an undo forks the conversation into a
    new one, and the older ones stay in the store. The workspace's project key is this
    session's alone (its workspace is).
    """
    store = TranscriptStore()
    project_key = project_key_for_directory(workspace)
    listed = await store.list_sessions(project_key)
    for found in listed:
        await store.delete({"project_key": project_key, "session_id": found["session_id"]})
    return len(listed)
