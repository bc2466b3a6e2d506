"""SDK messages → protocol frames, from recorded CLI output and hand-built messages."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest
from claude_agent_sdk import (
    AssistantMessage,
    ResultMessage,
    StreamEvent,
    SystemMessage,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)
from claude_agent_sdk._internal.message_parser import parse_message

from chat.events import (
    OUTSIDE,
    FileTouched,
    TurnEnded,
    TurnTranslator,
    scrub_paths,
    summarize_tool_result,
)
from chat.protocol import StatusFrame, StreamFrame, ToolResultFrame, ToolStartFrame
from scripted_model.scripts import APP_TSX

DATA = Path(__file__).parent / "data"
WORKSPACE = PurePosixPath("/WORKSPACE")


def replay(script: str) -> list:
    translator = TurnTranslator(workspace=WORKSPACE)
    outputs = []
    for line in (DATA / f"sdk_{script}.jsonl").read_text().splitlines():
        message = parse_message(json.loads(line))
        outputs.extend(translator.translate(message))
    return outputs


def test_recorded_write_turn_becomes_stream_tool_pair_file_and_result() -> None:
    outputs = replay("write_app")

    kinds = [type(o).__name__ for o in outputs]
    assert kinds[0] == "StreamFrame" and kinds[-1] == "TurnEnded"
    [start] = [o for o in outputs if isinstance(o, ToolStartFrame)]
    [result] = [o for o in outputs if isinstance(o, ToolResultFrame)]
    assert start.tool == "Write" and start.input["file_path"] == "src/App.tsx"
    assert result.tool_use_id == start.tool_use_id and result.is_error is False
    assert result.summary == "Wrote src/App.tsx"
    assert FileTouched("src/App.tsx") in outputs
    assert (
        kinds.index("ToolStartFrame") < kinds.index("ToolResultFrame") < kinds.index("FileTouched")
    )
    ended = outputs[-1]
    assert ended.is_error is False and ended.result and ended.session_id
    text = "".join(o.text for o in outputs if isinstance(o, StreamFrame))
    assert ended.result in text


def test_recorded_read_then_edit_touches_the_file_once() -> None:
    outputs = replay("read_then_edit")

    assert [o.tool for o in outputs if isinstance(o, ToolStartFrame)] == ["Read", "Edit"]
    assert [o for o in outputs if isinstance(o, FileTouched)] == [FileTouched("src/App.tsx")]


def test_recorded_retries_become_status_frames() -> None:
    outputs = replay("overloaded_then_ok")

    statuses = [o for o in outputs if isinstance(o, StatusFrame)]
    assert [s.attempt for s in statuses] == [1, 2]
    assert all(s.status == "retrying" and s.max_attempts == 2 for s in statuses)
    assert "529" in statuses[0].message
    assert isinstance(outputs[-1], TurnEnded) and outputs[-1].is_error is False


def test_recorded_refused_read_is_an_error_result_and_touches_nothing() -> None:
    outputs = replay("read_etc_passwd")

    [start] = [o for o in outputs if isinstance(o, ToolStartFrame)]
    [result] = [o for o in outputs if isinstance(o, ToolResultFrame)]
    assert start.input["file_path"] == OUTSIDE
    assert result.is_error is True and "permission" in result.summary
    assert "/etc" not in result.summary
    assert not [o for o in outputs if isinstance(o, FileTouched)]


def stream_text(text: str, parent: str | None = None) -> StreamEvent:
    return StreamEvent(
        uuid="u",
        session_id="s",
        event={
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": text},
        },
        parent_tool_use_id=parent,
    )


def test_text_deltas_become_stream_frames_and_empty_ones_nothing() -> None:
    translator = TurnTranslator(workspace=WORKSPACE)
    assert translator.translate(stream_text("Hel")) == [StreamFrame(text="Hel")]
    assert translator.translate(stream_text("")) == []


def test_subagent_and_non_text_events_are_not_streamed() -> None:
    translator = TurnTranslator(workspace=WORKSPACE)
    json_delta = StreamEvent(
        uuid="u",
        session_id="s",
        event={
            "type": "content_block_delta",
            "delta": {"type": "input_json_delta", "partial_json": "{"},
        },
    )
    assert translator.translate(stream_text("x", parent="toolu_1")) == []
    assert translator.translate(json_delta) == []
    assert translator.translate(SystemMessage(subtype="init", data={})) == []


def test_assistant_text_is_not_sent_twice() -> None:
    translator = TurnTranslator(workspace=WORKSPACE)
    message = AssistantMessage(content=[TextBlock(text="hello")], model="m")
    assert translator.translate(message) == []


def test_long_tool_input_is_truncated_and_paths_made_relative() -> None:
    translator = TurnTranslator(workspace=WORKSPACE)
    block = ToolUseBlock(
        id="toolu_1",
        name="Write",
        input={"file_path": "/WORKSPACE/src/big.tsx", "content": "x" * 5000},
    )
    [frame] = translator.translate(AssistantMessage(content=[block], model="m"))
    assert frame.input["file_path"] == "src/big.tsx"
    assert len(frame.input["content"]) < 1100 and "5000 characters" in frame.input["content"]


def test_failed_write_and_writes_outside_touch_no_file() -> None:
    translator = TurnTranslator(workspace=WORKSPACE)
    blocks = [
        ToolUseBlock(id="t1", name="Write", input={"file_path": "/WORKSPACE/a.tsx"}),
        ToolUseBlock(id="t2", name="Write", input={"file_path": "/tmp/x"}),
        ToolUseBlock(id="t3", name="Edit", input={"file_path": "/WORKSPACE/../b"}),
    ]
    translator.translate(AssistantMessage(content=blocks, model="m"))
    results = UserMessage(
        content=[
            ToolResultBlock(tool_use_id="t1", content="boom", is_error=True),
            ToolResultBlock(tool_use_id="t2", content="ok"),
            ToolResultBlock(tool_use_id="t3", content="ok"),
        ]
    )
    outputs = translator.translate(results)
    assert not [o for o in outputs if isinstance(o, FileTouched)]
    assert [o.is_error for o in outputs] == [True, False, False]


def test_result_message_becomes_turn_ended() -> None:
    translator = TurnTranslator(workspace=WORKSPACE)
    result = ResultMessage(
        subtype="success",
        duration_ms=12,
        duration_api_ms=5,
        is_error=True,
        num_turns=1,
        session_id="abc",
        total_cost_usd=0.5,
        usage={"input_tokens": 3, "output_tokens": 4},
        result="API Error",
        api_error_status=529,
        terminal_reason="aborted_streaming",
    )
    [ended] = translator.translate(result)
    assert ended == TurnEnded(
        result="API Error",
        is_error=True,
        subtype="success",
        usage={
            "input_tokens": 3,
            "output_tokens": 4,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        },
        cost_usd=0.5,
        duration_ms=12,
        session_id="abc",
        api_error_status=529,
        interrupted=True,
    )


@pytest.mark.parametrize(
    ("tool", "path", "content", "is_error", "summary"),
    [
        ("Read", "src/App.tsx", APP_TSX, False, "Read src/App.tsx"),
        ("Edit", "src/App.tsx", "ok", False, "Edited src/App.tsx"),
        ("Glob", None, "a.tsx\nb.tsx\nc.tsx", False, "3 matches"),
        ("Glob", None, "", False, "No matches"),
        ("Grep", None, "only.tsx", False, "only.tsx"),
        ("Read", "x", "\n  File does not exist.\nmore", True, "File does not exist."),
        ("Read", "x", [{"type": "text", "text": "denied"}], True, "denied"),
        ("Read", "x", None, True, "The tool failed."),
    ],
)
def test_tool_result_summaries(tool, path, content, is_error, summary) -> None:
    assert summarize_tool_result(tool, path, content, is_error, workspace=WORKSPACE) == summary


def tool_turn(tool: str, tool_input: dict, result: str, is_error: bool = False) -> list:
    translator = TurnTranslator(workspace=WORKSPACE)
    block = ToolUseBlock(id="t1", name=tool, input=tool_input)
    outputs = translator.translate(AssistantMessage(content=[block], model="m"))
    message = UserMessage(content=[ToolResultBlock("t1", content=result, is_error=is_error)])
    return outputs + translator.translate(message)


def test_a_refusal_naming_the_cli_home_shows_no_server_path() -> None:
    home = "/srv/data/var/claude/s1/.claude.json"  # ~/.claude.json, as the CLI expands it
    start, result = tool_turn(
        "Read",
        {"file_path": "~/.claude.json"},
        f"file_path '{home}' is outside the workspace; only files in it can be used.",
        is_error=True,
    )
    assert start.input == {"file_path": "~/.claude.json"}
    assert (
        result.summary
        == f"file_path '{OUTSIDE}' is outside the workspace; only files in it can be used."
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "<tool_use_error>File does not exist. Note: your current working directory is "
            "/WORKSPACE.</tool_use_error>",
            "<tool_use_error>File does not exist. Note: your current working directory is "
            "the workspace.</tool_use_error>",
        ),
        (
            "Permission to read /etc/passwd has been denied.",
            f"Permission to read {OUTSIDE} has been denied.",
        ),
        (
            "File created successfully at: /WORKSPACE/src/a.tsx",
            "File created successfully at: src/a.tsx",
        ),
        ("/WORKSPACE/../victim/src/App.tsx", OUTSIDE),
        ("/WORKSPACE2/x and //srv/y, (/tmp/z)", f"{OUTSIDE} and {OUTSIDE}, ({OUTSIDE})"),
        (
            "/WORKSPACE/src/a.ts:3:// see https://example.com/docs",
            "src/a.ts:3:// see https://example.com/docs",
        ),
        ("file:///etc/passwd", f"file:{OUTSIDE}"),
        (
            "src/App.tsx, **/*.tsx, ~/x, </h1>, a / b, 3/4",
            "src/App.tsx, **/*.tsx, ~/x, </h1>, a / b, 3/4",
        ),
    ],
)
def test_absolute_paths_in_cli_texts_become_relative_or_hidden(text: str, shown: str) -> None:
    assert scrub_paths(WORKSPACE, text) == shown


def test_glob_and_grep_results_with_absolute_paths_show_relative_ones() -> None:
    [_, one] = tool_turn(
        "Glob", {"pattern": "src/*.tsx", "path": "/WORKSPACE"}, "/WORKSPACE/src/App.tsx"
    )
    [start, grep] = tool_turn(
        "Grep",
        {"pattern": "useState", "path": "/WORKSPACE/src", "output_mode": "content"},
        "/WORKSPACE/src/App.tsx:1:import { useState } from 'react';",
    )
    assert one.summary == "src/App.tsx"
    assert start.input["path"] == "src"
    assert grep.summary == "src/App.tsx:1:import { useState } from 'react';"


def test_tool_inputs_name_no_absolute_path_outside_the_workspace() -> None:
    translator = TurnTranslator(workspace=WORKSPACE)
    block = ToolUseBlock(
        id="t1",
        name="Grep",
        input={"pattern": "x", "path": "/srv/data", "glob": "/etc/*", "output_mode": "content"},
    )
    edit = ToolUseBlock(
        id="t2",
        name="Edit",
        input={
            "file_path": "/WORKSPACE/src/a.tsx",
            "old_string": "import x from '/WORKSPACE/src/b';",
            "new_string": "import x from '/srv/lib/b';",
        },
    )
    [grep, edited] = translator.translate(AssistantMessage(content=[block, edit], model="m"))
    assert grep.input == {
        "pattern": "x",
        "path": OUTSIDE,
        "glob": OUTSIDE,
        "output_mode": "content",
    }
    assert edited.input["old_string"] == "import x from 'src/b';"
    assert edited.input["new_string"] == f"import x from '{OUTSIDE}';"
