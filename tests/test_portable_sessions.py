"""A session moves between servers: everything that must survive is in the database.

Two servers on disks of their own at the same path (``cluster``: a mount namespace
each) share one database (SQLite, and PostgreSQL in the second pass). What one server
did, the other continues: files, undo states, the conversation, stored outcomes and the
HTTP history.
"""

from __future__ import annotations

import base64

import pytest

from scripted_model.scripts import APP_TSX
from scripted_model.server import ScriptedModelServer
from tests.support.live import ChatClient, a_request_held

pytestmark = [pytest.mark.timeout(120), pytest.mark.database]

LOGO = bytes(range(256)) * 4  # not UTF-8: must come back byte for byte
FILES = {
    "data/sales.csv": "month,revenue\nJan,10\nFeb,20\n",
    "public/logo.png": {"content": base64.b64encode(LOGO).decode(), "encoding": "base64"},
}


async def test_a_session_continues_on_another_server_with_files_undo_and_conversation(
    cluster, shared_model: ScriptedModelServer
) -> None:
    a, b = cluster(), cluster()
    a.start()
    on_a = await ChatClient.connect(a.ws_url)
    await on_a.init("move1", files=FILES)
    first = await on_a.message("move1", "remember pine [script:write_app]", clientMessageId="m1")
    second = await on_a.message("move1", "[script:read_then_edit]", clientMessageId="m2")
    hashes_on_a = (await on_a.init("move1"))["hashes"]
    await on_a.close()
    a.stop()
    assert first[-1]["type"] == second[-1]["type"] == "complete"
    assert second[-1]["files"]["src/App.tsx"] != APP_TSX  # the second turn edited it

    b.start()
    shared_model.clear_requests()
    on_b = await ChatClient.connect(b.ws_url)
    ready = await on_b.init("move1")
    resent = await on_b.message("move1", "[script:write_app]", clientMessageId="m1")
    third = await on_b.message("move1", "what fruit? [script:echo]")
    await on_b.send({"type": "undo", "sessionId": "move1", "turns": 2})
    undone = (await on_b.until("undone", "error"))[-1]
    history = b.get_json("/api/sessions/move1/messages")
    await on_b.close()

    assert ready["files"] == sorted([*FILES, "src/App.tsx"])
    assert ready["hashes"] == hashes_on_a
    assert ready["resumed"] is True and ready["messageCount"] == 2
    assert resent == [first[-1]]  # the outcome stored on A, not a new turn
    assert third[-1]["type"] == "complete"
    assert a_request_held(shared_model, "remember pine", "what fruit?")
    assert undone["type"] == "undone"  # the third turn and A's second one
    assert undone["files"]["src/App.tsx"] == APP_TSX
    assert (b.own_disk / "workspaces" / "move1" / "public" / "logo.png").read_bytes() == LOGO
    said = str(history)  # read after the undo: A's first turn stays, the undone ones go
    assert "remember pine" in said and "what fruit?" not in said


async def test_a_server_killed_mid_turn_loses_no_completed_turn(
    cluster, shared_model: ScriptedModelServer
) -> None:
    a, b = cluster(), cluster()
    a.start()
    on_a = await ChatClient.connect(a.ws_url)
    await on_a.init("kill1", files=FILES)
    done = await on_a.message("kill1", "remember mango [script:write_app]")
    await on_a.begin("kill1", "[script:long_text]")
    a.kill()
    await on_a.close()

    b.start()
    shared_model.clear_requests()
    on_b = await ChatClient.connect(b.ws_url)
    ready = await on_b.init("kill1")
    after = await on_b.message("kill1", "which fruit? [script:echo]")
    await on_b.close()

    assert done[-1]["type"] == "complete"
    assert ready["files"] == sorted([*FILES, "src/App.tsx"])
    assert ready["resumed"] is True
    assert after[-1]["type"] == "complete"
    assert a_request_held(shared_model, "remember mango", "which fruit?")
