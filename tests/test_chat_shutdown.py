"""SIGTERM while a turn streams: one terminal frame, close code 4012, no CLI left, exit."""

from __future__ import annotations

import time

import pytest
from websockets.exceptions import ConnectionClosed

from scripted_model.server import ScriptedModelServer
from tests.support.live import ChatClient, claude_processes

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


async def test_sigterm_mid_turn_ends_turn_closes_4012_and_exits(
    own_server, shared_model: ScriptedModelServer
) -> None:
    with own_server() as server:
        client = await ChatClient.connect(server.ws_url)
        await client.init("sigterm1")
        await client.begin("sigterm1", "[script:long_text]")
        started = time.monotonic()

        server.process.send_signal(15)
        frames = await client.turn(timeout=15)
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv(timeout=10)
        exit_code = server.process.wait(timeout=15)
        took = time.monotonic() - started

    assert frames[-1]["type"] == "complete" and frames[-1]["stopped"] is True
    assert [f["type"] for f in client.frames].count("complete") == 1
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4012
    assert exit_code is not None
    assert took < 12
    assert claude_processes("sigterm1") == []


async def test_a_killed_server_takes_its_cli_with_it(own_server) -> None:
    with own_server() as server:
        client = await ChatClient.connect(server.ws_url)
        await client.init("sigkill1")
        await client.begin("sigkill1", "[script:long_text]")
        assert claude_processes("sigkill1")

        server.process.kill()  # SIGKILL: no handler runs, only the parent-death signal
        server.process.wait()
        for _ in range(50):
            if not claude_processes("sigkill1"):
                break
            time.sleep(0.1)
        left = claude_processes("sigkill1")
        server.process = None

    assert left == []
