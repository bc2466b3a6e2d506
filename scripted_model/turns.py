"""Scripts are data: a :class:`Script` is a name and a list of :class:`Turn`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from scripted_model.blocks import Block, TextBlock, ToolCall, substitute_block
from scripted_model.conversation import RequestContext
from scripted_model.faults import Fault

StopReason = Literal["end_turn", "tool_use", "max_tokens", "stop_sequence"]

#: A turn computed from the request: receives the context, returns the blocks to send.
TurnFunction = Callable[[RequestContext], Sequence[Block]]


@dataclass(frozen=True)
class Turn:
    """One assistant message: its blocks (fixed, or computed), stop reason and fault.

    ``stop_reason=None`` means ``tool_use`` when the blocks hold a tool call and
    ``end_turn`` otherwise. ``chunk_delay`` (seconds before each delta) overrides
    the server's. ``{workspace}`` in text or tool input is replaced by the CLI's
    working directory, also in blocks a :data:`TurnFunction` returns.
    """

    blocks: Sequence[Block] | TurnFunction
    stop_reason: StopReason | None = None
    fault: Fault | None = None
    chunk_delay: float | None = None

    def render(self, context: RequestContext) -> tuple[list[Block], StopReason]:
        """The blocks to send for this request and the stop reason to report."""
        produced = self.blocks(context) if callable(self.blocks) else self.blocks
        workspace = context.workspace or "."
        blocks = [substitute_block(block, workspace) for block in produced]
        stop_reason = self.stop_reason or (
            "tool_use" if any(isinstance(block, ToolCall) for block in blocks) else "end_turn"
        )
        return blocks, stop_reason


@dataclass(frozen=True)
class Script:
    """A named sequence of turns; turn N answers step N of an exchange."""

    name: str
    turns: Sequence[Turn]
    description: str = ""


def text(value: str, *, chunks: int | None = None) -> TextBlock:
    """A text block."""
    return TextBlock(value, chunks)


def tool(name: str, **tool_input: Any) -> ToolCall:
    """A tool call, its input given as keyword arguments."""
    return ToolCall(name, dict(tool_input))


def say(value: str, **options: Any) -> Turn:
    """A turn of one text block that ends the exchange."""
    return Turn([text(value)], **options)


def no_turn_text(*, script: str, step: int) -> str:
    """What the model says when a script has no turn for a step."""
    return f"scripted model: no scripted turn for step {step} of script {script}"
