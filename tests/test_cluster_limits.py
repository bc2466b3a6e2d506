"""Limits on a live cluster: what guards the service from one client holds across servers.

Sockets and live sessions per client address count on every server sharing the Redis
(every socket here comes from 127.0.0.1); the CLI slots stay each server's own, and a
server with none free still serves the sockets of sessions another server owns.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from scripted_model.server import ScriptedModelServer
from tests.support.live import ChatClient, LiveServer, a_request_held, refused_with

pytestmark = [pytest.mark.timeout(120), pytest.mark.database]

FILES = {"data/sales.csv": "month,revenue\nJan,10\nFeb,20\n"}


def health(server: LiveServer, field: str) -> int:
    return int(server.get_json("/health")[field])


async def test_sockets_from_one_address_are_capped_across_servers(fleet) -> None:
    a, b = (fleet(name, MAX_SOCKETS_PER_CLIENT="2") for name in ("a", "b"))
    on_a = await ChatClient.connect(a.ws_url)
    on_b = await ChatClient.connect(b.ws_url)
    refused = [await refused_with(server.ws_url) for server in (a, b)]
    await on_a.close()
    await asyncio.sleep(0.3)  # a counts the socket off as it handles the close
    again = await ChatClient.connect(b.ws_url)
    ready = await again.init("l1")

    for frame, close_code in refused:
        assert frame["code"] == "SERVER_BUSY" and close_code == 4013
    assert ready["type"] == "ready"
    await on_b.close()
    await again.close()


async def test_live_sessions_of_one_address_are_capped_across_servers(fleet) -> None:
    a, b = (fleet(name, MAX_SESSIONS_PER_CLIENT="1") for name in ("a", "b"))
    on_a = await ChatClient.connect(a.ws_url)
    first = await on_a.init("l2-first")
    on_b = await ChatClient.connect(b.ws_url)
    refused = await on_b.init("l2-second")  # the first has a socket: nothing to release
    await on_a.close()
    await asyncio.sleep(0.3)  # the first is unattended now
    on_a = await ChatClient.connect(a.ws_url)
    second = await on_a.init("l2-second")  # releases the first
    live_on_a = health(a, "activeSessions")
    refused_again = await on_b.init("l2-first")  # the second has a socket, on a

    assert first["type"] == "ready" and second["type"] == "ready"
    for refusal in (refused, refused_again):
        assert refusal["type"] == "error" and refusal["code"] == "SERVER_BUSY"
        assert "address" in refusal["message"]
    assert live_on_a == 1
    assert health(b, "activeSessions") == 0
    await on_a.close()
    await on_b.close()


async def test_an_unattended_session_on_another_server_makes_room_for_a_new_one(fleet) -> None:
    a, b = (fleet(name, MAX_SESSIONS_PER_CLIENT="1") for name in ("a", "b"))
    on_a = await ChatClient.connect(a.ws_url)
    first = await on_a.init("l4-first")
    await on_a.close()
    await asyncio.sleep(0.3)  # the first is unattended now, on a
    on_b = await ChatClient.connect(b.ws_url)
    second = await on_b.init("l4-second")  # a releases the first, as one server would

    assert first["type"] == "ready" and second["type"] == "ready"
    assert health(a, "activeSessions") == 0 and health(b, "activeSessions") == 1
    await on_b.close()


async def test_frames_for_a_session_another_server_runs_do_not_count_against_the_cap(
    fleet,
) -> None:
    """A second tab of the address's one session, on another server: routed, not refused."""
    a, b = (fleet(name, MAX_SESSIONS_PER_CLIENT="1") for name in ("a", "b"))
    on_a = await ChatClient.connect(a.ws_url)
    await on_a.init("l5")
    on_b = await ChatClient.connect(b.ws_url)
    ready = await on_b.init("l5")
    await on_a.begin("l5", "[script:long_text]")
    await on_b.until("stream")
    await on_b.send({"type": "stop", "sessionId": "l5"})
    ended = (await on_b.turn())[-1]

    assert ready["type"] == "ready"
    assert ended["type"] == "complete" and ended["stopped"] is True
    assert health(a, "activeSessions") == 1 and health(b, "activeSessions") == 0
    await on_a.close()
    await on_b.close()


async def test_a_server_with_no_free_cli_slot_serves_sockets_of_sessions_owned_elsewhere(
    fleet, shared_model: ScriptedModelServer
) -> None:
    a = fleet("a")
    b = fleet("b", MAX_LIVE_AGENTS="1", AGENT_SLOT_WAIT_SECONDS="1", MODEL_STALL_SECONDS="60")
    busy = await ChatClient.connect(b.ws_url)
    await busy.init("l3-here", files=FILES)
    await busy.send(
        {"type": "message", "sessionId": "l3-here", "message": "hold the only slot [script:stall]"}
    )
    await until_asked(
        shared_model, "hold the only slot"
    )  # b's one CLI runs this turn until it is stopped
    waiting = await busy.init("l3-waiting")
    no_slot = (await busy.message("l3-waiting", "[script:echo]"))[-1]
    on_a = await ChatClient.connect(a.ws_url)
    await on_a.init("l3-there", files=FILES)

    on_b = await ChatClient.connect(b.ws_url)
    ready = await on_b.init("l3-there")
    answered = await on_b.message("l3-there", "[script:echo]")
    seen_on_a = await on_a.turn()
    await busy.send({"type": "stop", "sessionId": "l3-here"})
    held = (await busy.until("complete", "error"))[-1]

    assert waiting["type"] == "ready"
    assert no_slot["type"] == "error" and no_slot["code"] == "SERVER_BUSY"
    assert ready["type"] == "ready"
    assert answered[-1]["type"] == "complete" and answered == seen_on_a
    assert held["sessionId"] == "l3-here" and held.get("stopped") is True  # it ran all along
    assert (health(a, "ownedSessions"), health(b, "ownedSessions")) == (1, 2)
    await busy.close()
    await on_a.close()
    await on_b.close()


async def until_asked(model: ScriptedModelServer, text: str, timeout: float = 20.0) -> None:
    """Return once the scripted model got a request holding ``text``."""
    deadline = time.monotonic() + timeout
    while not a_request_held(model, text):
        assert time.monotonic() < deadline, f"the model was never asked {text!r}"
        await asyncio.sleep(0.05)
