"""Undo rewinds files and conversation together, turn by turn."""

from __future__ import annotations

import pytest

from scripted_model.scripts import APP_TSX
from scripted_model.server import ScriptedModelServer
from tests.support.live import ChatClient, LiveServer

pytestmark = pytest.mark.timeout(120)

ORIGINAL = "export default function App() {\n  return <h1>Original</h1>;\n}\n"


async def undo(chat: ChatClient, session_id: str, turns: int = 1) -> dict:
    await chat.send({"type": "undo", "sessionId": session_id, "turns": turns})
    return (await chat.until("undone", "error"))[-1]


def sent_messages(model: ScriptedModelServer) -> str:
    return str([r.body.get("messages") for r in model.requests])


async def test_undo_restores_files_turn_by_turn_byte_identical(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    app = backend.data / "workspaces" / session_id / "src" / "App.tsx"
    await chat.init(session_id, files={"src/App.tsx": ORIGINAL, "data/a.csv": "x\n1\n"})
    await chat.message(session_id, "[script:write_app]")
    assert app.read_text() == APP_TSX
    await chat.message(session_id, "[script:read_then_edit]")
    edited = app.read_text()
    assert edited != APP_TSX

    first = await undo(chat, session_id)
    after_first = app.read_text()
    second = await undo(chat, session_id)
    after_second = app.read_text()
    third = await undo(chat, session_id)

    assert first["type"] == "undone" and first["files"] == {"src/App.tsx": APP_TSX}
    assert after_first == APP_TSX
    assert second["files"] == {"src/App.tsx": ORIGINAL} and after_second == ORIGINAL
    assert second["messageCount"] == 0
    assert third["type"] == "error" and third["code"] == "NOTHING_TO_UNDO"
    assert third["recoverable"] is True


async def test_undo_deletes_files_the_turn_created_and_several_at_once(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    workspace = backend.data / "workspaces" / session_id
    await chat.init(session_id, files={"data/a.csv": "x\n1\n"})
    await chat.message(session_id, "[script:write_app]")
    await chat.message(session_id, "[script:multi_tool]")

    undone = await undo(chat, session_id, turns=2)

    assert undone["turns"] == 2 and "src/App.tsx" in undone["deleted"]
    assert sorted(p.name for p in workspace.rglob("*") if p.is_file()) == ["a.csv"]


async def test_next_turn_no_longer_remembers_undone_turns(
    chat: ChatClient, shared_model: ScriptedModelServer, session_id: str
) -> None:
    await chat.init(session_id)
    await chat.message(session_id, "keep apricot [script:echo]")
    await chat.message(session_id, "forget banana [script:echo]")
    await undo(chat, session_id)
    shared_model.clear_requests()

    after = await chat.message(session_id, "what now [script:echo]")

    sent = sent_messages(shared_model)
    assert after[-1]["type"] == "complete"
    assert "keep apricot" in sent and "what now" in sent
    assert "forget banana" not in sent
    assert "2 user prompts" in after[-1]["result"]


async def test_undo_of_every_turn_starts_a_fresh_conversation(
    chat: ChatClient, shared_model: ScriptedModelServer, session_id: str
) -> None:
    await chat.init(session_id)
    await chat.message(session_id, "forget cherry [script:echo]")
    await undo(chat, session_id)
    shared_model.clear_requests()

    after = await chat.message(session_id, "hello again [script:echo]")

    assert "forget cherry" not in sent_messages(shared_model)
    assert "1 user prompt" in after[-1]["result"]


async def test_undo_while_a_turn_runs_is_session_busy(chat: ChatClient, session_id: str) -> None:
    await chat.init(session_id)
    await chat.begin(session_id, "[script:long_text]")

    busy = await undo(chat, session_id)
    await chat.send({"type": "stop", "sessionId": session_id})
    await chat.turn()

    assert busy["code"] == "SESSION_BUSY"


async def test_undo_reaches_every_socket_of_the_session(
    backend: LiveServer, session_id: str
) -> None:
    one = await ChatClient.connect(backend.ws_url)
    two = await ChatClient.connect(backend.ws_url)
    await one.init(session_id)
    await two.init(session_id)
    await one.message(session_id, "[script:write_app]")
    await two.turn()

    from_one = await undo(one, session_id)
    from_two = (await two.until("undone"))[-1]
    await one.close()
    await two.close()

    assert from_one == from_two and from_one["deleted"] == ["src/App.tsx"]


async def test_an_undone_message_can_be_sent_again_and_counts_stay_true(
    chat: ChatClient, shared_model: ScriptedModelServer, session_id: str
) -> None:
    await chat.init(session_id)
    first = await chat.message(session_id, "one [script:echo]", clientMessageId="m1")
    failed = await chat.message(session_id, "[script:overloaded_529]", clientMessageId="m2")
    undone_failure = await undo(chat, session_id)
    undone_first = await undo(chat, session_id)
    shared_model.clear_requests()

    again = await chat.message(session_id, "one [script:echo]", clientMessageId="m1")

    assert failed[-1]["type"] == "error"
    assert undone_failure["messageCount"] == 1  # the failed turn was never counted
    assert undone_first["messageCount"] == 0
    assert again[-1]["type"] == "complete" and again[-1]["seq"] > first[-1]["seq"]
    assert shared_model.requests  # it ran again instead of replaying the old outcome
