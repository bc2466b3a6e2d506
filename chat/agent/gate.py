"""The tool gate: every tool call's paths must resolve inside the session's workspace.

It runs as a ``PreToolUse`` hook, which the CLI calls before every tool call, even
the ones it would allow by itself, and whose deny wins over everything else. The
gate only ever denies or stays silent: answering "allow" would skip the CLI's own
checks, which stay on as a second wall.

Its reasons reach the model and, as the tool's error, the client: they name a path
only relative to the workspace, and never echo a value that points outside it (the
CLI expands ``~`` before the gate sees a path, so echoing it would name the server's
directories).
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path, PurePosixPath
from typing import Any

from claude_agent_sdk import HookContext, HookMatcher
from django.conf import settings

from chat import metrics
from workspaces.exceptions import InvalidPath, short_repr
from workspaces.paths import resolve_inside

logger = logging.getLogger("dashboard_ai.security")

ALLOWED_TOOLS = ("Read", "Edit", "Write", "Glob", "Grep")
# Which inputs of each tool name a file or directory, and which are glob patterns.
PATH_INPUTS = {
    "Read": ("file_path",),
    "Edit": ("file_path",),
    "Write": ("file_path",),
    "Glob": ("path",),
    "Grep": ("path",),
}
PATTERN_INPUTS = {"Glob": ("pattern",), "Grep": ("glob",)}
REQUIRED_INPUTS = {"Read": "file_path", "Edit": "file_path", "Write": "file_path"}
_NAMED_INPUTS = {tool: keys + PATTERN_INPUTS.get(tool, ()) for tool, keys in PATH_INPUTS.items()}


def tool_problem(workspace: Path, tool: str, tool_input: dict[str, Any]) -> str | None:
    """Why this tool call must not run, or ``None`` when it stays inside ``workspace``.

    Besides the paths, a Write or Edit must leave its file within
    ``WORKSPACE_MAX_FILE_BYTES``: the most the server accepts for one file, and what
    the SDK's line buffer is sized from (``chat.agent.options``). Reads the file an Edit
    changes, so call it off the event loop.
    """
    if tool not in ALLOWED_TOOLS:
        return f"The {tool} tool is not available here."
    required = REQUIRED_INPUTS.get(tool)
    if required and not isinstance(tool_input.get(required), str):
        return f"{tool} needs a {required}."
    for key in PATH_INPUTS[tool]:
        value = tool_input.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            return f"{key} must be a path."
        if value.startswith("~"):
            # The CLI reads a leading ~ as its home directory, outside the workspace.
            return f"{key} starts with '~' (a home directory); use a path in the workspace."
        if _is_outside(workspace, value):
            return f"{key} is outside the workspace; only files in it can be used."
    for key in PATTERN_INPUTS.get(tool, ()):
        value = tool_input.get(key)
        if value is not None and (not isinstance(value, str) or _pattern_escapes(value)):
            return f"{key} reaches outside the workspace; use a relative pattern."
    if tool in ("Write", "Edit"):
        return _size_problem(workspace, tool, tool_input)
    return None


def _size_problem(workspace: Path, tool: str, tool_input: dict[str, Any]) -> str | None:
    """Why a Write or Edit (whose path is inside) would leave its file too large."""
    limit = int(settings.WORKSPACE_MAX_FILE_BYTES)
    relative = _relative_to(workspace, tool_input["file_path"]) or ""
    if tool == "Write":
        content = tool_input.get("content")
        if not isinstance(content, str):
            return None  # the CLI refuses a malformed input itself
        written = len(_utf8(content))
        if written > limit:
            return (
                f"The content for {relative} is {written} bytes, over the limit of {limit} "
                "bytes for one file; write a smaller file."
            )
        return None
    edited = _edited_size(workspace, relative, tool_input)
    if edited is not None and edited > limit:
        return (
            f"This edit would make {relative} {edited} bytes, over the limit of {limit} "
            "bytes for one file; make the file smaller."
        )
    return None


def _edited_size(workspace: Path, relative: str, tool_input: dict[str, Any]) -> int | None:
    """The size of the file after an Edit; ``None`` if it cannot grow or cannot apply.

    The CLI replaces the one occurrence of ``old_string`` (every one with
    ``replace_all``); an empty ``old_string`` on a missing file creates it.
    """
    old, new = tool_input.get("old_string"), tool_input.get("new_string")
    if not isinstance(old, str) or not isinstance(new, str):
        return None
    old_bytes, new_bytes = _utf8(old), _utf8(new)
    if len(new_bytes) <= len(old_bytes):
        return None  # the file cannot grow
    try:
        current = resolve_inside(workspace, relative).read_bytes()
    except FileNotFoundError:
        current = b""
    except (InvalidPath, OSError):
        return None  # not a readable file: the CLI's Edit fails on its own
    if not old_bytes:
        return len(current) + len(new_bytes)
    found = current.count(old_bytes)
    if not tool_input.get("replace_all"):
        found = min(found, 1)
    return len(current) + found * (len(new_bytes) - len(old_bytes)) if found else None


def _utf8(text: str) -> bytes:
    """``text`` as the CLI writes it; a lone surrogate counts as its three bytes."""
    return text.encode("utf-8", "surrogatepass")


def _is_outside(workspace: Path, value: str) -> bool:
    """Whether ``value`` (absolute, or relative to the workspace) leaves it."""
    relative = _relative_to(workspace, value)
    if relative is None:
        return True
    if relative in ("", "."):
        return False  # the workspace itself: a Glob or Grep over all of it
    try:
        resolve_inside(workspace, relative)
    except InvalidPath:
        return True
    return False


def _relative_to(workspace: Path, value: str) -> str | None:
    """``value`` relative to the workspace, lexically; ``None`` if it is not under it."""
    path = PurePosixPath(value)
    if not path.is_absolute():
        return value
    for root in {workspace, workspace.resolve()}:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            continue
    return None


def _pattern_escapes(pattern: str) -> bool:
    """A glob pattern that could match outside the directory it is applied to."""
    if pattern.startswith(("/", "~", "\\")) or "\0" in pattern or "\\" in pattern:
        return True
    return any(part.strip().startswith("..") for part in re.split(r"[/{},]", pattern))


def tool_gate(workspace: Path, session_id: str) -> HookMatcher:
    """The ``PreToolUse`` matcher that denies every call leaving ``workspace``.

    ``on_failure="block"``: should the gate itself fail, the call is blocked, not let
    through (the SDK's default treats a failing hook as no decision).
    """

    async def gate(hook_input: Any, tool_use_id: str | None, context: HookContext) -> Any:
        tool = str(hook_input.get("tool_name", ""))
        tool_input = hook_input.get("tool_input") or {}
        problem = await asyncio.to_thread(tool_problem, workspace, tool, tool_input)
        if problem is None:
            return {}
        metrics.refused("tool_gate")
        # The reason does not name what was outside; the server's log does.
        paths = {key: tool_input.get(key) for key in _NAMED_INPUTS.get(tool, ())}
        logger.warning(
            "tool call refused",
            extra={
                "sessionId": session_id,
                "tool": tool,
                "reason": problem[:300],
                "input": short_repr({k: v for k, v in paths.items() if v is not None}),
            },
        )
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": problem,
            }
        }

    return HookMatcher(matcher=None, hooks=[gate], on_failure="block")
