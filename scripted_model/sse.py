"""Server-sent event framing for the Anthropic Messages API.

Pure functions: they build the event sequence and the full-message JSON that the
real API sends for one assistant message, with nothing about sockets or timing.
The server writes the frames and decides when to pause, stall or drop.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from scripted_model.blocks import Block, TextBlock, ToolCall

#: One SSE event: its name (the ``event:`` line) and its JSON payload.
Event = tuple[str, dict[str, Any]]


def new_message_id() -> str:
    """Return a fresh id shaped like the API's (``msg_`` + 24 base-16 chars)."""
    return "msg_" + uuid.uuid4().hex[:24]


def new_tool_use_id() -> str:
    """Return a fresh tool-use id shaped like the API's (``toolu_`` + 24 chars)."""
    return "toolu_" + uuid.uuid4().hex[:24]


def frame(event: str, data: dict[str, Any]) -> bytes:
    """Encode one SSE event as the API does: ``event:`` line, ``data:`` line, blank line."""
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {event}\ndata: {payload}\n\n".encode()


def split_text(text: str, chunks: int) -> list[str]:
    """Split ``text`` into at most ``chunks`` non-empty pieces that join back to it."""
    if not text:
        return []
    count = max(1, min(chunks, len(text)))
    size, extra = divmod(len(text), count)
    pieces: list[str] = []
    start = 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def estimate_tokens(value: Any) -> int:
    """Rough token count (four characters a token), never below one."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return max(1, len(text) // 4)


@dataclass(frozen=True)
class ResolvedBlock:
    """A block ready to send: text, or a tool call with its id assigned."""

    block: Block
    tool_use_id: str | None = None

    def as_content(self) -> dict[str, Any]:
        """The block as it appears in a complete message's ``content`` list."""
        if isinstance(self.block, TextBlock):
            return {"type": "text", "text": self.block.text}
        return {
            "type": "tool_use",
            "id": self.tool_use_id,
            "name": self.block.name,
            "input": self.block.input,
        }


def resolve_blocks(blocks: Sequence[Block]) -> list[ResolvedBlock]:
    """Give every tool call a fresh, unique ``toolu_`` id."""
    return [
        ResolvedBlock(block, new_tool_use_id() if isinstance(block, ToolCall) else None)
        for block in blocks
    ]


def usage(*, input_tokens: int, output_tokens: int) -> dict[str, int]:
    """The ``usage`` object of a message."""
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }


def message_start_event(*, message_id: str, model: str, input_tokens: int) -> Event:
    """The first event of a stream: an empty assistant message."""
    return (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage(input_tokens=input_tokens, output_tokens=1),
            },
        },
    )


def block_events(index: int, resolved: ResolvedBlock, *, chunks: int) -> Iterator[Event]:
    """``content_block_start``, its deltas and ``content_block_stop`` for one block."""
    block = resolved.block
    if isinstance(block, TextBlock):
        start: dict[str, Any] = {"type": "text", "text": ""}
        deltas = [
            {"type": "text_delta", "text": piece}
            for piece in split_text(block.text, block.chunks or chunks)
        ]
    else:
        start = {"type": "tool_use", "id": resolved.tool_use_id, "name": block.name, "input": {}}
        encoded = json.dumps(block.input, ensure_ascii=False)
        # The API opens a tool block with an empty partial_json, then the pieces.
        deltas = [{"type": "input_json_delta", "partial_json": ""}] + [
            {"type": "input_json_delta", "partial_json": piece}
            for piece in split_text(encoded, chunks)
        ]
    yield (
        "content_block_start",
        {"type": "content_block_start", "index": index, "content_block": start},
    )
    for delta in deltas:
        yield (
            "content_block_delta",
            {"type": "content_block_delta", "index": index, "delta": delta},
        )
    yield ("content_block_stop", {"type": "content_block_stop", "index": index})


def stream_events(
    resolved: Sequence[ResolvedBlock],
    *,
    message_id: str,
    model: str,
    stop_reason: str,
    input_tokens: int,
    chunks: int = 4,
) -> Iterator[Event]:
    """The whole event sequence of one streamed assistant message, in API order.

    ``message_start``, then for the first block ``content_block_start`` and a
    ``ping`` (where the API sends its first ping), the block's deltas and stop,
    the other blocks likewise, then ``message_delta`` with the stop reason and
    usage, and ``message_stop``.
    """
    yield message_start_event(message_id=message_id, model=model, input_tokens=input_tokens)
    if not resolved:
        yield ("ping", {"type": "ping"})
    for index, item in enumerate(resolved):
        events = block_events(index, item, chunks=chunks)
        yield next(events)
        if index == 0:
            yield ("ping", {"type": "ping"})
        yield from events
    output_tokens = estimate_tokens([item.as_content() for item in resolved])
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": output_tokens},
        },
    )
    yield ("message_stop", {"type": "message_stop"})


def full_message(
    resolved: Sequence[ResolvedBlock],
    *,
    message_id: str,
    model: str,
    stop_reason: str,
    input_tokens: int,
) -> dict[str, Any]:
    """The complete message JSON of a non-streaming answer."""
    content = [item.as_content() for item in resolved]
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage(input_tokens=input_tokens, output_tokens=estimate_tokens(content)),
    }


def error_body(error_type: str, message: str) -> dict[str, Any]:
    """The JSON body of an API error response (also the ``error`` SSE event)."""
    return {"type": "error", "error": {"type": error_type, "message": message}}
