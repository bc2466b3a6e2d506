"""One turn through the agent, driven by the fake SDK client: stop, stall, no result, errors.

The host is a runner as a turn sees it; its agent starts through the real
:class:`AgentProcess` (a pool slot, then the client factory), so a stop runs the real
interrupt-then-disconnect escalation against the fake client.
"""

from __future__ import annotations

import asyncio
from pathlib import PurePosixPath
from typing import Any

import pytest
from claude_agent_sdk import CLIConnectionError

from chat.agent.pool import AgentPool
from chat.agent.process import AgentProcess
from chat.events import TurnTranslator
from chat.models import ChatSession
from chat.protocol import CompleteFrame, ErrorFrame, FileChangedFrame, ServerFrame, StreamFrame
from chat.session.turn import Turn, TurnRun
from scripted_model.scripts import APP_TSX
from tests.support.fake_sdk import FakeSDK, Reply, recorded
from workspaces import services as workspaces

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.database,
    pytest.mark.timeout(10),
]

SESSION = "s1"
TERMINAL = (CompleteFrame, ErrorFrame)


@pytest.fixture(autouse=True)
def _settings(settings, tmp_path) -> None:
    settings.WORKSPACE_ROOT = tmp_path / "sessions"
    settings.DATA_DIR = tmp_path / "data"
    settings.STOP_DEADLINE_SECONDS = 0.09  # a third of it per step of a stop
    settings.MODEL_STALL_SECONDS = 60


class Host:
    """A session runner as :class:`TurnRun` needs it (``TurnHost``), and a pool holder."""

    session_id = SESSION
    busy = True

    def __init__(self, sdk: FakeSDK) -> None:
        self.sdk = sdk
        self.pool = AgentPool()
        self.agent: AgentProcess | None = None
        self.emitted: list[ServerFrame] = []
        self.closed = 0

    def close_agent_soon(self) -> None:
        raise AssertionError("the pool has room: nobody is asked to close")

    async def connected_client(self, *, stop: asyncio.Event) -> Any:
        if self.agent is None:
            self.agent = await AgentProcess.start(
                self,
                workspace=workspaces.path_for(SESSION),
                resume=None,
                resume_at=None,
                pool=self.pool,
                make_client=self.sdk,
                stop=stop,
            )
        return self.agent.client

    async def close_agent(self) -> None:
        agent, self.agent = self.agent, None
        if agent is not None:
            self.closed += 1
            await agent.close()

    async def halt_agent(self, pump: asyncio.Task) -> None:
        survived = await self.agent.halt(pump)
        if not survived:
            self.agent = None
            pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)

    def turn_cost(self, total_usd: float) -> float:
        return self.agent.turn_cost(total_usd) if self.agent else total_usd

    async def emit(self, frame: ServerFrame) -> dict[str, Any]:
        self.emitted.append(frame)
        return frame.to_wire()

    def of(self, kind: type) -> list:
        return [frame for frame in self.emitted if isinstance(frame, kind)]


async def run(host: Host, *, stop_when=None, message: str = "hello") -> tuple[ServerFrame, Turn]:
    """Run one turn; ``stop_when(host)`` is polled, and a stop requested once it is true."""
    await workspaces.create(session_id=SESSION)
    await ChatSession.objects.acreate(session_id=SESSION)
    turn = Turn(message=message, client_message_id="m1")
    translator = TurnTranslator(workspace=PurePosixPath("/WORKSPACE"))  # the recordings' path
    before = await workspaces.snapshot(session_id=SESSION)
    running = asyncio.create_task(TurnRun(host, turn, translator).converse(before))
    if stop_when is not None:
        while not stop_when(host) and not running.done():
            await asyncio.sleep(0.001)
        turn.stop_requested.set()
    terminal = await asyncio.wait_for(running, 5)
    assert not host.of(TERMINAL), "a turn emits no terminal frame: it returns the one"
    return terminal, turn


def streamed_text(host: Host) -> str:
    return "".join(frame.text for frame in host.of(StreamFrame))


async def test_a_recorded_turn_completes_with_its_result_and_usage() -> None:
    host = Host(FakeSDK(Reply(recorded("overloaded_then_ok"))))

    terminal, turn = await run(host, message="hi there")

    assert isinstance(terminal, CompleteFrame) and terminal.stopped is False
    assert terminal.result == "Answered after two overloaded errors." == streamed_text(host)
    assert terminal.usage.input_tokens > 0 and terminal.cost_usd > 0
    assert turn.counted and host.sdk.queries == ["hi there"]
    assert host.agent is not None and host.closed == 0  # the CLI stays for the next turn
    record = await ChatSession.objects.aget(session_id=SESSION)
    assert record.message_count == 1 and record.sdk_session_id


async def test_a_written_file_is_sent_as_it_changes_and_listed_in_complete() -> None:
    host = Host(FakeSDK(Reply(recorded("write_app"))))
    # What the CLI's Write did, before its tool result arrives in the replay.
    await workspaces.create(session_id=SESSION)
    await workspaces.sync_in(session_id=SESSION, files={"src/App.tsx": APP_TSX})
    await ChatSession.objects.acreate(session_id=SESSION)
    turn = Turn(message="make an app", client_message_id=None)
    translator = TurnTranslator(workspace=PurePosixPath("/WORKSPACE"))

    terminal = await TurnRun(host, turn, translator).converse({})

    [changed] = host.of(FileChangedFrame)
    assert changed.path == "src/App.tsx" and changed.content == APP_TSX
    assert isinstance(terminal, CompleteFrame) and terminal.files == {"src/App.tsx": APP_TSX}
    assert terminal.hashes["src/App.tsx"] == changed.hash


async def test_a_stop_before_the_first_text_completes_stopped_and_keeps_the_cli() -> None:
    # The first four messages: init, status, message_start, the text block's start.
    host = Host(FakeSDK(Reply(recorded("long_text"), hang_after=4)))

    terminal, turn = await run(host, stop_when=lambda h: h.sdk.queries)

    assert isinstance(terminal, CompleteFrame) and terminal.stopped is True
    assert host.sdk.interrupts == 1
    assert host.agent is not None and host.closed == 0  # the interrupt was enough
    assert streamed_text(host) == "" and terminal.result == ""


async def test_a_stop_after_the_first_text_completes_stopped_with_what_was_said() -> None:
    host = Host(FakeSDK(Reply(recorded("long_text"), hang_after=8)))

    terminal, _ = await run(host, stop_when=lambda h: h.of(StreamFrame))

    assert isinstance(terminal, CompleteFrame) and terminal.stopped is True
    assert streamed_text(host).startswith("word000")
    assert host.sdk.interrupts == 1 and host.agent is not None


async def test_a_stop_during_a_slow_stream_ends_it_long_before_its_end() -> None:
    host = Host(FakeSDK(Reply(recorded("long_text"), delay=0.005)))  # about 1 s in all

    terminal, _ = await run(host, stop_when=lambda h: len(h.of(StreamFrame)) >= 3)

    assert isinstance(terminal, CompleteFrame) and terminal.stopped is True
    assert len(host.of(StreamFrame)) < 20


async def test_a_stop_the_cli_ignores_escalates_to_a_disconnect_within_the_deadline() -> None:
    host = Host(FakeSDK(Reply(recorded("long_text"), hang_after=8, ignore_interrupt=True)))
    loop = asyncio.get_running_loop()

    started = loop.time()
    terminal, _ = await run(host, stop_when=lambda h: h.of(StreamFrame))

    assert isinstance(terminal, CompleteFrame) and terminal.stopped is True
    assert loop.time() - started < 0.09 + 0.5
    [client] = host.sdk.clients
    assert client.interrupts == 1 and client.disconnects >= 1
    assert host.agent is None and host.pool.live == 0  # the next turn starts a new CLI


async def test_a_stop_before_the_agent_is_asked_sends_no_query() -> None:
    host = Host(FakeSDK())
    await workspaces.create(session_id=SESSION)
    turn = Turn(message="hello", client_message_id=None)
    turn.stop_requested.set()

    terminal = await TurnRun(host, turn, TurnTranslator(workspace=PurePosixPath("/W"))).converse({})

    assert isinstance(terminal, CompleteFrame) and terminal.stopped is True
    assert host.sdk.queries == [] and not turn.counted


async def test_a_stall_ends_the_turn_with_model_unavailable(settings) -> None:
    settings.MODEL_STALL_SECONDS = 0.05
    host = Host(FakeSDK(Reply(recorded("long_text"), hang_after=8)))

    terminal, _ = await run(host)

    assert isinstance(terminal, ErrorFrame) and terminal.code == "MODEL_UNAVAILABLE"
    assert host.sdk.interrupts == 1


async def test_a_slow_stream_that_keeps_talking_never_stalls(settings) -> None:
    # Gaps of 40% of the stall time: a busy machine (load 15 on 2 cores) made 20 ms
    # gaps against a 50 ms stall fail now and then.
    settings.MODEL_STALL_SECONDS = 0.15
    messages = recorded("write_app")
    host = Host(FakeSDK(Reply(messages, delay=0.06)))  # longer in all than the stall time

    terminal, _ = await run(host)

    assert isinstance(terminal, CompleteFrame) and terminal.stopped is False
    assert len(messages) * 0.02 > 3 * settings.MODEL_STALL_SECONDS
    assert host.sdk.interrupts == 0


async def test_a_stream_that_ends_without_a_result_is_internal_and_closes_the_cli() -> None:
    host = Host(FakeSDK(Reply(recorded("write_app"), without_result=True)))

    terminal, turn = await run(host)

    assert isinstance(terminal, ErrorFrame) and terminal.code == "INTERNAL"
    assert "without a result" in terminal.message
    assert host.closed == 1 and host.agent is None and not turn.counted


async def test_an_error_result_is_model_unavailable_and_names_no_server_address() -> None:
    host = Host(FakeSDK(Reply(recorded("overloaded_529"))))

    terminal, turn = await run(host)

    assert isinstance(terminal, ErrorFrame) and terminal.code == "MODEL_UNAVAILABLE"
    assert "529" in terminal.message and "127.0.0.1" not in terminal.message
    assert turn.counted  # it reached a result: the CLI's conversation holds the prompt


async def test_a_cli_that_fails_to_start_raises_and_gives_its_slot_back() -> None:
    host = Host(FakeSDK(connect_error=CLIConnectionError("no CLI")))

    with pytest.raises(CLIConnectionError):
        await run(host)

    assert host.pool.live == 0 and host.sdk.queries == []


@pytest.mark.parametrize(
    "reply",
    [
        Reply(recorded("write_app")),
        Reply(recorded("write_app"), without_result=True),
        Reply(recorded("overloaded_529")),
        Reply(recorded("long_text"), hang_after=8),
        Reply(recorded("long_text"), hang_after=8, ignore_interrupt=True),
    ],
    ids=["complete", "no-result", "error-result", "stopped", "stopped-hard"],
)
async def test_every_turn_returns_one_terminal_frame_and_emits_none(reply) -> None:
    host = Host(FakeSDK(reply))
    stop = (lambda h: h.of(StreamFrame)) if reply.hang_after else None

    terminal, _ = await run(host, stop_when=stop)

    assert isinstance(terminal, TERMINAL)
