"""Reading a Messages API request the way the scripted model needs to.

Everything here is a pure function of the request body, so one server can serve
many concurrent sessions and resumed conversations without keeping state:

- The **workspace** is the CLI's working directory. The bundled CLI sends it as
  ``Primary working directory: /path`` in a ``role: "system"`` entry of
  ``messages`` (not in the top-level ``system`` field, which holds only the SDK
  preamble); both places are searched.
- A **prompt** is a user message with human text: a plain string, or text blocks
  that are not only ``<system-reminder>`` sections. A user message holding only
  ``tool_result`` blocks is the CLI answering a tool call, not a prompt, and
  neither is the CLI's own ``<system-reminder>``-only message (it sends one,
  "Output token limit hit...", after a ``max_tokens`` stop). Prompts come both
  as plain strings and as lists of text blocks.
- The **step** is the number of assistant messages after the latest prompt (the
  CLI merges one assistant turn's text and tool calls into one message).
- The **script** is the one named by a ``[script:NAME]`` marker in the latest
  prompt, else the server's default.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

_WORKSPACE_RE = re.compile(r"Primary working directory:\s*(\S[^\n]*?)\s*$", re.MULTILINE)
_SCRIPT_RE = re.compile(r"\[script:([A-Za-z0-9_.-]+)\]")
_REMINDER_RE = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)
_LINE_NUMBER_RE = re.compile(r"^\s*\d+[\t→]", re.MULTILINE)

Message = dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    """One ``tool_result`` block of a user message, its content flattened to text."""

    tool_use_id: str
    content: str
    is_error: bool


@dataclass(frozen=True)
class ToolUse:
    """One ``tool_use`` block the assistant sent earlier."""

    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class RequestContext:
    """What a scripted turn may look at when it is played.

    ``tool_results`` are those of the last user message (the answers to the
    previous turn's tool calls), ``last_tool_uses`` the calls they answer.
    """

    script: str
    step: int
    workspace: str | None
    prompt: str
    user_prompts: list[str] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    last_tool_uses: list[ToolUse] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)

    @property
    def fault_key(self) -> tuple[str, int, str, str, int]:
        """Identifies one step of one conversation, the same across the client's retries.

        (script, step, workspace, latest prompt text, number of prompts so far):
        a retry resends the same messages, so it maps to the same key; another
        session has another workspace, and a new prompt has another text or count.
        """
        return (self.script, self.step, self.workspace or "", self.prompt, len(self.user_prompts))


def _texts(content: Any) -> list[str]:
    """The text pieces of a message's content (a string or a list of blocks)."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            block["text"]
            for block in content
            if isinstance(block, dict)
            and block.get("type") == "text"
            and isinstance(block.get("text"), str)
        ]
    return []


def human_text(message: Message) -> str:
    """The human-written text of a user message, ``<system-reminder>`` sections removed."""
    if message.get("role") != "user":
        return ""
    pieces = [_REMINDER_RE.sub("", text).strip() for text in _texts(message.get("content"))]
    return "\n".join(piece for piece in pieces if piece)


def is_prompt(message: Message) -> bool:
    """True for a user message that carries human text (not only tool results)."""
    return bool(human_text(message))


def latest_prompt_index(messages: Sequence[Message]) -> int | None:
    """Index of the latest prompt in ``messages``, or None when there is none."""
    for index in range(len(messages) - 1, -1, -1):
        if is_prompt(messages[index]):
            return index
    return None


def step_index(messages: Sequence[Message]) -> int:
    """Number of assistant messages after the latest prompt."""
    start = latest_prompt_index(messages)
    after = messages if start is None else messages[start + 1 :]
    return sum(1 for message in after if message.get("role") == "assistant")


def find_workspace(body: dict[str, Any]) -> str | None:
    """The CLI's working directory, from ``Primary working directory:`` anywhere in the request."""
    candidates: list[str] = []
    candidates.extend(_texts(body.get("system")))
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            candidates.extend(_texts(message.get("content")))
    for text in candidates:
        match = _WORKSPACE_RE.search(text)
        if match:
            return match.group(1)
    return None


def script_marker(text: str) -> str | None:
    """The NAME of the last ``[script:NAME]`` marker in ``text``, if any.

    The last one wins: the CLI merges a prompt that got no answer (its turn failed)
    into the next prompt, so the newest marker is the one the person just sent.
    """
    names = _SCRIPT_RE.findall(text)
    return names[-1] if names else None


def _flatten_result(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(_texts(content))


def tool_results(message: Message) -> list[ToolResult]:
    """The ``tool_result`` blocks of one user message."""
    content = message.get("content")
    if message.get("role") != "user" or not isinstance(content, list):
        return []
    return [
        ToolResult(
            tool_use_id=str(block.get("tool_use_id", "")),
            content=_flatten_result(block.get("content")),
            is_error=bool(block.get("is_error")),
        )
        for block in content
        if isinstance(block, dict) and block.get("type") == "tool_result"
    ]


def tool_uses(message: Message) -> list[ToolUse]:
    """The ``tool_use`` blocks of one assistant message."""
    content = message.get("content")
    if message.get("role") != "assistant" or not isinstance(content, list):
        return []
    return [
        ToolUse(
            id=str(block.get("id", "")),
            name=str(block.get("name", "")),
            input=dict(block.get("input") or {}),
        )
        for block in content
        if isinstance(block, dict) and block.get("type") == "tool_use"
    ]


def strip_line_numbers(read_output: str) -> str:
    """The file text inside a Read tool result (which numbers lines as ``N<TAB>``)."""
    return _LINE_NUMBER_RE.sub("", _REMINDER_RE.sub("", read_output))


def request_context(body: dict[str, Any], *, default_script: str) -> RequestContext:
    """Everything a turn needs, read from one request body."""
    raw = body.get("messages")
    messages: list[Message] = (
        [m for m in raw if isinstance(m, dict)] if isinstance(raw, list) else []
    )
    prompts = [human_text(message) for message in messages if is_prompt(message)]
    prompt = prompts[-1] if prompts else ""
    start = latest_prompt_index(messages)
    exchange = messages if start is None else messages[start + 1 :]
    last_user = next((m for m in reversed(exchange) if m.get("role") == "user"), {})
    last_assistant = next((m for m in reversed(exchange) if m.get("role") == "assistant"), {})
    return RequestContext(
        script=script_marker(prompt) or default_script,
        step=sum(1 for message in exchange if message.get("role") == "assistant"),
        workspace=find_workspace(body),
        prompt=prompt,
        user_prompts=prompts,
        tool_results=tool_results(last_user),
        last_tool_uses=tool_uses(last_assistant),
        messages=messages,
    )
