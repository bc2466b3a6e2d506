"""Content blocks a scripted assistant turn is made of."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Placeholder replaced by the CLI's working directory in scripted text and tool input.
WORKSPACE = "{workspace}"


@dataclass(frozen=True)
class TextBlock:
    """Assistant text, streamed as ``text_delta`` chunks.

    ``chunks`` overrides how many deltas the text is split into (by default the
    server's setting, a few per block).
    """

    text: str
    chunks: int | None = None


@dataclass(frozen=True)
class ToolCall:
    """A ``tool_use`` block: the tool's name and its input object."""

    name: str
    input: dict[str, Any] = field(default_factory=dict)


Block = TextBlock | ToolCall


def substitute(value: Any, workspace: str) -> Any:
    """Replace ``{workspace}`` in every string inside ``value`` (dicts, lists, strings)."""
    if isinstance(value, str):
        return value.replace(WORKSPACE, workspace)
    if isinstance(value, dict):
        return {key: substitute(item, workspace) for key, item in value.items()}
    if isinstance(value, list):
        return [substitute(item, workspace) for item in value]
    return value


def substitute_block(block: Block, workspace: str) -> Block:
    """The same block with ``{workspace}`` replaced in its text or input."""
    if isinstance(block, TextBlock):
        return TextBlock(block.text.replace(WORKSPACE, workspace), block.chunks)
    return ToolCall(block.name, substitute(block.input, workspace))
