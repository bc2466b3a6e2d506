"""Pure translation of SDK messages into protocol frames, one turn at a time.

No sockets, no disk: :class:`TurnTranslator` takes each message the SDK yields and
returns what to send. Two things need I/O and are handed back to the caller as
requests rather than frames: :class:`FileTouched` (read the file, send
``file_changed``) and :class:`TurnEnded` (diff the workspace, send ``complete`` or
``error``).

No frame names a place on the server: paths inside the workspace are shown relative
to it, and any other absolute path, in a tool's input or in the CLI's texts (its
errors name its working directory, Glob and Grep results can list absolute paths),
is replaced by :data:`OUTSIDE`.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    ResultMessage,
    StreamEvent,
    SystemMessage,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from chat.protocol import ServerFrame, StatusFrame, StreamFrame, ToolResultFrame, ToolStartFrame

PATH_KEYS = ("file_path", "path", "notebook_path")
FILE_WRITING_TOOLS = frozenset({"Write", "Edit", "MultiEdit"})
MAX_INPUT_STRING = 1000
MAX_SUMMARY = 200
#: What a frame shows in place of an absolute path outside the workspace.
OUTSIDE = "(outside the workspace)"
#: What a text shows in place of the workspace's own absolute path.
WORKSPACE_ITSELF = "the workspace"

# An absolute path inside free text: a slash not preceded by a name, glob or markup
# character (so ``src/a``, ``**/*.tsx``, ``~/x`` and ``</tag>`` are not paths), then a
# name character, up to a space, quote or colon (``path:line:`` in Grep results).
# URLs with a host are matched first, to be left alone.
_TEXT_PATH_RE = re.compile(
    r"(?P<url>\b[A-Za-z][\w+.-]*://[^\s/'\"`<>|][^\s'\"`<>|]*)"
    r"|(?<![\w.~/<*?\]}-])/+[\w.~-][^\s'\"`<>|:]*"
)
_TRAILING_PUNCTUATION = ".,;:!?)]}"


@dataclass(frozen=True)
class FileTouched:
    """A Write or Edit succeeded on ``path`` (relative to the workspace)."""

    path: str


@dataclass(frozen=True)
class TurnEnded:
    """The SDK's result for the turn, reduced to what the wire needs."""

    result: str
    is_error: bool
    subtype: str
    usage: dict[str, int]
    cost_usd: float
    duration_ms: int
    session_id: str
    api_error_status: int | None = None
    interrupted: bool = False


Output = ServerFrame | FileTouched | TurnEnded


@dataclass
class TurnTranslator:
    """Turns the SDK messages of one turn into frames and I/O requests."""

    workspace: PurePosixPath
    tools_by_id: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    # The transcript uuid of the turn's latest assistant message: where the
    # conversation can be resumed after a later turn is undone.
    last_assistant_uuid: str | None = None

    def translate(self, message: object) -> list[Output]:
        """What to emit for one SDK message (often nothing)."""
        if isinstance(message, StreamEvent):
            return self._stream_event(message)
        if isinstance(message, AssistantMessage):
            return self._assistant(message)
        if isinstance(message, UserMessage):
            return self._user(message)
        if isinstance(message, SystemMessage):
            return self._system(message)
        if isinstance(message, ResultMessage):
            return [self._result(message)]
        return []

    def _stream_event(self, message: StreamEvent) -> list[Output]:
        if message.parent_tool_use_id is not None:
            return []
        event = message.event
        delta = event.get("delta") or {}
        if event.get("type") == "content_block_delta" and delta.get("type") == "text_delta":
            text = delta.get("text") or ""
            return [StreamFrame(text=text)] if text else []
        return []

    def _assistant(self, message: AssistantMessage) -> list[Output]:
        if message.uuid and message.parent_tool_use_id is None and message.error is None:
            self.last_assistant_uuid = message.uuid
        frames: list[Output] = []
        for block in message.content:
            if isinstance(block, ToolUseBlock):
                path = inside_workspace(
                    self.workspace, block.input.get("file_path") or block.input.get("path")
                )
                self.tools_by_id[block.id] = (block.name, path)
                frames.append(
                    ToolStartFrame(
                        tool_use_id=block.id, tool=block.name, input=self._shown_input(block.input)
                    )
                )
        return frames

    def _user(self, message: UserMessage) -> list[Output]:
        if isinstance(message.content, str):
            return []
        frames: list[Output] = []
        for block in message.content:
            if not isinstance(block, ToolResultBlock):
                continue
            tool, path = self.tools_by_id.get(block.tool_use_id, ("unknown", None))
            is_error = bool(block.is_error)
            frames.append(
                ToolResultFrame(
                    tool_use_id=block.tool_use_id,
                    tool=tool,
                    is_error=is_error,
                    summary=summarize_tool_result(
                        tool, path, block.content, is_error, workspace=self.workspace
                    ),
                )
            )
            if not is_error and tool in FILE_WRITING_TOOLS and path not in (None, "."):
                frames.append(FileTouched(path=path))
        return frames

    def _system(self, message: SystemMessage) -> list[Output]:
        if message.subtype != "api_retry":
            return []
        data = message.data
        attempt = _int_or_none(data.get("attempt"))
        max_attempts = _int_or_none(data.get("max_retries"))
        status = data.get("error_status")
        reason = f" (HTTP {status})" if isinstance(status, int) else ""
        return [
            StatusFrame(
                status="retrying",
                attempt=attempt,
                max_attempts=max_attempts,
                message=f"The model API did not answer{reason}; retrying.",
            )
        ]

    def _result(self, message: ResultMessage) -> TurnEnded:
        usage = message.usage or {}
        return TurnEnded(
            result=message.result or "",
            is_error=message.is_error,
            subtype=message.subtype,
            usage={
                key: int(usage.get(key) or 0)
                for key in (
                    "input_tokens",
                    "output_tokens",
                    "cache_read_input_tokens",
                    "cache_creation_input_tokens",
                )
            },
            cost_usd=float(message.total_cost_usd or 0.0),
            duration_ms=int(message.duration_ms or 0),
            session_id=message.session_id,
            api_error_status=message.api_error_status,
            interrupted=message.terminal_reason in ("aborted_streaming", "aborted_tools"),
        )

    def _shown_input(self, tool_input: dict[str, Any]) -> dict[str, Any]:
        return {key: self._shown_value(key, value) for key, value in tool_input.items()}

    def _shown_value(self, key: str, value: Any) -> Any:
        """An input value as a client sees it: short, and naming no server path."""
        if isinstance(value, dict):
            return {k: self._shown_value(k, v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._shown_value(key, item) for item in value]
        if not isinstance(value, str):
            return value
        if key in PATH_KEYS:
            inside = inside_workspace(self.workspace, value)
            if inside is not None:
                return inside
            if value.startswith("/"):
                return OUTSIDE
        if len(value) > MAX_INPUT_STRING:
            value = value[:MAX_INPUT_STRING] + f"… ({len(value)} characters)"
        return scrub_paths(self.workspace, value)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def tool_result_text(content: str | list[dict[str, Any]] | None) -> str:
    """The text of a tool result, whichever shape the CLI sent it in."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content if isinstance(part, dict))


def inside_workspace(workspace: PurePosixPath, value: Any) -> str | None:
    """``value`` as a normalised path relative to ``workspace`` (``"."`` for itself).

    ``None`` when it is not a path inside the workspace: not a string, absolute
    elsewhere, climbing out with ``..``, or starting with ``~`` (a home directory to
    the CLI). Lexical only; the tool gate is what checks symlinks.
    """
    if not isinstance(value, str) or not value or value.startswith("~"):
        return None
    if not value.startswith("/"):
        relative = posixpath.normpath(value)
        return None if relative == ".." or relative.startswith("../") else relative
    path = PurePosixPath("/" + posixpath.normpath(value).lstrip("/"))
    try:
        return path.relative_to(posixpath.normpath(workspace)).as_posix()
    except ValueError:
        return None


def scrub_paths(workspace: PurePosixPath, text: str) -> str:
    """``text`` with every absolute path in it made relative to ``workspace`` or hidden."""

    def shown(match: re.Match[str]) -> str:
        if match.group("url"):
            return match.group(0)
        token = match.group(0)
        path = token.rstrip(_TRAILING_PUNCTUATION)
        inside = inside_workspace(workspace, path)
        if inside is None:
            inside = OUTSIDE
        elif inside == ".":
            inside = WORKSPACE_ITSELF
        return inside + token[len(path) :]

    return _TEXT_PATH_RE.sub(shown, text)


def summarize_tool_result(
    tool: str,
    path: str | None,
    content: str | list[dict[str, Any]] | None,
    is_error: bool,
    *,
    workspace: PurePosixPath,
) -> str:
    """A short, human summary of a tool result; ``path`` is relative to ``workspace``."""
    text = tool_result_text(content)
    lines = [line for line in text.splitlines() if line.strip()]
    name = path or "a file"
    if is_error:
        summary = _first_line(lines) or "The tool failed."
    elif tool == "Read":
        summary = f"Read {name}"
    elif tool in FILE_WRITING_TOOLS:
        summary = f"{'Wrote' if tool == 'Write' else 'Edited'} {name}"
    elif tool in ("Glob", "Grep"):
        summary = _first_line(lines) if len(lines) <= 1 else f"{len(lines)} matches"
        summary = summary or "No matches"
    else:
        summary = _first_line(lines)
    return scrub_paths(workspace, summary)[:MAX_SUMMARY]


def _first_line(lines: list[str]) -> str:
    # Bounded before it is scrubbed: a Grep line can be a whole minified file.
    return lines[0].strip()[: 4 * MAX_SUMMARY] if lines else ""
