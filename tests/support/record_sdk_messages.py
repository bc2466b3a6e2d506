"""Record the raw CLI messages of scripted turns, for the unit tests of the core.

Run by hand when the SDK or CLI changes:
    .venv/bin/python -m tests.support.record_sdk_messages [NAME ...]
It writes ``tests/data/sdk_<name>.jsonl``: one raw message (as the CLI printed it and
the SDK parsed it) per line, with the workspace path replaced by ``/WORKSPACE``. With
no NAME it records every one of ``SCRIPTS`` and ``INTERRUPTED``.

``sdk_interrupt_tail.jsonl`` holds what the CLI sent after ``interrupt()`` was called
during the first streamed text of a ``long_text`` turn, through its aborted result:
what a stop produces (:class:`tests.support.fake_sdk.FakeClient` replays it).
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import claude_agent_sdk._internal.message_parser as sdk_parser
from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, StreamEvent

from scripted_model.server import ScriptedModelServer

DATA = Path(__file__).resolve().parents[1] / "data"
SCRIPTS = (
    "write_app",
    "read_then_edit",
    "overloaded_then_ok",
    "read_etc_passwd",
    "long_text",
    "overloaded_529",
)
#: Recorded by :func:`record_interrupted`, not by a plain scripted turn.
INTERRUPTED = ("interrupt_tail",)

Raw = list[dict[str, Any]]


@contextmanager
def recording_parser() -> Iterator[Raw]:
    """Every raw message the SDK parses meanwhile."""
    raw: Raw = []
    original = sdk_parser.parse_message

    def recording(data: dict[str, Any]) -> Any:
        raw.append(data)
        return original(data)

    sdk_parser.parse_message = recording
    try:
        yield raw
    finally:
        sdk_parser.parse_message = original


@contextmanager
def agent_options(server: ScriptedModelServer) -> Iterator[tuple[ClaudeAgentOptions, Callable]]:
    """Options for a CLI on a fresh workspace holding ``src/App.tsx``, and a path scrubber."""
    with tempfile.TemporaryDirectory() as workspace, tempfile.TemporaryDirectory() as config:
        src = Path(workspace, "src")
        src.mkdir()
        (src / "App.tsx").write_text("export default function App() {\n  return <h1>Hi</h1>;\n}\n")
        options = ClaudeAgentOptions(
            cwd=workspace,
            tools=["Read", "Edit", "Write", "Glob", "Grep"],
            permission_mode="acceptEdits",
            setting_sources=[],
            include_partial_messages=True,
            env={
                "ANTHROPIC_BASE_URL": server.url,
                "ANTHROPIC_API_KEY": "sk-ant-record-dummy",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "CLAUDE_CONFIG_DIR": config,
                "CLAUDE_CODE_MAX_RETRIES": "2",
            },
        )

        def scrub(raw: Raw) -> Raw:
            text = json.dumps(raw).replace(str(Path(workspace).resolve()), "/WORKSPACE")
            scrubbed: Raw = json.loads(text.replace(workspace, "/WORKSPACE"))
            return scrubbed

        yield options, scrub


async def record(script: str, server: ScriptedModelServer) -> Raw:
    """The messages of one turn playing ``script``."""
    with agent_options(server) as (options, scrub), recording_parser() as raw:
        async with ClaudeSDKClient(options) as client:  # as the app runs it, no print mode
            await client.query(f"[script:{script}]")
            async for _ in client.receive_response():
                pass
        return scrub(raw)


async def record_interrupted(server: ScriptedModelServer) -> Raw:
    """What the CLI sends after an interrupt during a turn's first streamed text."""
    with agent_options(server) as (options, scrub), recording_parser() as raw:
        async with ClaudeSDKClient(options) as client:
            await client.query("[script:long_text]")
            interrupted_at: int | None = None
            async for message in client.receive_response():
                if interrupted_at is None and _is_text_delta(message):
                    await client.interrupt()
                    interrupted_at = len(raw)
        assert interrupted_at is not None, "the turn streamed no text"
        return scrub(raw[interrupted_at:])


def _is_text_delta(message: object) -> bool:
    if not isinstance(message, StreamEvent):
        return False
    delta = message.event.get("delta") or {}
    return bool(delta.get("type") == "text_delta")


async def main(names: list[str]) -> None:
    with ScriptedModelServer(script="echo") as server:
        for name in names or [*SCRIPTS, *INTERRUPTED]:
            if name in INTERRUPTED:
                messages = await record_interrupted(server)
            else:
                messages = await record(name, server)
            path = DATA / f"sdk_{name}.jsonl"
            path.write_text("".join(json.dumps(m) + "\n" for m in messages))
            print(f"{path}: {len(messages)} messages")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
