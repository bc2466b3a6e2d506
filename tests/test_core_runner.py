"""The session runner with the fake SDK client: busy, resends, undo, idle release, races.

(The close/leave race is ``tests/test_sessions_runner.py``, in-process too.)

Runners are opened through a real :class:`SessionRegistry` whose client factory is a
:class:`FakeSDK`, so everything but the CLI is the server's own code: the owner
task, the event stream, the agent pool and process, the store, the workspace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from channels.layers import InMemoryChannelLayer
from claude_agent_sdk import CLIConnectionError

from chat.agent.pool import AgentPool
from chat.exceptions import NothingToUndo, SessionBusy
from chat.models import TurnOutcome, TurnRecord
from chat.protocol import InitFrame, MessageFrame, UndoFrame
from chat.session import store
from chat.session.event_stream import EventStream
from chat.session.registry import SessionRegistry
from chat.session.routing import SessionHandle, SessionRouter
from chat.session.runner import RunnerState, SessionRunner
from tests.support.fake_sdk import FakeSDK, Reply, recorded
from workspaces import leases
from workspaces import services as workspaces

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.database,
    pytest.mark.timeout(10),
]

TERMINAL = ("complete", "error")


@pytest.fixture(autouse=True)
def _settings(settings, tmp_path) -> None:
    settings.WORKSPACE_ROOT = tmp_path / "sessions"
    settings.DATA_DIR = tmp_path / "data"
    settings.ANTHROPIC_API_KEY = "sk-ant-fake"
    settings.STOP_DEADLINE_SECONDS = 0.09
    settings.AGENT_IDLE_SECONDS = 300


class Socket:
    """A socket's send: every frame it got, and a way to wait for one."""

    def __init__(self) -> None:
        self.frames: list[dict] = []
        self._arrived = asyncio.Event()
        self.handle: SessionHandle | None = None  # its hold on the session it opened

    async def __call__(self, frame: dict) -> None:
        self.frames.append(frame)
        self._arrived.set()

    async def until(self, found: Callable[[list[dict]], bool], timeout: float = 3) -> None:
        async with asyncio.timeout(timeout):
            while not found(self.frames):
                self._arrived.clear()
                await self._arrived.wait()

    async def terminal(self, count: int = 1) -> dict:
        """The ``count``-th terminal frame (``complete`` or ``error``), once it came."""
        await self.until(lambda frames: len(self.of(*TERMINAL)) >= count)
        return self.of(*TERMINAL)[count - 1]

    def of(self, *types: str) -> list[dict]:
        return [frame for frame in self.frames if frame["type"] in types]


class Sessions:
    """A registry of runners on a fake SDK, and sockets to open them with."""

    def __init__(self, sdk: FakeSDK) -> None:
        self.sdk = sdk
        self.agents = AgentPool()
        self.registry = SessionRegistry(
            agents=self.agents, make_client=sdk, make_events=EventStream
        )
        self.router = SessionRouter(self.registry, InMemoryChannelLayer())

    async def open(self, session_id: str = "s1", **init) -> tuple[SessionRunner, Socket]:
        socket = Socket()
        frame = InitFrame.model_validate({"type": "init", "sessionId": session_id, **init})
        socket.handle = await self.router.open(session_id, socket, frame, client="10.0.0.1")
        runner = self.registry.live(session_id)
        assert runner is not None
        return runner, socket

    async def one_turn(self) -> tuple[SessionRunner, Socket, dict]:
        """Open ``s1`` and run a turn (``m1``, a short recorded answer) to its end."""
        self.sdk.answer(Reply(recorded("overloaded_then_ok")))
        runner, socket = await self.open()
        await runner.submit(socket, message(client_id="m1"))
        complete = await socket.terminal()
        await runner.wait_idle()
        return runner, socket, complete

    async def close(self) -> None:
        await self.registry.shutdown(1)


@pytest.fixture
async def sessions():
    """Sessions on a fake SDK with no reply yet (``sessions.sdk.answer(...)``)."""
    sessions = Sessions(FakeSDK())
    yield sessions
    await sessions.close()


def message(text: str = "hello", client_id: str | None = "m1", **fields) -> MessageFrame:
    wire = {"type": "message", "sessionId": "s1", "message": text, **fields}
    if client_id:
        wire["clientMessageId"] = client_id
    return MessageFrame.model_validate(wire)


async def eventually(found: Callable[[], bool], timeout: float = 2) -> None:
    """Wait until ``found()`` (for what the owner task does on a thread, or after a timer)."""
    async with asyncio.timeout(timeout):
        while not found():
            await asyncio.sleep(0.005)


def hanging() -> Reply:
    """A turn that has streamed its first text and then waits (until stopped)."""
    return Reply(recorded("long_text"), hang_after=8)


async def stopped_turn(runner: SessionRunner, socket: Socket, *, client_id: str, nth: int) -> None:
    """Send a message, stop its turn at its first text, and wait for its ``nth`` terminal."""
    streamed = len(socket.of("stream"))
    await runner.submit(socket, message(client_id=client_id))
    await socket.until(lambda frames: len(socket.of("stream")) > streamed)
    runner.stop()
    await socket.terminal(nth)
    await runner.wait_idle()


async def test_a_message_runs_one_turn_to_one_complete_frame(sessions) -> None:
    runner, socket, complete = await sessions.one_turn()

    assert complete["type"] == "complete" and complete["clientMessageId"] == "m1"
    assert complete["result"] == "Answered after two overloaded errors."
    assert [f["seq"] for f in socket.frames] == list(range(0, len(socket.frames)))
    assert len(socket.of(*TERMINAL)) == 1
    assert runner.state is RunnerState.IDLE and sessions.sdk.queries == ["hello"]


async def test_a_turns_record_holds_how_it_ended(sessions) -> None:
    _, socket, complete = await sessions.one_turn()
    sessions.sdk.answer(hanging())
    runner = sessions.registry.live("s1")
    assert runner is not None
    await stopped_turn(runner, socket, client_id="m2", nth=2)
    sessions.sdk.answer(Reply(recorded("overloaded_529")))
    await runner.submit(socket, message(client_id="m3"))
    error = await socket.terminal(3)
    await runner.wait_idle()

    rows = [row async for row in TurnRecord.objects.filter(session__session_id="s1")]
    assert [row.outcome for row in rows] == ["complete", "stopped", error["code"]]
    first = rows[0]
    assert first.input_tokens == complete["usage"]["inputTokens"]
    assert first.output_tokens == complete["usage"]["outputTokens"]
    assert first.duration_ms is not None and first.duration_ms >= first.first_text_ms >= 0
    assert rows[2].input_tokens is None and rows[2].duration_ms is not None


async def test_a_second_message_during_a_turn_is_session_busy(sessions) -> None:
    sessions.sdk.answer(hanging())
    runner, socket = await sessions.open()
    await runner.submit(socket, message(client_id="m1"))

    with pytest.raises(SessionBusy, match="A turn is running"):
        await runner.submit(socket, message(client_id="m2"))
    with pytest.raises(SessionBusy):
        await runner.undo(UndoFrame.model_validate({"type": "undo", "sessionId": "s1"}))

    runner.stop()
    assert (await socket.terminal())["stopped"] is True


async def test_the_session_is_free_for_the_next_message_once_a_turn_ends(sessions) -> None:
    sessions.sdk.answer(hanging(), Reply(recorded("overloaded_then_ok")))
    runner, socket = await sessions.open()
    await runner.submit(socket, message(client_id="m1"))
    await socket.until(lambda frames: any(f["type"] == "stream" for f in frames))
    runner.stop()
    await socket.terminal()

    await runner.submit(socket, message(client_id="m2"))

    assert (await socket.terminal(2))["stopped"] is False
    assert len(sessions.sdk.clients) == 1  # the stopped CLI answered the next turn


async def test_a_resend_of_the_running_turn_is_ignored(sessions) -> None:
    sessions.sdk.answer(hanging())
    runner, socket = await sessions.open()
    await runner.submit(socket, message(client_id="m1"))

    await socket.until(lambda frames: any(f["type"] == "stream" for f in frames))
    await runner.submit(socket, message(client_id="m1"))  # no SessionBusy

    runner.stop()
    await socket.terminal()
    assert sessions.sdk.queries == ["hello"]


async def test_a_resend_after_the_turn_gets_its_stored_outcome_not_a_rerun(sessions) -> None:
    runner, _, complete = await sessions.one_turn()
    again = Socket()

    await runner.submit(again, message(client_id="m1"))

    assert again.frames == [complete]
    assert sessions.sdk.queries == ["hello"]


async def test_a_stored_outcome_outlives_the_runner(sessions) -> None:
    _, _, complete = await sessions.one_turn()
    await sessions.registry.end_session("s1")
    runner, _ = await sessions.open()
    again = Socket()

    await runner.submit(again, message(client_id="m1"))

    assert again.frames == [complete] and sessions.sdk.queries == ["hello"]


async def test_undo_restores_the_files_and_resumes_before_the_undone_turn(sessions) -> None:
    sessions.sdk.answer(*(Reply(recorded("overloaded_then_ok")) for _ in range(3)))
    runner, socket = await sessions.open(files={"a.txt": "one"})
    await runner.submit(socket, message(client_id="m1"))
    await socket.terminal(1)
    await runner.wait_idle()
    await runner.submit(socket, message(client_id="m2", files={"a.txt": "two"}))
    await socket.terminal(2)
    await runner.wait_idle()
    # What the agent's tools would have done in turn 2 (the fake CLI writes nothing).
    await workspaces.sync_in(session_id="s1", files={"a.txt": "three", "new.txt": "x"})
    first_client = sessions.sdk.clients[0]

    await runner.undo(UndoFrame.model_validate({"type": "undo", "sessionId": "s1"}))
    await socket.until(lambda frames: any(f["type"] == "undone" for f in frames))

    [undone] = socket.of("undone")
    assert undone["turns"] == 1 and undone["messageCount"] == 1
    assert undone["files"] == {"a.txt": "two"}  # as the turn found it: with its files
    assert undone["deleted"] == ["new.txt"]
    assert first_client.disconnects == 1  # the conversation changed under the CLI
    assert await store.outcome("s1", "m2") is None  # resending m2 runs it again
    await runner.submit(socket, message(client_id="m3"))
    await socket.terminal(3)
    resumed = sessions.sdk.clients[1].options
    assert resumed.resume and resumed.resume_session_at and resumed.fork_session


async def test_undo_with_no_turn_is_nothing_to_undo_and_frees_the_session(sessions) -> None:
    runner, _ = await sessions.open()

    with pytest.raises(NothingToUndo):
        await runner.undo(UndoFrame.model_validate({"type": "undo", "sessionId": "s1"}))

    assert runner.state is RunnerState.IDLE


async def test_an_idle_cli_is_closed_but_an_attended_runner_stays(sessions, settings) -> None:
    settings.AGENT_IDLE_SECONDS = 0.05
    runner, _, _ = await sessions.one_turn()
    [client] = sessions.sdk.clients

    await eventually(lambda: not sessions.agents.live)

    assert client.disconnects == 1 and not runner.closed
    assert sessions.registry.active == 1


async def test_an_unattended_runner_ends_after_the_idle_time(sessions, settings) -> None:
    settings.AGENT_IDLE_SECONDS = 0.05
    runner, socket = await sessions.open()
    await eventually(lambda: leases.is_leased(session_id="s1"))

    assert socket.handle is not None
    await socket.handle.leave()
    await asyncio.wait_for(runner.wait_closed(), 2)

    assert runner.closed and sessions.registry.active == 0
    assert not leases.is_leased(session_id="s1")


async def test_a_turn_keeps_an_unattended_runner_until_it_ends(sessions, settings) -> None:
    settings.AGENT_IDLE_SECONDS = 0.05
    sessions.sdk.answer(Reply(recorded("overloaded_then_ok"), delay=0.01))  # ~0.15 s
    runner, socket = await sessions.open()
    await runner.submit(socket, message())
    assert socket.handle is not None
    await socket.handle.leave()

    assert runner.release_if_unattended() is False
    await asyncio.wait_for(runner.wait_closed(), 3)
    outcome = await TurnOutcome.objects.aget(client_message_id="m1")
    assert outcome.frame["type"] == "complete" and outcome.frame["stopped"] is False


async def test_a_pool_at_its_limit_closes_another_sessions_idle_cli(sessions, settings) -> None:
    settings.MAX_LIVE_AGENTS = 1
    sessions.sdk.answer(Reply(recorded("overloaded_then_ok")), Reply(recorded("write_app")))
    first, first_socket = await sessions.open("s1")
    await first.submit(first_socket, message())
    await first_socket.terminal()
    await first.wait_idle()
    second, second_socket = await sessions.open("s2")

    await second.submit(second_socket, message())

    assert (await second_socket.terminal())["type"] == "complete"
    assert sessions.sdk.clients[0].disconnects == 1 and not first.closed
    assert sessions.agents.live == 1


async def test_a_cli_that_fails_to_start_is_a_model_error_and_the_session_goes_on(
    sessions,
) -> None:
    sessions.sdk.connect_error = CLIConnectionError("no CLI")
    sessions.sdk.answer(Reply(recorded("overloaded_then_ok")))
    runner, socket = await sessions.open()

    await runner.submit(socket, message(client_id="m1"))
    error = await socket.terminal()
    await runner.wait_idle()
    sessions.sdk.connect_error = None
    await runner.submit(socket, message(client_id="m2"))

    assert error["type"] == "error" and error["code"] == "MODEL_ERROR"
    assert (await socket.terminal(2))["type"] == "complete"
    assert sessions.agents.live == 1


async def test_closing_during_a_turn_sends_one_internal_error(sessions) -> None:
    sessions.sdk.answer(hanging())
    runner, socket = await sessions.open()
    await runner.submit(socket, message())
    await socket.until(lambda frames: any(f["type"] == "stream" for f in frames))

    await asyncio.wait_for(runner.close(), 2)

    [terminal] = socket.of(*TERMINAL)
    assert terminal["type"] == "error" and terminal["code"] == "INTERNAL"
    assert sessions.agents.live == 0 and sessions.sdk.clients[0].disconnects >= 1


async def test_an_open_racing_a_release_gets_a_new_runner_never_the_closing_one(
    sessions,
) -> None:
    runner, socket = await sessions.open()
    assert socket.handle is not None
    await socket.handle.leave()
    await asyncio.sleep(0)

    assert runner.release_if_unattended() is True  # closing, not yet closed
    reopened, again = await sessions.open()

    assert reopened is not runner and runner.closed and not reopened.closed
    assert again.of("ready") and sessions.registry.active == 1


async def test_a_socket_on_its_way_keeps_the_runner(sessions) -> None:
    runner, socket = await sessions.open()
    assert socket.handle is not None
    await socket.handle.leave()
    runner.hold()  # a socket between the registry lookup and its attach

    assert runner.release_if_unattended() is False
    runner.unhold()
    assert runner.release_if_unattended() is True
    await asyncio.wait_for(runner.wait_closed(), 2)


# --- the CLI started ahead of the first message (AGENT_PREWARM) ----------------------


async def settled() -> None:
    """Let the owner task take what is queued (a warm-up with an instant fake CLI)."""
    await asyncio.sleep(0.1)


async def test_an_init_starts_the_cli_when_a_slot_is_free(sessions) -> None:
    await sessions.open()

    await eventually(lambda: sessions.agents.live == 1)
    [client] = sessions.sdk.clients
    assert client.connected and client.queries == []


async def test_the_first_message_uses_the_cli_started_at_init(sessions) -> None:
    sessions.sdk.answer(Reply(recorded("overloaded_then_ok")))
    runner, socket = await sessions.open()
    await eventually(lambda: sessions.agents.live == 1)

    await runner.submit(socket, message())

    assert (await socket.terminal())["type"] == "complete"
    [client] = sessions.sdk.clients
    assert client.queries == ["hello"] and client.disconnects == 0


async def test_no_cli_is_started_at_init_when_the_pool_is_full(sessions, settings) -> None:
    settings.MAX_LIVE_AGENTS = 1
    await sessions.open("s1")
    await eventually(lambda: sessions.agents.live == 1)

    await sessions.open("s2")
    await settled()

    [first] = sessions.sdk.clients  # s2 started none, and s1's was not asked to close
    assert first.connected and first.disconnects == 0


@pytest.mark.parametrize("setting", ["AGENT_PREWARM", "ANTHROPIC_API_KEY"])
async def test_no_cli_is_started_at_init_when_turned_off_or_without_a_model(
    sessions, settings, setting
) -> None:
    setattr(settings, setting, False if setting == "AGENT_PREWARM" else "")
    settings.ANTHROPIC_BASE_URL = ""

    await sessions.open()
    await settled()

    assert sessions.sdk.clients == [] and sessions.agents.live == 0


async def test_a_message_during_the_start_at_init_waits_for_it(sessions) -> None:
    sessions.sdk.connect_delay = 0.2
    sessions.sdk.answer(Reply(recorded("overloaded_then_ok")))
    runner, socket = await sessions.open()
    await eventually(lambda: len(sessions.sdk.clients) == 1)  # starting

    await runner.submit(socket, message())

    assert (await socket.terminal())["type"] == "complete"
    [client] = sessions.sdk.clients
    assert client.queries == ["hello"] and sessions.agents.live == 1


async def test_a_stop_during_the_start_at_init_leaves_an_idle_cli_that_closes(
    sessions, settings
) -> None:
    settings.AGENT_IDLE_SECONDS = 0.3
    sessions.sdk.connect_delay = 0.2
    runner, socket = await sessions.open()
    await eventually(lambda: len(sessions.sdk.clients) == 1)
    await runner.submit(socket, message())

    runner.stop()

    assert (await socket.terminal())["stopped"] is True
    [client] = sessions.sdk.clients
    assert client.queries == []
    await eventually(lambda: not client.connected and sessions.agents.live == 0)
    assert not runner.closed  # a socket is attached: only the CLI went


async def test_closing_during_the_start_at_init_leaves_no_cli(sessions) -> None:
    sessions.sdk.connect_delay = 5
    runner, _ = await sessions.open()
    await eventually(lambda: len(sessions.sdk.clients) == 1)

    await asyncio.wait_for(runner.close(), 2)

    [client] = sessions.sdk.clients
    assert not client.connected and sessions.agents.live == 0


async def test_a_socket_leaving_during_the_start_at_init_leaves_no_cli(sessions, settings) -> None:
    settings.AGENT_IDLE_SECONDS = 0.05
    sessions.sdk.connect_delay = 0.2
    runner, socket = await sessions.open()
    await eventually(lambda: len(sessions.sdk.clients) == 1)

    assert socket.handle is not None
    await socket.handle.leave()
    await asyncio.wait_for(runner.wait_closed(), 2)

    [client] = sessions.sdk.clients
    assert not client.connected and sessions.agents.live == 0


async def test_a_failed_start_at_init_is_logged_and_the_first_message_starts_again(
    sessions, caplog
) -> None:
    sessions.sdk.connect_error = CLIConnectionError("no CLI")
    sessions.sdk.answer(Reply(recorded("overloaded_then_ok")))
    runner, socket = await sessions.open()
    await eventually(lambda: "starting the agent ahead" in caplog.text)
    sessions.sdk.connect_error = None

    await runner.submit(socket, message())

    assert (await socket.terminal())["type"] == "complete"
    assert len(sessions.sdk.clients) == 2 and sessions.agents.live == 1


async def test_a_cli_started_at_init_and_never_used_gives_its_slot_first(
    sessions, settings
) -> None:
    settings.MAX_LIVE_AGENTS = 2
    sessions.sdk.answer(Reply(recorded("overloaded_then_ok")), Reply(recorded("write_app")))
    used, used_socket = await sessions.open("s1")
    await used.submit(used_socket, message())
    await used_socket.terminal()
    await used.wait_idle()
    await sessions.open("s2")  # more recent than s1's turn, but never used
    await eventually(lambda: sessions.agents.live == 2)
    third, third_socket = await sessions.open("s3")  # no slot free: starts nothing

    await third.submit(third_socket, message())

    assert (await third_socket.terminal())["type"] == "complete"
    s1_client, s2_client, _ = sessions.sdk.clients
    assert s2_client.disconnects == 1 and s1_client.disconnects == 0


def turn_lines(caplog) -> list:
    return [r for r in caplog.records if r.getMessage() == "turn ended"]


async def test_each_turn_ends_with_one_log_line_of_its_figures(sessions, caplog) -> None:
    caplog.set_level("INFO", logger="dashboard_ai.chat")
    sessions.sdk.answer(Reply(recorded("write_app")), hanging())
    runner, socket = await sessions.open()
    await runner.submit(socket, message(client_id="m1"))
    complete = await socket.terminal()
    await runner.wait_idle()

    [line] = turn_lines(caplog)
    assert line.sessionId == "s1" and line.outcome == "complete"
    assert line.tools == ["Write"]
    assert 0 <= line.firstTextMs <= line.durationMs
    assert (line.inputTokens, line.outputTokens) == (
        complete["usage"]["inputTokens"],
        complete["usage"]["outputTokens"],
    )
    assert line.costUsd == complete["costUsd"]

    await stopped_turn(runner, socket, client_id="m2", nth=2)
    assert [r.outcome for r in turn_lines(caplog)] == ["complete", "stopped"]
