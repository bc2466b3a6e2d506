"""The scripted model server over raw HTTP: SSE framing, faults, recording, routes."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from scripted_model.faults import Stall
from scripted_model.scripts import APP_TSX, EDITED_HEADING
from scripted_model.server import ScriptedModelServer
from scripted_model.turns import Script, Turn, text

pytestmark = pytest.mark.timeout(30)

WORKSPACE = "/tmp/ws-under-test"


def body_for(prompt: str, *later: dict[str, Any], workspace: str = WORKSPACE, stream: bool = True):
    """A request body shaped like the CLI's: prompt, system-role environment, later turns."""
    return {
        "model": "claude-test-model",
        "max_tokens": 1024,
        "stream": stream,
        "system": [{"type": "text", "text": "You are a Claude agent."}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": prompt}]},
            {
                "role": "system",
                "content": f"# Environment\n - Primary working directory: {workspace}\n",
            },
            *later,
        ],
        "tools": [{"name": "Write", "input_schema": {"type": "object"}}],
    }


def post(server, path: str, body: Any, headers: dict[str, str] | None = None):
    """POST JSON; return (status, headers, raw body)."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        connection.request(
            "POST", path, json.dumps(body), {"content-type": "application/json", **(headers or {})}
        )
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def parse_sse(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Split an SSE body into (event, data) pairs, checking each frame's shape."""
    events = []
    for frame in raw.decode().split("\n\n"):
        if not frame:
            continue
        lines = frame.split("\n")
        assert len(lines) == 2, frame
        assert lines[0].startswith("event: ") and lines[1].startswith("data: "), frame
        name, data = lines[0][len("event: ") :], json.loads(lines[1][len("data: ") :])
        assert data["type"] == name
        events.append((name, data))
    return events


def stream(server, body) -> list[tuple[str, dict[str, Any]]]:
    status, headers, raw = post(server, "/v1/messages?beta=true", body)
    assert status == 200
    assert headers["content-type"].startswith("text/event-stream")
    return parse_sse(raw)


def check_sequence(events) -> list[dict[str, Any]]:
    """Assert the documented event order; return the blocks rebuilt from the deltas."""
    names = [name for name, _ in events if name != "ping"]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    assert any(name == "ping" for name, _ in events)
    blocks: list[dict[str, Any]] = []
    open_index = None
    for name, data in events[1:-2]:
        if name == "ping":
            continue
        if name == "content_block_start":
            assert open_index is None and data["index"] == len(blocks)
            open_index = data["index"]
            blocks.append({**data["content_block"], "pieces": []})
        elif name == "content_block_delta":
            assert data["index"] == open_index
            delta = data["delta"]
            piece = delta["text"] if delta["type"] == "text_delta" else delta["partial_json"]
            assert (
                delta["type"]
                == {"text": "text_delta", "tool_use": "input_json_delta"}[blocks[-1]["type"]]
            )
            blocks[-1]["pieces"].append(piece)
        else:
            assert name == "content_block_stop" and data["index"] == open_index
            open_index = None
    assert open_index is None
    return blocks


def test_write_app_streams_text_then_tool_use_in_documented_order(scripted_model):
    events = stream(scripted_model, body_for("make an app [script:write_app]"))
    blocks = check_sequence(events)
    start = events[0][1]["message"]
    assert start["id"].startswith("msg_") and start["model"] == "claude-test-model"
    assert (
        start["role"] == "assistant" and start["content"] == [] and "input_tokens" in start["usage"]
    )
    assert [block["type"] for block in blocks] == ["text", "tool_use"]
    assert len(blocks[0]["pieces"]) > 1
    assert "".join(blocks[0]["pieces"]) == "I'll create a small React component in src/App.tsx."
    final = events[-2][1]
    assert final["delta"]["stop_reason"] == "tool_use" and final["usage"]["output_tokens"] > 0


def test_tool_use_json_pieces_concatenate_to_the_scripted_input(scripted_model):
    blocks = check_sequence(stream(scripted_model, body_for("[script:write_app]")))
    tool_use = blocks[1]
    assert tool_use["name"] == "Write" and tool_use["input"] == {}
    assert tool_use["id"].startswith("toolu_")
    assert len([piece for piece in tool_use["pieces"] if piece]) > 1
    assert json.loads("".join(tool_use["pieces"])) == {
        "file_path": f"{WORKSPACE}/src/App.tsx",
        "content": APP_TSX,
    }


def test_ids_are_unique_across_requests(scripted_model):
    ids = set()
    for _ in range(3):
        events = stream(scripted_model, body_for("[script:write_app]"))
        ids.add(events[0][1]["message"]["id"])
        ids.update(
            data["content_block"]["id"]
            for name, data in events
            if name == "content_block_start" and data["content_block"]["type"] == "tool_use"
        )
    assert len(ids) == 6


def tool_exchange(tool_use_id: str, result: str, *, name: str = "Write", is_error: bool = False):
    return [
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": tool_use_id, "name": name, "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": tool_use_id,
                    "content": result,
                    "is_error": is_error,
                }
            ],
        },
    ]


def test_step_is_the_number_of_assistant_messages_after_the_latest_prompt(scripted_model):
    body = body_for("[script:write_app]", *tool_exchange("toolu_1", "File created"))
    blocks = check_sequence(events := stream(scripted_model, body))
    assert "".join(blocks[0]["pieces"]) == "Done: src/App.tsx holds a counter component."
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert scripted_model.requests[-1].step == 1


def test_a_new_prompt_starts_again_at_step_zero(scripted_model):
    earlier = tool_exchange("toolu_1", "File created") + [
        {"role": "assistant", "content": [{"type": "text", "text": "Done."}]},
        {"role": "user", "content": [{"type": "text", "text": "again [script:echo]"}]},
    ]
    blocks = check_sequence(stream(scripted_model, body_for("first [script:write_app]", *earlier)))
    assert "".join(blocks[0]["pieces"] + blocks[1]["pieces"]) == (
        'You said: "again [script:echo]". I see 2 user prompts in this conversation.'
    )


def test_system_reminder_user_messages_are_not_prompts(scripted_model):
    reminder = {
        "role": "user",
        "content": [
            {
                "type": "text",
                "text": "<system-reminder>\nOutput token limit hit.\n</system-reminder>",
            }
        ],
    }
    cut = {"role": "assistant", "content": [{"type": "text", "text": "cut off"}]}
    stream(scripted_model, body_for("[script:max_tokens]", cut, reminder))
    recorded = scripted_model.requests[-1]
    assert (recorded.script, recorded.step) == ("max_tokens", 1)


def test_a_step_beyond_the_script_answers_a_short_text_and_ends(scripted_model):
    later = (
        tool_exchange("toolu_1", "x")
        + tool_exchange("toolu_2", "y")
        + tool_exchange("toolu_3", "z")
    )
    events = stream(scripted_model, body_for("[script:write_app]", *later))
    blocks = check_sequence(events)
    assert (
        "".join(blocks[0]["pieces"])
        == "scripted model: no scripted turn for step 3 of script write_app"
    )
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"


def test_the_default_script_plays_without_a_marker():
    with ScriptedModelServer(script="echo") as server:
        blocks = check_sequence(stream(server, body_for("hello")))
    assert "".join(blocks[0]["pieces"]).startswith('You said: "hello"')


def test_unknown_default_script_is_refused():
    with pytest.raises(ValueError, match="unknown script 'nope'"):
        ScriptedModelServer(script="nope")


def test_callable_turn_edits_with_old_string_from_the_read_result(scripted_model):
    numbered = "".join(f"{n:6}\t{line}\n" for n, line in enumerate(APP_TSX.splitlines(), 1))
    body = body_for("[script:read_then_edit]", *tool_exchange("toolu_r", numbered, name="Read"))
    blocks = check_sequence(stream(scripted_model, body))
    edit = json.loads("".join(blocks[1]["pieces"]))
    assert edit == {
        "file_path": f"{WORKSPACE}/src/App.tsx",
        "old_string": "<h1>Hello from the scripted model</h1>",
        "new_string": EDITED_HEADING,
    }


def test_demo_writes_a_dashboard_over_the_csv_columns(scripted_model):
    csv_read = "     1\tregion,units,price\n     2\tnorth,3,9.5\n     3\tsouth,7,4\n"
    later = tool_exchange("toolu_g", f"{WORKSPACE}/data/sales.csv", name="Glob")
    later[0]["content"][0]["input"] = {"pattern": "**/*.csv"}
    read_call = {
        "role": "assistant",
        "content": [
            {
                "type": "tool_use",
                "id": "toolu_r",
                "name": "Read",
                "input": {"file_path": f"{WORKSPACE}/data/sales.csv"},
            }
        ],
    }
    read_result = {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_r", "content": csv_read}],
    }
    blocks = check_sequence(
        stream(scripted_model, body_for("[script:demo]", *later, read_call, read_result))
    )
    write = json.loads("".join(blocks[1]["pieces"]))
    assert write["file_path"] == f"{WORKSPACE}/src/App.tsx"
    assert 'const COLUMNS: string[] = ["region", "units", "price"];' in write["content"]
    assert 'const NUMERIC_COLUMNS: string[] = ["units", "price"];' in write["content"]
    assert '{"region": "north", "units": 3, "price": 9.5}' in write["content"]
    assert "from data/sales.csv" in write["content"]


@pytest.mark.parametrize(
    ("script", "status", "error_type"),
    [
        ("overloaded_529", 529, "overloaded_error"),
        ("rate_limited_429", 429, "rate_limit_error"),
        ("server_error_500", 500, "api_error"),
    ],
)
def test_http_error_faults_answer_like_the_api(scripted_model, script, status, error_type):
    got, headers, raw = post(scripted_model, "/v1/messages", body_for(f"[script:{script}]"))
    assert got == status
    assert headers["retry-after"] == "1"
    assert headers["content-type"] == "application/json"
    payload = json.loads(raw)
    assert payload["type"] == "error" and payload["error"]["type"] == error_type
    assert payload["error"]["message"]


def test_overloaded_then_ok_fails_twice_per_conversation_step_then_answers(scripted_model):
    body = body_for("[script:overloaded_then_ok]")
    statuses = [post(scripted_model, "/v1/messages", body)[0] for _ in range(3)]
    assert statuses == [529, 529, 200]
    other_session = body_for("[script:overloaded_then_ok]", workspace="/tmp/another-ws")
    assert post(scripted_model, "/v1/messages", other_session)[0] == 529
    scripted_model.reset_faults()
    assert post(scripted_model, "/v1/messages", body)[0] == 529


def test_non_streaming_request_gets_the_full_message(scripted_model):
    status, headers, raw = post(
        scripted_model, "/v1/messages", body_for("[script:write_app]", stream=False)
    )
    assert status == 200 and headers["content-type"] == "application/json"
    message = json.loads(raw)
    assert message["id"].startswith("msg_") and message["type"] == "message"
    assert message["stop_reason"] == "tool_use" and message["model"] == "claude-test-model"
    assert message["content"][0] == {
        "type": "text",
        "text": "I'll create a small React component in src/App.tsx.",
    }
    tool_use = message["content"][1]
    assert tool_use["id"].startswith("toolu_")
    assert tool_use["input"] == {"file_path": f"{WORKSPACE}/src/App.tsx", "content": APP_TSX}


def test_count_tokens_answers_input_tokens(scripted_model):
    status, _, raw = post(scripted_model, "/v1/messages/count_tokens?beta=true", body_for("hi"))
    assert status == 200
    payload = json.loads(raw)
    assert list(payload) == ["input_tokens"] and payload["input_tokens"] > 0


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/models"), ("POST", "/v1/complete"), ("GET", "/v1/messages")]
)
def test_anything_else_is_a_404_json_error(scripted_model, method, path):
    connection = http.client.HTTPConnection(scripted_model.host, scripted_model.port, timeout=10)
    try:
        connection.request(method, path, body=b"{}" if method == "POST" else None)
        response = connection.getresponse()
        payload = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 404
    assert payload["type"] == "error" and payload["error"]["type"] == "not_found_error"


def test_requests_are_recorded_without_credentials(scripted_model):
    body = body_for("[script:echo]")
    headers = {
        "x-api-key": "sk-ant-secret",
        "Authorization": "Bearer secret",
        "anthropic-version": "2023-06-01",
    }
    post(scripted_model, "/v1/messages?beta=true", body, headers)
    [recorded] = scripted_model.requests
    assert recorded.method == "POST" and recorded.path == "/v1/messages"
    assert recorded.query == {"beta": "true"}
    assert "x-api-key" not in recorded.headers and "authorization" not in recorded.headers
    assert recorded.headers["anthropic-version"] == "2023-06-01"
    assert recorded.body == body
    assert recorded.tools == ["Write"]
    assert "secret" not in repr(recorded)
    scripted_model.clear_requests()
    assert scripted_model.requests == []


def test_one_keep_alive_connection_serves_several_requests(scripted_model):
    connection = http.client.HTTPConnection(scripted_model.host, scripted_model.port, timeout=10)
    local_addresses = set()
    try:
        for _ in range(3):
            connection.request("POST", "/v1/messages", json.dumps(body_for("[script:echo]")))
            response = connection.getresponse()
            check_sequence(parse_sse(response.read()))
            local_addresses.add(connection.sock.getsockname())
            assert scripted_model.open_connections == 1
    finally:
        connection.close()
    assert len(local_addresses) == 1 and len(scripted_model.requests) == 3


def raw_request(server, body) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=10)
    data = json.dumps(body).encode()
    sock.sendall(
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_drop_mid_stream_closes_the_socket_after_some_events(scripted_model):
    with raw_request(scripted_model, body_for("[script:drop_mid_stream]")) as sock:
        received = read_until_closed(sock).decode()
    assert received.startswith("HTTP/1.1 200")
    assert "event: message_start" in received and "event: content_block_delta" in received
    assert "message_stop" not in received and not received.endswith("0\r\n\r\n")


def test_stall_sends_message_start_then_nothing_until_stop():
    server = ScriptedModelServer(script="stall")
    server.start()
    try:
        with raw_request(server, body_for("hi")) as sock:
            sock.settimeout(0.5)
            received = b""
            while b"message_start" not in received:
                received += sock.recv(65536)
            with pytest.raises(TimeoutError):
                sock.recv(65536)
            started = time.monotonic()
            server.stop()
            assert time.monotonic() - started < 2
            sock.settimeout(5)
            assert read_until_closed(sock) == b""
    finally:
        server.stop()
    assert b"content_block" not in received


def test_stall_ends_when_the_client_goes_away(scripted_model):
    with raw_request(scripted_model, body_for("[script:stall]")) as sock:
        received = b""
        while b"message_start" not in received:
            received += sock.recv(65536)
    deadline = time.monotonic() + 5
    while scripted_model.open_connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scripted_model.open_connections == 0


def test_chunk_delay_paces_the_deltas():
    slow = Script("slow", [Turn([text("abcdefghij", chunks=5)], chunk_delay=0.05)])
    with ScriptedModelServer(script="slow", scripts={"slow": slow}) as server:
        started = time.monotonic()
        stream(server, body_for("hi"))
        elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 2


def test_server_wide_chunk_delay_applies_when_the_turn_sets_none():
    with ScriptedModelServer(script="echo", chunk_delay=0.05) as server:
        started = time.monotonic()
        stream(server, body_for("hi"))
        assert time.monotonic() - started >= 0.05 * 4


class SentLog(ScriptedModelServer):
    """The scripted model, keeping every event it reports as written."""

    def __init__(self) -> None:
        super().__init__(script="echo")
        self.written: list[tuple[str, dict[str, Any]]] = []

    def sent(self, event: str, data: dict[str, Any]) -> None:
        self.written.append((event, data))


def test_flood_sends_one_tagged_delta_per_index_and_reports_each_as_written():
    with SentLog() as server:
        events = stream(server, body_for("[script:flood] flood=ab1 deltas=250"))
    deltas = [data["delta"]["text"] for name, data in events if name == "content_block_delta"]
    assert deltas == [f"ab1:{index:06d} " for index in range(250)]
    assert server.written == events


def test_concurrent_sessions_each_get_their_own_workspace(scripted_model):
    results: dict[str, Any] = {}

    def run(name: str) -> None:
        body = body_for("[script:write_app]", workspace=f"/tmp/{name}")
        results[name] = json.loads(
            "".join(check_sequence(stream(scripted_model, body))[1]["pieces"])
        )

    threads = [threading.Thread(target=run, args=(f"session-{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert {name: value["file_path"] for name, value in results.items()} == {
        f"session-{n}": f"/tmp/session-{n}/src/App.tsx" for n in range(8)
    }


def test_stop_is_idempotent_and_works_before_start():
    ScriptedModelServer().stop()
    server = ScriptedModelServer(
        script="stall", scripts={"stall": Script("stall", [Turn([], fault=Stall())])}
    )
    server.start()
    server.stop()
    server.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((server.host, server.port), timeout=2).close()


def test_command_line_prints_its_address_and_stops_on_sigterm():
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    process = subprocess.Popen(
        [sys.executable, "-m", "scripted_model", "--port", "0", "--script", "echo"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("scripted model server (NOT Claude) listening on http://127.0.0.1:")
        assert line.rstrip().endswith(", default script echo")
        port = int(line.split("127.0.0.1:")[1].split(",")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert "stopped" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def test_the_newest_script_marker_wins_when_prompts_were_merged() -> None:
    from scripted_model.conversation import script_marker

    merged = "[script:overloaded_529]\n\nok now? [script:echo]"
    assert script_marker(merged) == "echo"
    assert script_marker("no marker") is None
