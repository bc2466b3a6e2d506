"""Record the raw CLI messages of scripted turns, for the event-translation unit tests.

Run by hand when the SDK or CLI changes:
    .venv/bin/python -m tests.support.record_sdk_messages
It writes ``tests/data/sdk_<script>.jsonl``: one raw message (as the CLI printed it and
the SDK parsed it) per line, with the workspace path replaced by ``/WORKSPACE``.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

import claude_agent_sdk._internal.client as sdk_client
from claude_agent_sdk import ClaudeAgentOptions, query

from scripted_model.server import ScriptedModelServer

DATA = Path(__file__).resolve().parents[1] / "data"
SCRIPTS = ("write_app", "read_then_edit", "overloaded_then_ok", "read_etc_passwd")


async def record(script: str, server: ScriptedModelServer) -> list[dict[str, Any]]:
    raw: list[dict[str, Any]] = []
    original = sdk_client.parse_message

    def recording(data: dict[str, Any]) -> Any:
        raw.append(data)
        return original(data)

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
        sdk_client.parse_message = recording
        try:
            async for _ in query(prompt=f"[script:{script}]", options=options):
                pass
        finally:
            sdk_client.parse_message = original
        text = json.dumps(raw).replace(str(Path(workspace).resolve()), "/WORKSPACE")
        return json.loads(text.replace(workspace, "/WORKSPACE"))


async def main() -> None:
    with ScriptedModelServer(script="echo") as server:
        for script in SCRIPTS:
            messages = await record(script, server)
            path = DATA / f"sdk_{script}.jsonl"
            path.write_text("".join(json.dumps(m) + "\n" for m in messages))
            print(f"{path}: {len(messages)} messages")


if __name__ == "__main__":
    asyncio.run(main())
