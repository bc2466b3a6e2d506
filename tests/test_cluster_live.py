"""A live cluster: several servers on one Redis and one database, no sticky sessions.

Each server is its own daphne process on a disk of its own at the same path
(``cluster``), sharing a throwaway redis-server and the test's database. Sockets of
one session land on different servers; the owner (the server holding the session's
lease) runs its turns, the others route frames to it and fan its events out.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time

import pytest

from scripted_model.scripts import APP_TSX
from scripted_model.server import ScriptedModelServer
from tests.support.fixtures import FLEET_LEASE_SECONDS as LEASE_SECONDS
from tests.support.live import ChatClient, LiveServer, a_request_held
from tests.support.metrics import METRICS_ENV, Scrape, scrape
from tests.support.redis import RedisServer

pytestmark = [pytest.mark.timeout(150), pytest.mark.database]

FILES = {"data/sales.csv": "month,revenue\nJan,10\nFeb,20\n"}


def owned(server: LiveServer) -> int:
    return int(server.get_json("/health")["ownedSessions"])


def seqs(frames: list[dict]) -> list[int]:
    return [frame["seq"] for frame in frames]


async def test_sockets_on_two_servers_see_the_same_events_and_frames_run_on_the_owner(
    fleet,
) -> None:
    a, b = fleet("a"), fleet("b")
    on_a = await ChatClient.connect(a.ws_url)
    await on_a.init("c1", files=FILES)  # nobody owned it: a takes it
    on_b = await ChatClient.connect(b.ws_url)
    ready_b = await on_b.init("c1")

    sent_on_a = await on_a.message("c1", "[script:multi_tool]")
    seen_on_b = await on_b.turn()
    sent_on_b = await on_b.message("c1", "[script:write_app]", clientMessageId="m2")
    seen_on_a = await on_a.turn()
    await on_b.send({"type": "message", "sessionId": "c1", "message": "x", "clientMessageId": "m2"})
    resent = await on_b.turn()

    assert ready_b["files"] == sorted(FILES)
    assert sent_on_a == seen_on_b and sent_on_a[-1]["type"] == "complete"
    assert sent_on_b == seen_on_a and sent_on_b[-1]["type"] == "complete"
    assert sent_on_b[-1]["files"]["src/App.tsx"] == APP_TSX
    every = seqs(sent_on_a + sent_on_b)
    assert every == list(range(every[0], every[0] + len(every)))  # one numbering
    assert resent == [sent_on_b[-1]]  # the stored outcome, answered to b's socket
    assert await on_a.nothing()  # ... and to it alone
    assert (owned(a), owned(b)) == (1, 0)  # the message sent to b ran on a
    assert b.get_json("/health")["activeSessions"] == 0
    await on_a.close()
    await on_b.close()


async def test_stop_and_busy_reach_the_owner_from_another_server(fleet) -> None:
    a, b = fleet("a"), fleet("b")
    on_a = await ChatClient.connect(a.ws_url)
    await on_a.init("c2", files=FILES)
    on_b = await ChatClient.connect(b.ws_url)
    await on_b.init("c2")

    await on_a.begin("c2", "[script:long_text]")
    await on_b.until("stream")
    await on_b.send({"type": "message", "sessionId": "c2", "message": "[script:echo]"})
    busy = (await on_b.until("error"))[-1]
    await on_b.send({"type": "stop", "sessionId": "c2"})
    ended_b = (await on_b.turn())[-1]
    ended_a = (await on_a.turn())[-1]

    assert busy["code"] == "SESSION_BUSY"
    assert ended_a == ended_b
    assert ended_b["type"] == "complete" and ended_b["stopped"] is True
    assert await on_a.nothing()  # the busy error went to b's socket only
    await on_a.close()
    await on_b.close()


async def test_a_socket_that_drops_from_one_server_resumes_on_another_missing_nothing(
    fleet,
) -> None:
    a, b = fleet("a"), fleet("b")
    witness = await ChatClient.connect(a.ws_url)
    await witness.init("c3", files=FILES)
    dropping = await ChatClient.connect(a.ws_url)
    await dropping.init("c3")

    started = await witness.begin("c3", "[script:long_text]")
    before = await dropping.until("stream")
    for _ in range(5):
        before.append(await dropping.recv())
    dropping.ws.transport.abort()  # the connection drops: no close handshake
    await dropping.close()
    again = await ChatClient.connect(b.ws_url)
    await again.send({"type": "init", "sessionId": "c3", "lastSeq": before[-1]["seq"]})
    resumed = await again.turn()
    whole = started + await witness.turn()

    ready, replayed = resumed[0], resumed[1:]
    assert ready["type"] == "ready" and ready["replayTruncated"] is False
    assert before + replayed == whole  # nothing missed, nothing twice
    assert whole[-1]["type"] == "complete"
    await witness.close()
    await again.close()


async def test_a_killed_owner_mid_turn_gives_every_socket_the_terminal_error_and_a_survivor_runs_on(
    fleet, shared_model: ScriptedModelServer
) -> None:
    a, b, c = fleet("a"), fleet("b"), fleet("c")
    on_a = await ChatClient.connect(a.ws_url)
    await on_a.init("c4", files=FILES)
    await on_a.message("c4", "remember kiwi [script:write_app]")
    on_b = await ChatClient.connect(b.ws_url)
    await on_b.init("c4")
    on_c = await ChatClient.connect(c.ws_url)
    await on_c.init("c4")

    await on_a.begin("c4", "[script:long_text]", clientMessageId="k1")
    await on_b.until("stream")
    await on_c.until("stream")
    a.kill()
    killed_at = time.monotonic()
    ends = await asyncio.gather(on_b.turn(), on_c.turn())
    waited = time.monotonic() - killed_at

    shared_model.clear_requests()
    after = await on_b.message("c4", "which fruit? [script:echo]")
    seen_on_c = await on_c.turn()
    await on_c.send({"type": "message", "sessionId": "c4", "message": "x", "clientMessageId": "k1"})
    resent = (await on_c.turn())[-1]

    for end in ends:
        assert end[-1]["type"] == "error" and end[-1]["code"] == "TURN_INTERRUPTED"
        assert end[-1]["recoverable"] is True and end[-1]["clientMessageId"] == "k1"
    assert ends[0][-1] == ends[1][-1]
    assert waited < LEASE_SECONDS + 2
    assert after[-1]["type"] == "complete" and after == seen_on_c
    assert after[0]["seq"] > ends[0][-1]["seq"]  # seq never goes back across owners
    assert a_request_held(shared_model, "remember kiwi", "which fruit?")
    assert resent == ends[0][-1]  # the interrupted turn's stored outcome
    assert owned(b) + owned(c) == 1
    await on_a.close()
    await on_b.close()
    await on_c.close()


async def test_each_server_counts_its_own_routed_frames_and_takeovers(fleet) -> None:
    a, b = fleet("a", **METRICS_ENV), fleet("b", **METRICS_ENV)
    on_a = await ChatClient.connect(a.ws_url)
    await on_a.init("c7", files=FILES)  # a owns it
    on_b = await ChatClient.connect(b.ws_url)
    await on_b.init("c7")
    at_a, at_b = Scrape(a), Scrape(b)

    routed = await on_b.message("c7", "[script:echo]")

    assert routed[-1]["type"] == "complete"
    # The message sent to b ran on a: b routed frames there, a served them and ran it.
    assert at_b.moved("dashboard_ai_routed_frames_total", direction="sent") >= 1
    assert at_a.moved("dashboard_ai_routed_frames_total", direction="served") >= 1
    assert at_a.moved("dashboard_ai_turns_started_total") == 1
    assert at_b.moved("dashboard_ai_turns_started_total") == 0
    assert at_b.moved("dashboard_ai_session_takeovers_total") == 0

    a.kill()
    deadline = time.monotonic() + LEASE_SECONDS + 5
    while owned(b) == 0 and time.monotonic() < deadline:  # b's socket attends the session
        await asyncio.sleep(0.2)
    after = await on_b.message("c7", "[script:echo]")

    assert after[-1]["type"] == "complete"
    assert at_b.moved("dashboard_ai_session_takeovers_total") == 1
    assert at_b.moved("dashboard_ai_turns_started_total") == 1
    servers = [
        dict(labels) for (name, labels) in scrape(b)[1] if name == "dashboard_ai_server_info"
    ]
    assert [labels["server_id"] for labels in servers] == ["b"]
    await on_a.close()
    await on_b.close()


# PostgreSQL only: SQLite has one write lock for the whole database, and an owner paused
# in the middle of a write (its transcript is written as it streams) holds it, so no
# other server can take the session over until it comes back. A fleet runs on PostgreSQL.
@pytest.mark.postgres
async def test_a_paused_owner_that_comes_back_after_its_lease_cannot_write(fleet) -> None:
    a, b = fleet("a"), fleet("b")
    on_a = await ChatClient.connect(a.ws_url)
    await on_a.init("c5", files=FILES)
    on_b = await ChatClient.connect(b.ws_url)
    await on_b.init("c5")

    await on_a.begin("c5", "[script:slow_write]")
    await on_b.until("stream")
    assert a.process is not None
    os.kill(a.process.pid, signal.SIGSTOP)
    try:
        interrupted = (await on_b.turn())[-1]  # b took the session over
    finally:
        os.kill(a.process.pid, signal.SIGCONT)
    quiet = await on_b.nothing(timeout=6.0)  # a's turn would have written Late.tsx by now
    await on_b.send({"type": "init", "sessionId": "c5"})
    ready = (await on_b.until("ready"))[-1]

    assert interrupted["code"] == "TURN_INTERRUPTED"
    assert quiet, on_b.frames[-1]
    assert "src/Late.tsx" not in ready["files"]
    assert ready["files"] == sorted(FILES)
    assert (owned(a), owned(b)) == (0, 1)
    await on_a.close()
    await on_b.close()


async def test_a_server_that_leaves_hands_its_sessions_over_without_waiting_for_the_lease(
    fleet,
) -> None:
    slow = {"SESSION_LEASE_SECONDS": "60"}  # a handover that waited would time out
    a, b = fleet("a", **slow), fleet("b", **slow)
    on_a = await ChatClient.connect(a.ws_url)
    await on_a.init("c6", files=FILES)
    on_b = await ChatClient.connect(b.ws_url)
    await on_b.init("c6")
    await on_a.begin("c6", "[script:long_text]")
    await on_b.until("stream")

    a.stop()  # SIGTERM: the turn ends with its terminal frame, the lease is released
    ended = (await on_b.turn(timeout=20))[-1]
    after = await on_b.message("c6", "[script:write_app]")

    assert ended["type"] in ("complete", "error")  # its one terminal frame
    assert after[-1]["type"] == "complete", (after[-1], ended)
    assert owned(b) == 1
    await on_a.close()
    await on_b.close()


async def test_a_redis_that_lost_the_events_gives_replay_truncated_and_the_session_goes_on(
    fleet, redis_server: RedisServer
) -> None:
    a, b = fleet("a"), fleet("b")
    on_a = await ChatClient.connect(a.ws_url)
    await on_a.init("c7", files=FILES)
    first = await on_a.message("c7", "[script:write_app]")
    flush_redis(redis_server)  # the events, the leases, everything live

    on_b = await ChatClient.connect(b.ws_url)
    ready = await on_b.init("c7", lastSeq=first[0]["seq"])
    after = await on_b.message("c7", "[script:echo]")
    seen_on_a = await on_a.turn()

    assert ready["replayTruncated"] is True
    assert ready["contents"]["src/App.tsx"] == APP_TSX  # the current files instead
    assert after[-1]["type"] == "complete" and after == seen_on_a
    assert after[0]["seq"] > first[-1]["seq"]  # numbering goes on from the database
    await on_a.close()
    await on_b.close()


def flush_redis(server: RedisServer) -> None:
    subprocess.run(
        ["redis-cli", "-p", str(server.port), "FLUSHALL"], check=True, capture_output=True
    )
