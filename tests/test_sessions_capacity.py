"""Session slots: capped per client address, and given up by sessions nobody uses.

Two client addresses on loopback: sockets bound to 127.0.0.1 and to 127.0.0.2.
"""

from __future__ import annotations

import pytest

from tests.support.live import ChatClient, LiveServer

pytestmark = pytest.mark.timeout(120)

OTHER_ADDRESS = ("127.0.0.2", 0)


async def open_and_leave(server: LiveServer, sessions: list[str]) -> None:
    """Open each session on one socket, then close it: the sessions stay live, unattended."""
    client = await ChatClient.connect(server.ws_url)
    for session in sessions:
        assert (await client.init(session))["type"] == "ready"
    await client.close()


async def test_one_address_cannot_take_every_session_slot(own_server) -> None:
    with own_server(MAX_SESSIONS="6", MAX_SESSIONS_PER_CLIENT="3") as server:
        hog = await ChatClient.connect(server.ws_url)
        opened = [await hog.init(f"hog-{n}") for n in range(3)]
        refused = await hog.init("hog-3")
        other = await ChatClient.connect(server.ws_url, local_addr=OTHER_ADDRESS)
        welcome = await other.init("other-0")
        await hog.close()
        await other.close()

    assert all(frame["type"] == "ready" for frame in opened)
    assert refused["type"] == "error" and refused["code"] == "SERVER_BUSY"
    assert "address" in refused["message"]
    assert welcome["type"] == "ready"


async def test_an_address_at_its_cap_reuses_its_own_unattended_slot(own_server) -> None:
    with own_server(MAX_SESSIONS="6", MAX_SESSIONS_PER_CLIENT="3") as server:
        await open_and_leave(server, ["mine-0", "mine-1", "mine-2"])
        client = await ChatClient.connect(server.ws_url)
        fourth = await client.init("mine-3")
        live = server.get_json("/health")["activeSessions"]
        again = await client.init("mine-0")  # released, not lost: it opens again
        await client.close()

    assert fourth["type"] == "ready"
    assert live == 3
    assert again["type"] == "ready"


async def test_a_full_server_releases_the_least_recently_used_unattended_session(
    own_server,
) -> None:
    with own_server(MAX_SESSIONS="3", MAX_SESSIONS_PER_CLIENT="3") as server:
        await open_and_leave(server, ["old-0", "old-1"])
        newcomer = await ChatClient.connect(server.ws_url, local_addr=OTHER_ADDRESS)
        first = await newcomer.init("new-0")
        second = await newcomer.init("new-1")  # the server is full: old-0 gives its slot
        live = server.get_json("/health")["activeSessions"]
        await newcomer.close()
        log = server.log_text()

    assert first["type"] == "ready" and second["type"] == "ready"
    assert live == 3
    assert '"message": "session released for a new one", "sessionId": "old-0"' in log


async def test_a_full_server_of_attended_sessions_is_still_busy(own_server) -> None:
    with own_server(MAX_SESSIONS="2", MAX_SESSIONS_PER_CLIENT="5") as server:
        holder = await ChatClient.connect(server.ws_url)
        await holder.init("held-0")
        await holder.init("held-1")
        newcomer = await ChatClient.connect(server.ws_url, local_addr=OTHER_ADDRESS)
        refused = await newcomer.init("new-0")
        await holder.close()
        await newcomer.close()

    assert refused["type"] == "error" and refused["code"] == "SERVER_BUSY"
