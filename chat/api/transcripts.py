"""Sessions over HTTP: their facts, their conversation, their removal.

The conversation is read back from the transcript the CLI keeps in the session's own
config directory (``chat.agent.options.paths_for(id).config_dir``), at
``<config dir>/projects/<project key of the workspace>/<SDK session id>.jsonl``. The
SDK's own reader builds the conversation chain from it; its ``get_session_messages``
would look under ``CLAUDE_CONFIG_DIR`` of this process's environment, so the file is
handed to the SDK through a read-only :class:`TranscriptFiles` store instead. Tool
activity goes through :class:`chat.events.TurnTranslator`, so paths and summaries read
exactly as they did in the ``tool_start`` and ``tool_result`` frames.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal, cast

from claude_agent_sdk import (
    AssistantMessage,
    ClaudeSDKError,
    SessionKey,
    SessionMessage,
    SessionStore,
    SessionStoreEntry,
    TextBlock,
    UserMessage,
    get_session_messages_from_store,
)

# The SDK's parser of CLI messages; not re-exported, but the SDK version is pinned.
from claude_agent_sdk._internal.message_parser import parse_message

from chat.agent import options
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


# --- Reading ---------------------------------------------------------------------


async def session_summary(*, session_id: str) -> SessionSummary:
    """The session's row and its workspace files; :class:`SessionNotFound` if unknown."""
    record = await _record(session_id)
    try:
        files = await workspaces.list_files(session_id=session_id)
    except WorkspaceNotFound:  # removed by the cleanup command: the row outlives it
        files = []
    return SessionSummary(
        session_id=record.session_id,
        created_at=record.created_at,
        last_active_at=record.last_active_at,
        message_count=record.message_count,
        cost_usd=record.cost_usd,
        files=files,
    )


async def session_history(*, session_id: str) -> SessionHistory:
    """The session's user and assistant messages, read from the CLI's transcript.

    Empty when no turn has run yet (or every turn was undone); turns undone since the
    last turn are left out. :class:`SessionNotFound` if the session is unknown.
    """
    record = await _record(session_id)
    workspace = workspaces.path_for(session_id)
    entries: list[SessionMessage] = []
    if record.sdk_session_id:
        # The optional SessionStore methods are inherited as "absent" markers, as the SDK
        # documents; mypy counts those protocol stubs as abstract.
        projects = options.paths_for(session_id).config_dir / "projects"
        store = TranscriptFiles(projects)  # type: ignore[abstract]
        entries = await get_session_messages_from_store(
            store, record.sdk_session_id, directory=str(workspace)
        )
    if record.resume_at:
        entries = _up_to(entries, record.resume_at)
    return SessionHistory(
        session_id=session_id, messages=conversation(entries, workspace=workspace)
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


class TranscriptFiles(SessionStore):
    """A read-only :class:`claude_agent_sdk.SessionStore` over one CLI projects directory.

    ``load`` reads ``<projects>/<project key>/<session id>.jsonl``. The SDK derives
    the key from the workspace path the way the CLI does; for paths so long that the
    CLI appends a hash of its own, any project directory holding the transcript is
    taken (the directory is this session's alone).
    """

    def __init__(self, projects: Path) -> None:
        self.projects = projects

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        """Never called: the CLI writes the transcript itself."""
        raise NotImplementedError("TranscriptFiles is read-only")

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        """The transcript's entries, or ``None`` if there is none."""
        return await asyncio.to_thread(self._load_blocking, key)

    def _load_blocking(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        name = f"{key['session_id']}.jsonl"
        if Path(name).name != name or Path(key["project_key"]).name != key["project_key"]:
            return None
        exact = self.projects / key["project_key"] / name
        candidates = [exact, *sorted(self.projects.glob(f"*/{name}"))]
        for path in candidates:
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            return _jsonl_entries(text)
        return None


def _jsonl_entries(text: str) -> list[SessionStoreEntry]:
    """One entry per JSON object line; a torn last line (being written) is skipped."""
    entries: list[SessionStoreEntry] = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("type"), str):
            entries.append(cast(SessionStoreEntry, entry))
    return entries


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
    """The SDK's typed message for a transcript entry; ``None`` if it cannot be read."""
    try:
        message = parse_message({"type": entry.type, "message": entry.message, "uuid": entry.uuid})
    except ClaudeSDKError:
        logger.warning("unreadable transcript entry", extra={"uuid": entry.uuid})
        return None
    if isinstance(message, AssistantMessage) and message.model == SYNTHETIC_MODEL:
        return None
    return message if isinstance(message, UserMessage | AssistantMessage) else None


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
    transcript and rows.

    Returns whether the session existed (a row, a workspace or a CLI config directory).
    """
    validate_session_id(session_id)
    await sessions.end_session(session_id)
    removed_workspace = await workspaces.delete(session_id=session_id)
    await undo_states.delete_history(session_id=session_id)
    removed_config = await asyncio.to_thread(remove_tree, options.paths_for(session_id).config_dir)
    deleted_rows, _ = await ChatSession.objects.filter(session_id=session_id).adelete()
    existed = removed_workspace or removed_config or deleted_rows > 0
    if existed:
        logger.info("session deleted", extra={"sessionId": session_id})
    return existed
