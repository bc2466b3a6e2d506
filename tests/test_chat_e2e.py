"""The chat end to end: daphne, the real SDK and CLI, the scripted model, a real socket."""

from __future__ import annotations

import pytest

from scripted_model.server import ScriptedModelServer
from tests.support.live import ChatClient, LiveServer

pytestmark = pytest.mark.timeout(120)

CSV = "month,revenue\nJan,10\nFeb,20\n"


async def test_write_turn_streams_and_completes_with_the_file(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    ready = await chat.init(session_id, files={"data/sales.csv": CSV})
    assert ready["type"] == "ready"
    assert ready["files"] == ["data/sales.csv"]
    assert ready["resumed"] is False

    frames = await chat.message(session_id, "make it [script:write_app]", clientMessageId="c1")

    types = [f["type"] for f in frames]
    assert types[0] == "stream"
    assert types[-1] == "complete"
    assert types.count("tool_start") == 1 and types.count("tool_result") == 1
    assert types.index("tool_start") < types.index("tool_result") < types.index("file_changed")
    start = frames[types.index("tool_start")]
    assert start["tool"] == "Write" and start["input"]["file_path"] == "src/App.tsx"
    result = frames[types.index("tool_result")]
    assert result["toolUseId"] == start["toolUseId"] and result["isError"] is False
    on_disk = (backend.data / "workspaces" / session_id / "src/App.tsx").read_text()
    assert frames[types.index("file_changed")]["content"] == on_disk
    complete = frames[-1]
    assert complete["files"] == {"src/App.tsx": on_disk}
    assert complete["deleted"] == [] and complete["stopped"] is False
    assert complete["result"]
    assert all(f["clientMessageId"] == "c1" and f["sessionId"] == session_id for f in frames)
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))
    assert "".join(f["text"] for f in frames if f["type"] == "stream")


async def test_read_then_edit_changes_a_file_sent_with_init(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    original = "export default function App() {\n  return <h1>Hello</h1>;\n}\n"
    await chat.init(session_id, files={"src/App.tsx": original})

    frames = await chat.message(session_id, "tweak it [script:read_then_edit]")

    tools = [f["tool"] for f in frames if f["type"] == "tool_start"]
    assert tools == ["Read", "Edit"]
    complete = frames[-1]
    assert complete["type"] == "complete"
    on_disk = (backend.data / "workspaces" / session_id / "src/App.tsx").read_text()
    assert on_disk != original
    assert complete["files"] == {"src/App.tsx": on_disk}


async def test_second_message_carries_the_first_exchange(
    chat: ChatClient, shared_model: ScriptedModelServer, session_id: str
) -> None:
    await chat.init(session_id)
    first = await chat.message(session_id, "first words [script:echo]")
    assert first[-1]["type"] == "complete"
    shared_model.clear_requests()

    second = await chat.message(session_id, "second words [script:echo]")

    assert second[-1]["type"] == "complete"
    bodies = [r.body for r in shared_model.requests if r.path == "/v1/messages"]
    texts = [str(body.get("messages")) for body in bodies]
    assert any("first words" in t and "second words" in t for t in texts)


async def test_second_message_while_busy_gets_session_busy(
    chat: ChatClient, session_id: str
) -> None:
    await chat.init(session_id)
    await chat.send(
        {"type": "message", "sessionId": session_id, "message": "go [script:long_text]"}
    )
    await chat.until("stream")
    await chat.send(
        {"type": "message", "sessionId": session_id, "message": "again", "clientMessageId": "x"}
    )
    busy = await chat.until("error")
    assert busy[-1]["code"] == "SESSION_BUSY" and busy[-1]["clientMessageId"] == "x"
    await chat.send({"type": "stop", "sessionId": session_id})
    terminal = (await chat.turn())[-1]
    assert terminal["type"] == "complete" and terminal["stopped"] is True
