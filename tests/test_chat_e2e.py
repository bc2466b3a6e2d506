"""The chat end to end: daphne, the real SDK and CLI, the scripted model, a real socket."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from scripted_model.server import ScriptedModelServer
from tests.support.live import ChatClient, LiveServer, a_request_held, claude_processes, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

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


async def test_each_turn_reports_its_own_cost_not_the_clis_running_total(
    chat: ChatClient, session_id: str
) -> None:
    """The CLI's result carries what it spent since it started; a warm CLI's second turn
    must not report the first one's cost again."""
    await chat.init(session_id)
    first = (await chat.message(session_id, "[script:echo]"))[-1]
    second = (await chat.message(session_id, "[script:echo]"))[-1]

    assert first["costUsd"] > 0 and second["costUsd"] > 0
    assert second["costUsd"] < 1.5 * first["costUsd"]  # a running total would be over 2x


async def test_the_budget_holds_per_turn_on_a_warm_session(
    chat: ChatClient, session_id: str, own_server
) -> None:
    """CLAUDE_MAX_BUDGET_USD of 1.5 echo turns: a warm CLI would refuse the second turn
    (its budget counts both); the server gives it a fresh CLI instead, started as soon
    as the turn that spent over half of it ends, so the next message finds it warm."""
    await chat.init(session_id)
    cost = (await chat.message(session_id, "[script:echo]"))[-1]["costUsd"]
    server = own_server(CLAUDE_MAX_BUDGET_USD=str(1.5 * cost))
    budget_session = f"budget-{session_id}"
    with server:
        on_budget = await ChatClient.connect(server.ws_url)
        await on_budget.init(budget_session)
        ends, clis = [], [await one_cli(budget_session)]  # the CLI started at init
        for _ in range(3):
            ends.append((await on_budget.message(budget_session, "[script:echo]"))[-1])
            clis.append(await one_cli(budget_session, other_than=clis[-1]))
        await on_budget.close()

    assert [end["type"] for end in ends] == ["complete"] * 3, ends[-1]
    assert len(set(clis)) == 4  # a new CLI after each turn, running before the next message


async def one_cli(marker: str, *, other_than: int | None = None, timeout: float = 20.0) -> int:
    """The pid of the one CLI of ``marker`` once it is not ``other_than``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = claude_processes(marker)
        if len(pids) == 1 and pids[0] != other_than:
            return pids[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no new CLI of {marker}: {claude_processes(marker)}")


async def test_second_message_while_busy_gets_session_busy(
    chat: ChatClient, session_id: str
) -> None:
    await chat.init(session_id)
    await chat.begin(session_id, "go [script:long_text]")
    await chat.send(
        {"type": "message", "sessionId": session_id, "message": "again", "clientMessageId": "x"}
    )
    busy = await chat.until("error")
    assert busy[-1]["code"] == "SESSION_BUSY" and busy[-1]["clientMessageId"] == "x"
    await chat.send({"type": "stop", "sessionId": session_id})
    terminal = (await chat.turn())[-1]
    assert terminal["type"] == "complete" and terminal["stopped"] is True


@pytest.mark.parametrize("after_frames", [0, 1, 5, 25])
async def test_stop_while_streaming_completes_stopped(
    chat: ChatClient, session_id: str, after_frames: int
) -> None:
    await chat.init(session_id)
    await chat.send({"type": "message", "sessionId": session_id, "message": "[script:long_text]"})
    for _ in range(after_frames):
        await chat.recv()
    await chat.send({"type": "stop", "sessionId": session_id})

    frames = await chat.turn(timeout=10)

    terminals = [f for f in chat.frames if f["type"] in ("complete", "error")]
    assert len(terminals) == 1
    assert frames[-1]["type"] == "complete" and frames[-1]["stopped"] is True
    assert await chat.nothing(0.5)
    after = await chat.message(session_id, "still there? [script:echo]")
    assert after[-1]["type"] == "complete" and after[-1]["stopped"] is False


async def test_stop_reports_files_written_before_it(chat: ChatClient, session_id: str) -> None:
    await chat.init(session_id)
    await chat.send(
        {"type": "message", "sessionId": session_id, "message": "[script:write_then_long_text]"}
    )
    await chat.until("file_changed")
    await chat.send({"type": "stop", "sessionId": session_id})

    complete = (await chat.turn(timeout=10))[-1]

    assert complete["stopped"] is True
    assert list(complete["files"]) == ["src/App.tsx"]


async def test_a_turn_outlives_its_socket_then_the_idle_session_is_released(
    own_server,
) -> None:
    with own_server(AGENT_IDLE_SECONDS="1") as server:
        client = await ChatClient.connect(server.ws_url)
        await client.init("outlive1")
        await client.begin("outlive1", "[script:write_then_long_text]")
        await client.close()
        workspace_file = server.data / "workspaces" / "outlive1" / "src" / "App.tsx"
        for _ in range(200):
            released = server.get_json("/health")["activeSessions"]
            if released == 0 and not claude_processes("outlive1"):
                break
            await asyncio.sleep(0.1)

    assert workspace_file.exists()
    assert claude_processes("outlive1") == []
    assert released == 0


async def test_retried_client_message_id_is_not_run_twice(
    chat: ChatClient, shared_model: ScriptedModelServer, session_id: str
) -> None:
    await chat.init(session_id)
    first = await chat.message(session_id, "once [script:echo]", clientMessageId="same")
    requests_after_first = len(shared_model.requests)

    again = await chat.message(session_id, "once [script:echo]", clientMessageId="same")

    assert again == [first[-1]]
    assert len(shared_model.requests) == requests_after_first


async def test_overloaded_then_ok_reports_retrying_then_completes(
    chat: ChatClient, session_id: str
) -> None:
    await chat.init(session_id)

    frames = await chat.message(session_id, "[script:overloaded_then_ok]")

    statuses = [f for f in frames if f["type"] == "status"]
    assert statuses and statuses[0]["status"] == "retrying"
    assert frames[-1]["type"] == "complete"


@pytest.mark.parametrize(
    ("script", "code"),
    [
        ("overloaded_529", "MODEL_UNAVAILABLE"),
        ("rate_limited_429", "MODEL_UNAVAILABLE"),
        ("server_error_500", "MODEL_UNAVAILABLE"),
        ("stall", "MODEL_UNAVAILABLE"),
    ],
)
async def test_model_trouble_ends_in_a_recoverable_error(
    chat: ChatClient, session_id: str, script: str, code: str
) -> None:
    await chat.init(session_id)

    frames = await chat.message(session_id, f"[script:{script}]")

    assert frames[-1]["type"] == "error"
    assert frames[-1]["code"] == code and frames[-1]["recoverable"] is True
    after = await chat.message(session_id, "ok now? [script:echo]")
    assert after[-1]["type"] == "complete"


async def test_conversation_resumes_after_a_server_restart(
    own_server, shared_model: ScriptedModelServer
) -> None:
    with own_server() as server:
        client = await ChatClient.connect(server.ws_url)
        await client.init("restart1")
        first = await client.message("restart1", "remember pineapple [script:echo]")
        assert first[-1]["type"] == "complete"
        await client.close()
        server.restart()
        shared_model.clear_requests()
        client = await ChatClient.connect(server.ws_url)
        ready = await client.init("restart1")
        second = await client.message("restart1", "what fruit? [script:echo]")
        await client.close()

    assert ready["resumed"] is True and ready["messageCount"] == 1
    assert second[-1]["type"] == "complete"
    assert a_request_held(shared_model, "remember pineapple", "what fruit?")


async def test_the_first_message_after_think_time_uses_the_cli_started_at_init(
    own_server,
) -> None:
    """With a second between ``ready`` and the message, the CLI has started meanwhile
    (AGENT_PREWARM) and the message's turn runs on it: no CLI start on its path."""
    with own_server() as server:
        client = await ChatClient.connect(server.ws_url)
        await client.init("prewarm1")
        await asyncio.sleep(1)  # the user reads, then types
        before = claude_processes("prewarm1")
        frames = await client.message("prewarm1", "hello [script:write_app]")
        after = claude_processes("prewarm1")
        await client.close()

    assert len(before) == 1  # running before the message was sent
    assert after == before  # and the message's turn used it
    assert frames[0]["type"] == "stream" and frames[-1]["type"] == "complete"


def _nice(pid: int) -> int:
    """The nice value of ``pid`` (field 19 of ``/proc/<pid>/stat``)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[16])


async def test_the_cli_yields_the_cpu_to_the_server(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    """The CLI runs at nice 10 above the server, and so does its scheduler group where
    the kernel groups by session (the CLI has a session of its own)."""
    await chat.init(session_id)
    frames = await chat.message(session_id, "hello [script:echo]")
    (cli,) = claude_processes(session_id)

    assert frames[-1]["type"] == "complete"
    assert backend.process is not None
    assert _nice(cli) == min(19, _nice(backend.process.pid) + 10)
    if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1":
        assert Path(f"/proc/{cli}/autogroup").read_text().split()[-2:] == ["nice", "10"]


async def test_idle_cli_is_closed_and_the_next_message_resumes(
    own_server, shared_model: ScriptedModelServer
) -> None:
    with own_server(AGENT_IDLE_SECONDS="1") as server:
        client = await ChatClient.connect(server.ws_url)
        await client.init("idle1")
        await client.message("idle1", "remember kiwi [script:echo]")
        assert claude_processes("idle1")
        for _ in range(50):
            if not claude_processes("idle1"):
                break
            await asyncio.sleep(0.1)
        closed_while_connected = claude_processes("idle1") == []
        shared_model.clear_requests()
        second = await client.message("idle1", "which fruit? [script:echo]")
        await client.close()

    assert closed_while_connected
    assert second[-1]["type"] == "complete"
    assert a_request_held(shared_model, "remember kiwi", "which fruit?")


async def test_short_of_memory_a_start_closes_an_idle_cli_and_its_session_resumes(
    own_server, shared_model: ScriptedModelServer
) -> None:
    """Asking for more free memory than any machine has puts every CLI start under
    pressure: none starts at init, and one session's start closes the other's idle CLI,
    whose next message resumes the conversation on a new one."""
    # The stall clock runs from the message, through the close of the other CLI and the
    # start of this one: on a loaded machine that can take longer than the tests' 4 s.
    pressed = {"AGENT_MIN_AVAILABLE_MB": str(1 << 40), "MODEL_STALL_SECONDS": "30"}
    with own_server(**pressed) as server:
        first = await ChatClient.connect(server.ws_url)
        second = await ChatClient.connect(server.ws_url)
        await first.init("press1")
        await second.init("press2")
        await asyncio.sleep(1)  # a warm-up would be running by now
        none_at_init = claude_processes("press1") + claude_processes("press2") == []
        await first.message("press1", "remember mango [script:echo]")
        first_cli = claude_processes("press1")
        other = await second.message("press2", "hello [script:echo]")
        after_other = claude_processes("press1"), claude_processes("press2")
        shared_model.clear_requests()
        again = await first.message("press1", "which fruit? [script:echo]")
        await first.close()
        await second.close()

    assert none_at_init
    assert first_cli and other[-1]["type"] == "complete", other[-1]
    assert after_other[0] == [] and after_other[1]
    assert again[-1]["type"] == "complete"
    assert a_request_held(shared_model, "remember mango", "which fruit?")
    assert "closing an idle agent: memory is short" in server.log_text()


async def test_missing_model_key_is_reported_at_first_message_and_start(
    own_server, shared_model: ScriptedModelServer
) -> None:
    with own_server(ANTHROPIC_API_KEY="", ANTHROPIC_BASE_URL="") as server:
        client = await ChatClient.connect(server.ws_url)
        await client.init("nokey1")
        frames = await client.message("nokey1", "hello")
        health = server.get_json("/health")
        await client.close()

    assert frames[-1]["code"] == "MODEL_NOT_CONFIGURED"
    assert health["modelConfigured"] is False
    assert "no model configured" in server.log_text()


async def test_glob_and_grep_turn_reports_matches(chat: ChatClient, session_id: str) -> None:
    await chat.init(
        session_id,
        files={"src/App.tsx": "export const App = () => null;\n", "data/sales.csv": CSV},
    )

    frames = await chat.message(session_id, "look around [script:glob_and_grep]")

    starts = [f for f in frames if f["type"] == "tool_start"]
    results = [f for f in frames if f["type"] == "tool_result"]
    assert [f["tool"] for f in starts] == ["Glob", "Grep"]
    assert [r["isError"] for r in results] == [False, False]
    assert frames[-1]["type"] == "complete" and frames[-1]["files"] == {}


async def test_several_tools_in_one_turn_each_get_a_result(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    await chat.init(session_id)

    frames = await chat.message(session_id, "[script:multi_tool]")

    starts = {f["toolUseId"] for f in frames if f["type"] == "tool_start"}
    results = {f["toolUseId"] for f in frames if f["type"] == "tool_result"}
    assert len(starts) >= 3 and starts == results
    complete = frames[-1]
    workspace = backend.data / "workspaces" / session_id
    assert complete["files"] and all(
        (workspace / path).read_text() == content for path, content in complete["files"].items()
    )


async def test_an_init_above_a_mebibyte_is_accepted_and_an_oversized_frame_refused(
    chat: ChatClient, session_id: str
) -> None:
    big = {f"data/part{i}.csv": "x" * 1_000_000 for i in range(3)}
    ready = await chat.init(session_id, files=big)
    assert ready["type"] == "ready" and len(ready["files"]) == 3

    await chat.send({"type": "init", "sessionId": session_id, "pad": "y" * 34_000_000})
    error = await chat.until("error")
    assert error[-1]["code"] == "PAYLOAD_TOO_LARGE"
    assert (await chat.init(session_id))["type"] == "ready"


async def test_immediate_reconnect_to_the_same_session_works(
    backend: LiveServer, session_id: str
) -> None:
    for round_number in range(3):
        client = await ChatClient.connect(backend.ws_url)
        ready = await client.init(session_id)
        frames = await client.message(session_id, f"round {round_number} [script:echo]")
        await client.close()
        assert ready["type"] == "ready"
        assert frames[-1]["type"] == "complete", frames[-1]


async def test_seq_and_resent_outcomes_survive_a_server_restart(
    own_server, shared_model: ScriptedModelServer
) -> None:
    with own_server() as server:
        client = await ChatClient.connect(server.ws_url)
        await client.init("seq1")
        first = await client.message("seq1", "hello [script:echo]", clientMessageId="m1")
        await client.close()
        server.restart()
        client = await ChatClient.connect(server.ws_url)
        ready = await client.init("seq1")
        resent = await client.message("seq1", "hello [script:echo]", clientMessageId="m1")
        second = await client.message("seq1", "again [script:echo]", clientMessageId="m2")
        await client.close()

    last_seq = first[-1]["seq"]
    assert ready["seq"] == last_seq
    assert resent == [first[-1]]
    assert second[0]["seq"] == last_seq + 1


async def cli_of_a_streaming_turn(chat: ChatClient, session_id: str) -> int:
    """Open the session, start a long text and return the pid of the CLI streaming it."""
    await chat.init(session_id)
    await chat.begin(session_id, "[script:long_text]")
    [pid] = claude_processes(session_id)
    return pid


async def test_stop_escalates_when_the_cli_cannot_answer_the_interrupt(
    chat: ChatClient, session_id: str
) -> None:
    pid = await cli_of_a_streaming_turn(chat, session_id)
    os.kill(pid, signal.SIGSTOP)  # a CLI that hangs: it can neither answer nor exit
    started = time.monotonic()

    await chat.send({"type": "stop", "sessionId": session_id})
    frames = await chat.turn(timeout=15)
    took = time.monotonic() - started

    assert frames[-1]["type"] == "complete" and frames[-1]["stopped"] is True
    assert took < 3 + 3  # STOP_DEADLINE_SECONDS of the test server, plus slack for a busy CI
    for _ in range(30):
        if not claude_processes(session_id):
            break
        await asyncio.sleep(0.1)
    assert claude_processes(session_id) == []
    after = await chat.message(session_id, "still there? [script:echo]")
    assert after[-1]["type"] == "complete"


async def test_a_cli_killed_mid_turn_ends_it_with_one_error_and_the_session_goes_on(
    chat: ChatClient, session_id: str
) -> None:
    """The CLI dies (OOM killer, a crash) while it streams: its stream ends with no result."""
    pid = await cli_of_a_streaming_turn(chat, session_id)
    os.kill(pid, signal.SIGKILL)

    frames = await chat.turn(timeout=15)

    terminal = [f for f in frames if f["type"] in ("complete", "error")]
    assert terminal == [frames[-1]] and frames[-1]["type"] == "error"
    assert frames[-1]["recoverable"] is True
    assert await chat.nothing()  # one terminal frame, nothing after it
    after = await chat.message(session_id, "still there? [script:echo]")
    assert after[-1]["type"] == "complete"
    assert claude_processes(session_id) != [pid]


async def test_dropped_model_stream_ends_in_a_recoverable_error(
    chat: ChatClient, session_id: str
) -> None:
    await chat.init(session_id)

    frames = await chat.message(session_id, "[script:drop_mid_stream]")

    assert frames[-1]["type"] == "error" and frames[-1]["recoverable"] is True
    assert frames[-1]["code"] in ("MODEL_UNAVAILABLE", "MODEL_ERROR")


async def test_unreachable_model_ends_in_a_recoverable_error(own_server) -> None:
    with own_server(ANTHROPIC_BASE_URL=f"http://127.0.0.1:{free_port()}") as server:
        client = await ChatClient.connect(server.ws_url)
        await client.init("refused1")
        started = time.monotonic()
        frames = await client.message("refused1", "hello")
        took = time.monotonic() - started
        await client.close()

    assert frames[-1]["type"] == "error" and frames[-1]["recoverable"] is True
    assert frames[-1]["code"] in ("MODEL_UNAVAILABLE", "MODEL_ERROR")
    assert took < 30
