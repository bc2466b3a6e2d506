"""The conversation lives in the database: a server that lost its disk continues it.

End to end: daphne, the real SDK and CLI, the scripted model. The CLI's own transcripts
(``DATA_DIR/claude/<session>``) are removed between two runs of a server, as if it
came back on a new disk; the conversation must come back from the transcript store.
"""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from scripted_model.server import ScriptedModelServer
from tests.support.live import ChatClient, LiveServer, a_request_held
from tests.support.stored_transcripts import stored_lines

pytestmark = [pytest.mark.database, pytest.mark.timeout(120)]


def lose_local_transcripts(server: LiveServer, session_id: str) -> None:
    """Remove what the CLI keeps of the session on this server's disk."""
    shutil.rmtree(server.data / "var" / "claude" / session_id)


async def test_the_conversation_resumes_from_the_database_without_the_local_transcript(
    own_server, shared_model: ScriptedModelServer
) -> None:
    with own_server() as server:
        client = await ChatClient.connect(server.ws_url)
        await client.init("lost1")
        first = await client.message("lost1", "remember pineapple [script:echo]")
        await client.close()
        server.stop()
        lose_local_transcripts(server, "lost1")
        server.start()
        shared_model.clear_requests()
        client = await ChatClient.connect(server.ws_url)
        ready = await client.init("lost1")
        second = await client.message("lost1", "what fruit? [script:echo]")
        await client.close()

    assert first[-1]["type"] == second[-1]["type"] == "complete"
    assert ready["resumed"] is True
    assert a_request_held(shared_model, "remember pineapple", "what fruit?")


async def test_every_line_of_a_turn_the_cli_wrote_is_in_the_database(
    own_server, shared_model: ScriptedModelServer
) -> None:
    with own_server() as server:
        client = await ChatClient.connect(server.ws_url)
        await client.init("lines1")
        done = await client.message("lines1", "make it [script:write_app]")
        await client.close()
        local_files = list((server.data / "var" / "claude" / "lines1").glob("projects/*/*.jsonl"))
        stored = stored_lines(server, "lines1")

    assert done[-1]["type"] == "complete"
    assert len(local_files) == 1
    local = [json.loads(text) for text in local_files[0].read_text().splitlines()]
    conversation = [line for line in local if line["type"] in ("user", "assistant")]
    assert len(conversation) >= 4  # the prompt, a Write, its result, the closing text
    stored_conversation = [line for _, line in stored if line["type"] in ("user", "assistant")]
    assert stored_conversation == conversation
    assert {sdk_session_id for sdk_session_id, _ in stored} == {local_files[0].stem}


async def test_a_server_killed_mid_turn_has_stored_what_the_turn_had_said(
    own_server, shared_model: ScriptedModelServer
) -> None:
    with own_server() as server:
        client = await ChatClient.connect(server.ws_url)
        await client.init("kill1")
        await client.message("kill1", "remember mango [script:echo]")
        # A Write, then a long text: the kill comes while the text streams.
        await client.begin("kill1", "note papaya [script:write_then_long_text]")
        await asyncio.sleep(0.5)  # the mirror's append runs beside the stream
        server.kill()
        await client.close()
        lose_local_transcripts(server, "kill1")
        server.start()
        shared_model.clear_requests()
        client = await ChatClient.connect(server.ws_url)
        await client.init("kill1")
        after = await client.message("kill1", "which fruit? [script:echo]")
        await client.close()

    assert after[-1]["type"] == "complete"
    # The killed turn's prompt and its Write (said before the kill) came back with it.
    assert a_request_held(shared_model, "remember mango", "note papaya", "src/App.tsx")


async def test_undo_rewinds_a_conversation_loaded_from_the_database(
    own_server, shared_model: ScriptedModelServer
) -> None:
    with own_server() as server:
        client = await ChatClient.connect(server.ws_url)
        await client.init("undo1")
        await client.message("undo1", "remember kiwi [script:echo]")
        await client.message("undo1", "forget it, say plum [script:echo]")
        await client.close()
        server.stop()
        lose_local_transcripts(server, "undo1")
        server.start()
        client = await ChatClient.connect(server.ws_url)
        await client.init("undo1")
        await client.send({"type": "undo", "sessionId": "undo1", "turns": 1})
        undone = (await client.until("undone", "error"))[-1]
        shared_model.clear_requests()
        after = await client.message("undo1", "which fruit? [script:echo]")
        await client.close()
        history = server.get_json("/api/sessions/undo1/messages")

    assert undone["type"] == "undone"
    assert after[-1]["type"] == "complete"
    assert a_request_held(shared_model, "remember kiwi", "which fruit?")
    assert not a_request_held(shared_model, "say plum")
    texts = [m["text"] for m in history["messages"] if m["role"] == "user"]
    assert texts == ["remember kiwi [script:echo]", "which fruit? [script:echo]"]
