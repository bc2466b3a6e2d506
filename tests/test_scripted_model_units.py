"""Pure parts of the scripted model: SSE pieces, reading requests, the demo's CSV dashboard."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scripted_model import sse
from scripted_model.blocks import TextBlock, ToolCall, substitute
from scripted_model.conversation import (
    find_workspace,
    human_text,
    request_context,
    step_index,
    strip_line_numbers,
)
from scripted_model.dashboard import dashboard_tsx, parse_csv

pytestmark = pytest.mark.timeout(30)


@given(st.text(), st.integers(min_value=1, max_value=50))
def test_split_text_joins_back_into_the_text(value, chunks):
    pieces = sse.split_text(value, chunks)
    assert "".join(pieces) == value
    assert all(pieces) and len(pieces) <= chunks


@settings(max_examples=50)
@given(st.dictionaries(st.text(), st.recursive(st.text() | st.integers(), st.lists, max_leaves=10)))
def test_tool_input_pieces_concatenate_to_the_input(tool_input):
    resolved = sse.resolve_blocks([ToolCall("Write", tool_input)])
    events = list(sse.block_events(0, resolved[0], chunks=5))
    partial = "".join(
        data["delta"]["partial_json"] for name, data in events if name == "content_block_delta"
    )
    assert json.loads(partial) == tool_input


def test_workspace_placeholder_is_replaced_everywhere_inside_tool_input():
    value = {"file_path": "{workspace}/a", "edits": [{"path": "{workspace}/b"}], "n": 1}
    assert substitute(value, "/w") == {"file_path": "/w/a", "edits": [{"path": "/w/b"}], "n": 1}


def test_workspace_is_found_in_a_system_role_message_or_the_system_field():
    in_messages = {
        "messages": [{"role": "system", "content": " - Primary working directory: /a b/c\n"}]
    }
    in_system = {
        "system": [{"type": "text", "text": "Primary working directory: /x"}],
        "messages": [],
    }
    assert find_workspace(in_messages) == "/a b/c"
    assert find_workspace(in_system) == "/x"
    assert find_workspace({"messages": []}) is None


@pytest.mark.parametrize(
    ("content", "text"),
    [
        ("plain prompt", "plain prompt"),
        ([{"type": "text", "text": "listed prompt"}], "listed prompt"),
        ([{"type": "text", "text": "<system-reminder>x</system-reminder>"}], ""),
        ([{"type": "text", "text": "<system-reminder>x</system-reminder>\nreal"}], "real"),
        ([{"type": "tool_result", "tool_use_id": "t", "content": "done"}], ""),
    ],
)
def test_human_text_ignores_tool_results_and_system_reminders(content, text):
    assert human_text({"role": "user", "content": content}) == text


def test_step_counts_assistant_messages_after_the_latest_prompt():
    messages = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": [{"type": "text", "text": "a"}]},
        {"role": "user", "content": "two"},
        {"role": "system", "content": "env"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]},
    ]
    assert step_index(messages) == 1
    context = request_context({"messages": messages}, default_script="echo")
    assert (context.script, context.prompt, context.user_prompts) == ("echo", "two", ["one", "two"])
    assert [use.name for use in context.last_tool_uses] == ["Read"]
    assert [result.content for result in context.tool_results] == ["x"]


def test_marker_in_the_latest_prompt_selects_the_script_and_the_fault_key_is_stable():
    body = {"messages": [{"role": "user", "content": "go [script:write_app]"}]}
    first = request_context(body, default_script="demo")
    again = request_context(json.loads(json.dumps(body)), default_script="demo")
    assert first.script == "write_app" and first.fault_key == again.fault_key


def test_strip_line_numbers_recovers_the_file_text():
    assert strip_line_numbers("     1\ta,b\n     2\t1,2\n") == "a,b\n1,2\n"
    assert strip_line_numbers("1\tx\n2\ty\n3\t") == "x\ny\n"


def test_csv_columns_are_typed_and_made_unique():
    table = parse_csv('name,,name,amount\n"x, y",1,z,"1,200"\nw,,v,3.5\n')
    assert table.columns == ["name", "column_2", "name_2", "amount"]
    assert table.numeric == ["column_2", "amount"]
    assert table.label == "name"
    tsx = dashboard_tsx(table, source="data/a.csv")
    assert '{"name": "x, y", "column_2": 1, "name_2": "z", "amount": 1200}' in tsx
    assert '"column_2": ""' in tsx


def test_text_block_chunks_override_the_server_default():
    events = list(
        sse.block_events(0, sse.resolve_blocks([TextBlock("abcdef", chunks=6)])[0], chunks=2)
    )
    assert sum(1 for name, _ in events if name == "content_block_delta") == 6
