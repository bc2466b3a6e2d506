"""The sessions HTTP API: a session's facts, its conversation, its removal.

End to end: daphne, the real SDK and CLI, the scripted model; turns run over the
socket, then the API is asked over real HTTP. The folding of transcripts into chat
messages is also tested alone, with hand-built transcript messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import SessionMessage

from chat.api.transcripts import conversation
from tests.support.deep_trees import deep_tree
from tests.support.live import ChatClient, LiveServer, claude_processes
from tests.support.stored_transcripts import stored_lines

pytestmark = [pytest.mark.database, pytest.mark.timeout(120)]

FRONTEND = "http://localhost:2500"
TOKEN = "history-token-0123456789"
WRITE_PROMPT = "make it [script:write_app]"
ECHO_PROMPT = "and now [script:echo]"


@dataclass
class Reply:
    status: int
    headers: Message
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def _request(url: str, method: str, headers: dict[str, str]) -> Reply:
    request = urllib.request.Request(url, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Reply(error.code, error.headers, error.read())


async def http(
    server: LiveServer, method: str, path: str, headers: dict[str, str] | None = None
) -> Reply:
    """One HTTP request to ``server``, answered whatever its status."""
    return await asyncio.to_thread(_request, server.http_url + path, method, headers or {})


def streamed_text(frames: list[dict[str, Any]]) -> str:
    return "".join(f["text"] for f in frames if f["type"] == "stream")


async def two_turns(chat: ChatClient, session_id: str) -> list[list[dict[str, Any]]]:
    """A write turn and a text turn; the frames of each."""
    await chat.init(session_id)
    first = await chat.message(session_id, WRITE_PROMPT)
    second = await chat.message(session_id, ECHO_PROMPT)
    assert first[-1]["type"] == second[-1]["type"] == "complete"
    return [first, second]


# --- GET /api/sessions/<id> --------------------------------------------------------


async def test_session_has_its_counts_cost_and_files(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    await two_turns(chat, session_id)

    reply = await http(backend, "GET", f"/api/sessions/{session_id}")

    assert reply.status == 200
    body = reply.json
    assert set(body) == {
        "sessionId",
        "createdAt",
        "lastActiveAt",
        "messageCount",
        "costUsd",
        "files",
    }
    assert body["sessionId"] == session_id
    assert body["messageCount"] == 2
    assert body["costUsd"] > 0
    assert body["files"] == ["src/App.tsx"]
    created = datetime.fromisoformat(body["createdAt"])
    assert created.tzinfo is not None
    assert created <= datetime.fromisoformat(body["lastActiveAt"])
    assert reply.headers["Cache-Control"] == "no-store"


async def test_session_without_turns_has_no_messages(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    await chat.init(session_id, files={"data/sales.csv": "month,revenue\nJan,10\n"})

    summary = await http(backend, "GET", f"/api/sessions/{session_id}")
    history = await http(backend, "GET", f"/api/sessions/{session_id}/messages")

    assert summary.json["messageCount"] == 0 and summary.json["files"] == ["data/sales.csv"]
    assert history.status == 200
    assert history.json == {"sessionId": session_id, "messages": []}


# --- GET /api/sessions/<id>/messages --------------------------------------------------


async def test_messages_redraw_what_was_streamed(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    first, second = await two_turns(chat, session_id)

    reply = await http(backend, "GET", f"/api/sessions/{session_id}/messages")

    assert reply.status == 200
    assert reply.json["sessionId"] == session_id
    messages = reply.json["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert [messages[0]["text"], messages[2]["text"]] == [WRITE_PROMPT, ECHO_PROMPT]
    assert messages[1]["text"] == streamed_text(first)
    assert messages[3]["text"] == streamed_text(second)
    start = next(f for f in first if f["type"] == "tool_start")
    result = next(f for f in first if f["type"] == "tool_result")
    assert messages[1]["tools"] == [
        {
            "toolUseId": start["toolUseId"],
            "tool": "Write",
            "input": start["input"],
            "isError": False,
            "summary": result["summary"],
        }
    ]
    assert start["input"]["file_path"] == "src/App.tsx"
    assert result["summary"] == "Wrote src/App.tsx"
    assert messages[0]["tools"] == messages[2]["tools"] == messages[3]["tools"] == []
    assert len({m["uuid"] for m in messages}) == 4


async def test_a_transcript_gone_from_disk_reads_from_the_database(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    await chat.init(session_id)
    frames = await chat.message(session_id, ECHO_PROMPT)
    await chat.close()  # the runner lets go of the session
    shutil.rmtree(backend.data / "var" / "claude" / session_id / "projects")

    reply = await http(backend, "GET", f"/api/sessions/{session_id}/messages")

    assert reply.status == 200
    assert [m["text"] for m in reply.json["messages"]] == [ECHO_PROMPT, streamed_text(frames)]


async def undo(chat: ChatClient, session_id: str, turns: int = 1) -> dict[str, Any]:
    await chat.send({"type": "undo", "sessionId": session_id, "turns": turns})
    return (await chat.until("undone", "error"))[-1]


async def test_undone_turns_leave_the_history(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    first, _ = await two_turns(chat, session_id)
    kept = [WRITE_PROMPT, streamed_text(first)]
    path = f"/api/sessions/{session_id}/messages"

    assert (await undo(chat, session_id))["type"] == "undone"
    after_undo = await http(backend, "GET", path)
    third = await chat.message(session_id, "once more [script:echo]")
    after_next_turn = await http(backend, "GET", path)
    assert (await undo(chat, session_id, turns=2))["type"] == "undone"
    after_undoing_all = await http(backend, "GET", path)

    assert [m["text"] for m in after_undo.json["messages"]] == kept
    texts = [m["text"] for m in after_next_turn.json["messages"]]
    assert texts == [*kept, "once more [script:echo]", streamed_text(third)]
    assert after_undoing_all.json["messages"] == []


# --- DELETE /api/sessions/<id> -------------------------------------------------------


async def test_delete_removes_workspace_transcript_and_rows(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    await two_turns(chat, session_id)
    workspace = backend.data / "workspaces" / session_id
    config_dir = backend.data / "var" / "claude" / session_id
    stamp = backend.data / "workspaces" / ".stamps" / session_id
    assert workspace.is_dir() and stamp.is_file()
    assert any(config_dir.glob("projects/*/*.jsonl"))
    assert stored_lines(backend, session_id)

    deleted = await http(backend, "DELETE", f"/api/sessions/{session_id}")

    assert deleted.status == 204 and deleted.body == b""
    assert stored_lines(backend, session_id) == []
    assert not workspace.exists()
    assert not config_dir.exists()
    assert not stamp.exists()
    for path in (f"/api/sessions/{session_id}", f"/api/sessions/{session_id}/messages"):
        gone = await http(backend, "GET", path)
        assert gone.status == 404 and gone.json["code"] == "SESSION_NOT_FOUND"
    again = await http(backend, "DELETE", f"/api/sessions/{session_id}")
    assert again.status == 404 and again.json["code"] == "SESSION_NOT_FOUND"
    deletions = [
        json.loads(line)
        for line in backend.log_text().splitlines()
        if '"session deleted"' in line and session_id in line
    ]
    assert [d["sessionId"] for d in deletions] == [session_id]
    # The stored files and undo states went too: the id starts afresh.
    ready = await chat.init(session_id)
    await chat.send({"type": "undo", "sessionId": session_id})
    refused = (await chat.until("error"))[-1]
    assert ready["files"] == [] and refused["code"] == "NOTHING_TO_UNDO"


async def test_delete_ends_the_live_session_and_its_cli(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    await chat.init(session_id)
    await chat.message(session_id, ECHO_PROMPT)
    assert claude_processes(session_id)

    deleted = await http(backend, "DELETE", f"/api/sessions/{session_id}")

    assert deleted.status == 204
    assert claude_processes(session_id) == []


async def test_delete_while_the_cli_starts_at_init_leaves_no_cli(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    """AGENT_PREWARM starts the CLI after ``ready``; the runner ending mid-start (its
    ``connect()`` cancelled) must not leave the process behind."""
    await chat.init(session_id)
    for _ in range(100):
        if claude_processes(session_id):  # spawned: it takes a few tenths to be up
            break
        await asyncio.sleep(0.01)
    assert claude_processes(session_id)

    deleted = await http(backend, "DELETE", f"/api/sessions/{session_id}")

    assert deleted.status == 204
    assert claude_processes(session_id) == []


async def test_delete_of_a_session_with_only_files_left_answers_204(
    backend: LiveServer, session_id: str
) -> None:
    workspace = backend.data / "workspaces" / session_id
    workspace.mkdir(parents=True)  # e.g. a row lost, a workspace left behind

    deleted = await http(backend, "DELETE", f"/api/sessions/{session_id}")

    assert deleted.status == 204 and not workspace.exists()


async def test_delete_of_trees_deeper_than_the_recursion_limit_answers_204(
    backend: LiveServer, session_id: str
) -> None:
    workspace = backend.data / "workspaces" / session_id
    undo_states = backend.data / "workspaces" / ".history" / session_id
    config_dir = backend.data / "var" / "claude" / session_id
    with contextlib.ExitStack() as trees:
        for top in (workspace, undo_states, config_dir):
            trees.enter_context(deep_tree(top))  # 2,000 levels in each

        deleted = await http(backend, "DELETE", f"/api/sessions/{session_id}")

        assert deleted.status == 204
        assert not workspace.exists() and not undo_states.exists() and not config_dir.exists()


# --- Errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("GET", "/messages"), ("DELETE", "")])
@pytest.mark.parametrize("bad_id", ["has.dot", "x" * 65, "sp%20ace", "%C3%A9t%C3%A9"])
async def test_invalid_session_id_is_400(
    backend: LiveServer, method: str, suffix: str, bad_id: str
) -> None:
    reply = await http(backend, method, f"/api/sessions/{bad_id}{suffix}")

    assert reply.status == 400
    assert reply.json["code"] == "INVALID_SESSION_ID" and reply.json["message"]


@pytest.mark.parametrize(("method", "suffix"), [("GET", ""), ("GET", "/messages")])
async def test_unknown_session_is_404(backend: LiveServer, method: str, suffix: str) -> None:
    reply = await http(backend, method, f"/api/sessions/never-seen{suffix}")

    assert reply.status == 404
    assert reply.json == {
        "code": "SESSION_NOT_FOUND",
        "message": "There is no session 'never-seen'.",
    }


async def test_unknown_session_delete_is_404(backend: LiveServer) -> None:
    reply = await http(backend, "DELETE", "/api/sessions/never-seen-either")

    assert reply.status == 404 and reply.json["code"] == "SESSION_NOT_FOUND"


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("POST", ""), ("PUT", ""), ("DELETE", "/messages"), ("POST", "/messages")],
)
async def test_other_methods_are_405_with_allow(
    backend: LiveServer, method: str, suffix: str
) -> None:
    reply = await http(backend, method, f"/api/sessions/never-seen{suffix}")

    assert reply.status == 405
    assert reply.json["code"] == "METHOD_NOT_ALLOWED"
    assert reply.headers["Allow"] == ("GET, DELETE" if not suffix else "GET")


# --- Auth and CORS -------------------------------------------------------------------


async def test_token_is_required_when_configured(own_server) -> None:
    with own_server(CHAT_AUTH_TOKEN=TOKEN) as server:
        client = await ChatClient.connect(server.ws_url + f"?token={TOKEN}")
        await client.init("tok1")
        await client.close()
        path = "/api/sessions/tok1"

        missing = await http(server, "GET", path)
        wrong = await http(server, "GET", path, {"Authorization": "Bearer nope"})
        wrong_query = await http(server, "GET", path + "?token=nope")
        not_bearer = await http(server, "GET", path, {"Authorization": f"Basic {TOKEN}"})
        delete_without = await http(server, "DELETE", path)
        by_header = await http(server, "GET", path, {"Authorization": f"Bearer {TOKEN}"})
        by_query = await http(server, "GET", path + f"/messages?token={TOKEN}")
        delete_with = await http(server, "DELETE", path, {"Authorization": f"Bearer {TOKEN}"})

    for refused in (missing, wrong, wrong_query, not_bearer, delete_without):
        assert refused.status == 401
        assert refused.json["code"] == "UNAUTHORIZED" and TOKEN not in refused.body.decode()
    assert by_header.status == 200 and by_header.json["sessionId"] == "tok1"
    assert by_query.status == 200 and by_query.json["messages"] == []
    assert delete_with.status == 204


async def test_frontend_origin_gets_cors_headers(backend: LiveServer) -> None:
    reply = await http(backend, "GET", "/api/sessions/never-seen", {"Origin": FRONTEND})
    foreign = await http(backend, "GET", "/api/sessions/never-seen", {"Origin": "http://evil.test"})

    assert reply.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert foreign.headers["Access-Control-Allow-Origin"] is None


async def test_delete_preflight_is_allowed_for_the_frontend(backend: LiveServer) -> None:
    reply = await http(
        backend,
        "OPTIONS",
        "/api/sessions/some-session",
        {
            "Origin": FRONTEND,
            "Access-Control-Request-Method": "DELETE",
            "Access-Control-Request-Headers": "authorization",
        },
    )

    assert reply.status == 200
    assert reply.headers["Access-Control-Allow-Origin"] == FRONTEND
    assert "DELETE" in reply.headers["Access-Control-Allow-Methods"]
    assert "authorization" in reply.headers["Access-Control-Allow-Headers"]


async def test_delete_from_the_frontend_needs_no_csrf_token(
    backend: LiveServer, session_id: str
) -> None:
    (backend.data / "workspaces" / session_id).mkdir(parents=True)

    reply = await http(backend, "DELETE", f"/api/sessions/{session_id}", {"Origin": FRONTEND})

    assert reply.status == 204
    assert reply.headers["Access-Control-Allow-Origin"] == FRONTEND


# --- Restarts ---------------------------------------------------------------------------


async def test_history_survives_a_restart_and_grows_after_it(own_server) -> None:
    with own_server() as server:
        client = await ChatClient.connect(server.ws_url)
        await client.init("keep1")
        first = await client.message("keep1", WRITE_PROMPT)
        await client.close()
        before = await http(server, "GET", "/api/sessions/keep1/messages")

        server.restart()

        after = await http(server, "GET", "/api/sessions/keep1/messages")
        summary = await http(server, "GET", "/api/sessions/keep1")
        client = await ChatClient.connect(server.ws_url)
        ready = await client.init("keep1")
        second = await client.message("keep1", ECHO_PROMPT)
        await client.close()
        grown = await http(server, "GET", "/api/sessions/keep1/messages")

    assert after.status == 200 and after.json == before.json
    assert [m["text"] for m in after.json["messages"]] == [WRITE_PROMPT, streamed_text(first)]
    assert summary.json["messageCount"] == 1 and summary.json["files"] == ["src/App.tsx"]
    assert ready["resumed"] is True
    messages = grown.json["messages"]
    assert messages[:2] == before.json["messages"]
    assert [m["text"] for m in messages[2:]] == [ECHO_PROMPT, streamed_text(second)]


# --- Folding a transcript (pure) ------------------------------------------------------

WORKSPACE = Path("/srv/workspaces/s1")


def user(uuid: str, content: Any) -> SessionMessage:
    return SessionMessage(
        type="user", uuid=uuid, session_id="sdk", message={"role": "user", "content": content}
    )


def assistant(uuid: str, *blocks: dict[str, Any], model: str = "claude-x") -> SessionMessage:
    return SessionMessage(
        type="assistant",
        uuid=uuid,
        session_id="sdk",
        message={"role": "assistant", "model": model, "content": list(blocks)},
    )


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_use(tool_id: str, name: str, **tool_input: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": tool_input}


def tool_result(tool_id: str, content: str, is_error: bool = False) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tool_id, "content": content, "is_error": is_error}


def test_parallel_tool_results_join_the_message_that_called_them() -> None:
    entries = [
        user("u1", "two files please"),
        assistant("a1", text("Writing both.")),
        assistant("a2", tool_use("t1", "Write", file_path=f"{WORKSPACE}/a.tsx", content="A")),
        assistant("a3", tool_use("t2", "Read", file_path="/etc/passwd")),
        user("r1", [tool_result("t1", "File created")]),
        user("r2", [tool_result("t2", "outside the workspace", is_error=True)]),
        assistant("a4", text(" Done.")),
    ]

    messages = [m.model_dump(by_alias=True) for m in conversation(entries, workspace=WORKSPACE)]

    assert messages == [
        {"role": "user", "text": "two files please", "tools": [], "uuid": "u1"},
        {
            "role": "assistant",
            "text": "Writing both. Done.",
            "tools": [
                {
                    "toolUseId": "t1",
                    "tool": "Write",
                    "input": {"file_path": "a.tsx", "content": "A"},
                    "isError": False,
                    "summary": "Wrote a.tsx",
                },
                {
                    "toolUseId": "t2",
                    "tool": "Read",
                    "input": {"file_path": "(outside the workspace)"},
                    "isError": True,
                    "summary": "outside the workspace",
                },
            ],
            "uuid": "a1",
        },
    ]


def test_stop_markers_and_cli_notices_are_left_out() -> None:
    entries = [
        user("u1", "talk"),
        assistant("a1", text("Still talking. ")),
        user("s1", [text("[Request interrupted by user]")]),
        user("u2", [text("fail please")]),
        assistant("e1", text("API Error: 500"), model="<synthetic>"),
        user("u3", "again"),
        assistant("a2", tool_use("t9", "Glob", pattern="*.tsx")),
    ]

    messages = conversation(entries, workspace=WORKSPACE)

    assert [(m.role, m.text, m.uuid) for m in messages] == [
        ("user", "talk", "u1"),
        ("assistant", "Still talking. ", "a1"),
        ("user", "fail please", "u2"),
        ("user", "again", "u3"),
        ("assistant", "", "a2"),
    ]
    unfinished = messages[-1].tools[0]
    assert (unfinished.tool, unfinished.is_error, unfinished.summary) == ("Glob", None, None)


def test_thinking_and_unreadable_entries_are_left_out() -> None:
    entries = [
        user("u1", "think first"),
        assistant("a1", {"type": "thinking", "thinking": "hmm", "signature": "s"}, text("Done.")),
        SessionMessage(type="assistant", uuid="x1", session_id="sdk", message={"content": "?"}),
        SessionMessage(type="user", uuid="x2", session_id="sdk", message=None),
    ]

    messages = conversation(entries, workspace=WORKSPACE)

    assert [(m.role, m.text, m.uuid) for m in messages] == [
        ("user", "think first", "u1"),
        ("assistant", "Done.", "a1"),
    ]
