"""The real SDK and bundled CLI driven by the scripted model server.

Facts these tests pin down (bundled CLI 2.1.331, SDK 0.2.188):
- The workspace reaches the model as ``Primary working directory: ...`` in a
  ``role: "system"`` entry of ``messages``.
- Each request offers exactly the five tools plus ``DeferredToolPlaceholder``.
- An API failure ends the run with an ``AssistantMessage`` whose ``error`` is
  set and whose text starts "API Error", then a ``ResultMessage`` with
  ``is_error=True``, then ``query()`` raises ``ResultError`` (exit code 1,
  ``terminal_reason == "api_error"``).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import (
    AssistantMessage,
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ResultError,
    ResultMessage,
    TextBlock,
    query,
)

from scripted_model.conversation import find_workspace, tool_results
from scripted_model.scripts import APP_TSX, EDITED_HEADING

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(45)]

TOOLS = ["Read", "Edit", "Write", "Glob", "Grep"]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    path.mkdir()
    return path.resolve()


def options(server, workspace: Path, **env: str) -> ClaudeAgentOptions:
    config = workspace.parent / "claude-config"
    config.mkdir(exist_ok=True)
    return ClaudeAgentOptions(
        cwd=str(workspace),
        tools=TOOLS,
        permission_mode="acceptEdits",
        setting_sources=[],
        env={
            "ANTHROPIC_BASE_URL": server.url,
            "ANTHROPIC_API_KEY": "sk-ant-test-dummy",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CONFIG_DIR": str(config),
            "CLAUDE_CODE_MAX_RETRIES": "1",
            **env,
        },
    )


@dataclass
class Run:
    messages: list[Any] = field(default_factory=list)
    error: Exception | None = None

    @property
    def result(self) -> ResultMessage:
        return next(m for m in self.messages if isinstance(m, ResultMessage))

    @property
    def assistant_text(self) -> str:
        return "".join(
            block.text
            for message in self.messages
            if isinstance(message, AssistantMessage)
            for block in message.content
            if isinstance(block, TextBlock)
        )


async def run(prompt: str, opts: ClaudeAgentOptions) -> Run:
    outcome = Run()
    try:
        async for message in query(prompt=prompt, options=opts):
            outcome.messages.append(message)
    except Exception as error:  # recorded and asserted by the caller
        outcome.error = error
    return outcome


def last_tool_results(server) -> list:
    return tool_results(server.requests[-1].body["messages"][-1])


async def test_write_app_writes_the_scripted_component(scripted_model, workspace):
    outcome = await run("Make me an app [script:write_app]", options(scripted_model, workspace))
    assert outcome.error is None and not outcome.result.is_error
    assert (workspace / "src" / "App.tsx").read_text() == APP_TSX
    assert outcome.assistant_text.endswith("Done: src/App.tsx holds a counter component.")
    first, second = scripted_model.requests
    assert (first.path, first.query, first.body["stream"]) == (
        "/v1/messages",
        {"beta": "true"},
        True,
    )
    assert [m["role"] for m in second.body["messages"]] == ["user", "system", "assistant", "user"]
    assert second.body["messages"][2]["content"][1]["input"]["content"] == APP_TSX
    assert "File created successfully" in last_tool_results(scripted_model)[0].content


async def test_requests_offer_only_the_five_tools_and_carry_the_workspace(
    scripted_model, workspace
):
    await run("[script:write_app]", options(scripted_model, workspace))
    for request in scripted_model.requests:
        assert sorted(request.tools) == sorted([*TOOLS, "DeferredToolPlaceholder"])
        assert "x-api-key" not in request.headers
        assert find_workspace(request.body) == str(workspace)
        assert "Primary working directory" not in json.dumps(request.body["system"])
        system_entries = [m for m in request.body["messages"] if m["role"] == "system"]
        assert f"Primary working directory: {workspace}" in json.dumps(system_entries)


async def test_read_then_edit_applies_the_edit(scripted_model, workspace):
    (workspace / "src").mkdir()
    (workspace / "src" / "App.tsx").write_text(APP_TSX)
    outcome = await run("[script:read_then_edit]", options(scripted_model, workspace))
    assert outcome.error is None
    expected = APP_TSX.replace("<h1>Hello from the scripted model</h1>", EDITED_HEADING)
    assert (workspace / "src" / "App.tsx").read_text() == expected
    assert [r.step for r in scripted_model.requests] == [0, 1, 2]


async def test_glob_and_grep_report_what_the_tools_found(scripted_model, workspace):
    (workspace / "src").mkdir()
    (workspace / "src" / "App.tsx").write_text(APP_TSX)
    outcome = await run("[script:glob_and_grep]", options(scripted_model, workspace))
    assert outcome.error is None
    glob_result = tool_results(scripted_model.requests[1].body["messages"][-1])[0]
    assert glob_result.content.strip() == "src/App.tsx"  # Glob lists paths relative to the cwd
    assert "src/App.tsx" in outcome.assistant_text


async def test_multi_tool_runs_every_call_of_one_turn(scripted_model, workspace):
    outcome = await run("[script:multi_tool]", options(scripted_model, workspace))
    assert outcome.error is None
    assert (workspace / "src" / "Header.tsx").exists() and (
        workspace / "src" / "Footer.tsx"
    ).exists()
    results = last_tool_results(scripted_model)
    assert len(results) == 3 and not any(r.is_error for r in results)


async def test_echo_counts_prompts_across_a_resumed_conversation(scripted_model, workspace):
    opts = options(scripted_model, workspace)
    first = await run("first [script:echo]", opts)
    assert (
        first.assistant_text
        == 'You said: "first [script:echo]". I see 1 user prompt in this conversation.'
    )
    opts.resume = first.result.session_id
    second = await run("second [script:echo]", opts)
    assert second.assistant_text == (
        'You said: "second [script:echo]". I see 2 user prompts in this conversation.'
    )


async def test_demo_builds_a_dashboard_over_the_uploaded_csv(scripted_model, workspace):
    (workspace / "data").mkdir()
    (workspace / "data" / "sales.csv").write_text("region,units,price\nnorth,3,9.5\nsouth,7,4\n")
    outcome = await run("Build me a dashboard", options(scripted_model, workspace))
    assert outcome.error is None
    app = (workspace / "src" / "App.tsx").read_text()
    assert 'const COLUMNS: string[] = ["region", "units", "price"];' in app
    assert '{"region": "south", "units": 7, "price": 4}' in app
    assert "I'll chart units by region" in outcome.assistant_text
    read = scripted_model.requests[2].body["messages"][-2]["content"][-1]
    assert read["input"] == {"file_path": str(workspace / "data" / "sales.csv")}
    assert [r.step for r in scripted_model.requests] == [0, 1, 2, 3]


async def test_demo_without_a_csv_falls_back_to_sample_data(scripted_model, workspace):
    outcome = await run("Build me a dashboard", options(scripted_model, workspace))
    assert outcome.error is None
    assert 'const SOURCE = "sample data";' in (workspace / "src" / "App.tsx").read_text()
    assert "no CSV file" in outcome.assistant_text


async def test_long_text_can_be_interrupted(scripted_model, workspace):
    async with ClaudeSDKClient(options(scripted_model, workspace)) as client:
        await client.query("[script:long_text]")
        await asyncio.sleep(0.8)
        started = time.monotonic()
        await client.interrupt()
        messages = [message async for message in client.receive_response()]
        assert time.monotonic() - started < 3
    assert messages[-1].subtype == "error_during_execution"


@pytest.mark.parametrize(
    ("script", "status", "error", "text", "requests"),
    [
        ("overloaded_529", 529, "server_error", "API Error: 529 Overloaded", 2),
        ("server_error_500", 500, "server_error", "API Error: 500 Internal server error", 2),
        ("rate_limited_429", 429, "rate_limit", "API Error: Request rejected (429)", 2),
        # two streamed attempts, then one non-streaming fallback request
        ("drop_mid_stream", None, "server_error", "API Error: Connection dropped (ECONNRESET)", 3),
    ],
)
async def test_faults_end_the_run_with_an_api_error(
    scripted_model, workspace, script, status, error, text, requests
):
    outcome = await run(f"[script:{script}]", options(scripted_model, workspace))
    [assistant] = [m for m in outcome.messages if isinstance(m, AssistantMessage)]
    assert assistant.error == error and assistant.model == "<synthetic>"
    assert outcome.assistant_text.startswith(text)
    assert outcome.result.is_error
    assert isinstance(outcome.error, ResultError)
    assert outcome.error.terminal_reason == "api_error"
    assert outcome.error.api_error_status == status
    assert outcome.error.exit_code == 1
    assert len(scripted_model.requests) == requests
    assert [r.body["stream"] for r in scripted_model.requests] == [True, True, False][:requests]


async def test_overloaded_then_ok_recovers_within_two_retries(scripted_model, workspace):
    opts = options(scripted_model, workspace, CLAUDE_CODE_MAX_RETRIES="2")
    outcome = await run("[script:overloaded_then_ok]", opts)
    assert outcome.error is None and not outcome.result.is_error
    assert outcome.assistant_text == "Answered after two overloaded errors."
    assert len(scripted_model.requests) == 3


async def test_a_stall_lasts_until_the_server_stops(scripted_model, workspace):
    task = asyncio.create_task(run("[script:stall]", options(scripted_model, workspace)))
    await asyncio.sleep(2)
    assert not task.done() and len(scripted_model.requests) == 1
    scripted_model.stop()
    outcome = await asyncio.wait_for(task, 20)
    assert outcome.assistant_text.startswith("API Error: Connection refused")
    assert isinstance(outcome.error, ResultError)


async def test_a_stall_is_ended_by_interrupt(scripted_model, workspace):
    async with ClaudeSDKClient(options(scripted_model, workspace)) as client:
        await client.query("[script:stall]")
        await asyncio.sleep(1.5)
        await client.interrupt()
        messages = [message async for message in client.receive_response()]
    assert isinstance(messages[-1], ResultMessage) and messages[-1].is_error
    assert messages[-1].subtype == "error_during_execution"


@pytest.mark.parametrize(
    ("script", "refusals"),
    [
        ("read_etc_passwd", ["requested permissions to read from /etc/passwd"]),
        ("read_proc_environ", ["device or process file"]),
        (
            "write_parent",
            ["requested permissions to write to", "requested permissions to write to"],
        ),
        ("glob_root", ["requested permissions to read from /"] * 2),
        ("grep_root", ["requested permissions to read from /"] * 2),
        ("read_sibling", ["requested permissions to read from"]),
    ],
)
async def test_hostile_scripts_are_refused_by_the_cli(scripted_model, workspace, script, refusals):
    sibling = workspace.parent / "other-session" / "src"
    sibling.mkdir(parents=True)
    (sibling / "App.tsx").write_text("SIBLING-SECRET")
    outcome = await run(f"[script:{script}]", options(scripted_model, workspace))
    assert outcome.error is None
    results = last_tool_results(scripted_model)
    assert [r.is_error for r in results] == [True] * len(refusals)
    for result, refusal in zip(results, refusals, strict=True):
        assert refusal in result.content
    sent = json.dumps([r.body for r in scripted_model.requests])
    assert "root:x:0:0" not in sent and "SIBLING-SECRET" not in sent
    assert not (workspace.parent / "escape.txt").exists()
    assert not (workspace.parent.parent / "x").exists()
    assert outcome.assistant_text.startswith("The tools answered:")
