"""The tool gate: every tool call's paths must resolve inside the session's workspace.

It runs as a ``PreToolUse`` hook, which the CLI calls before every tool call, even
the ones it would allow by itself, and whose deny wins over everything else. The
gate only ever denies or stays silent: answering "allow" would skip the CLI's own
checks, which stay on as a second wall.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path, PurePosixPath
from typing import Any

from claude_agent_sdk import HookContext, HookMatcher

from workspaces.exceptions import InvalidPath
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


def tool_problem(workspace: Path, tool: str, tool_input: dict[str, Any]) -> str | None:
    """Why this tool call must not run, or ``None`` when it stays inside ``workspace``."""
    if tool not in ALLOWED_TOOLS:
        return f"The {tool} tool is not available here."
    required = REQUIRED_INPUTS.get(tool)
    if required and not isinstance(tool_input.get(required), str):
        return f"{tool} needs a {required}."
    for key in PATH_INPUTS[tool]:
        value = tool_input.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or _is_outside(workspace, value):
            return f"{key} {value!r} is outside the workspace; only files in it can be used."
    for key in PATTERN_INPUTS.get(tool, ()):
        value = tool_input.get(key)
        if value is not None and (not isinstance(value, str) or _pattern_escapes(value)):
            return f"{key} {value!r} reaches outside the workspace; use a relative pattern."
    return None


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
        problem = tool_problem(workspace, tool, tool_input)
        if problem is None:
            return {}
        logger.warning(
            "tool call refused",
            extra={"sessionId": session_id, "tool": tool, "reason": problem[:300]},
        )
        return {
            "hookSpecificOutput": {
                "hookEventName": "PreToolUse",
                "permissionDecision": "deny",
                "permissionDecisionReason": problem,
            }
        }

    return HookMatcher(matcher=None, hooks=[gate], on_failure="block")
