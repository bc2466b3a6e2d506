"""An ``init`` that writes files holds the session like a turn: no turn starts from half a sync."""

from __future__ import annotations

import asyncio

import pytest
from channels.testing import WebsocketCommunicator

from chat.consumers import ChatConsumer
from tests.support.live import ChatClient
from workspaces import services

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.database,
    pytest.mark.timeout(120),
]


@pytest.fixture
def isolated(settings, tmp_path):
    settings.WORKSPACE_ROOT = tmp_path / "workspaces"
    settings.DATA_DIR = tmp_path / "var"
    settings.ANTHROPIC_BASE_URL = "http://127.0.0.1:9"  # configured; never reached here
    return settings


@pytest.fixture
def held_sync(monkeypatch):
    """Every file sync waits for ``release`` after it started: a slow upload, on demand."""
    started, release = asyncio.Event(), asyncio.Event()
    real = services.sync_in_unless_conflicting

    async def slow(**kwargs):
        started.set()
        await release.wait()
        return await real(**kwargs)

    monkeypatch.setattr(services, "sync_in_unless_conflicting", slow)
    return started, release


async def connected() -> WebsocketCommunicator:
    socket = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat")
    assert (await socket.connect())[0]
    return socket


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "message", "message": "hi", "clientMessageId": "m1"},
        {"type": "undo"},
        {"type": "init", "files": {"b.txt": "other"}},
    ],
    ids=["message", "undo", "init-with-files"],
)
async def test_a_frame_during_an_inits_sync_gets_session_busy(isolated, held_sync, frame) -> None:
    started, release = held_sync
    uploader, other = await connected(), await connected()
    release.set()
    await other.send_json_to({"type": "init", "sessionId": "s1"})
    assert (await other.receive_json_from(timeout=5))["type"] == "ready"
    release.clear()

    await uploader.send_json_to(
        {"type": "init", "sessionId": "s1", "files": {"data/sales.csv": "a,b\n1,2\n"}}
    )
    await asyncio.wait_for(started.wait(), 5)
    await other.send_json_to({**frame, "sessionId": "s1"})
    busy = await other.receive_json_from(timeout=5)
    release.set()
    ready = await uploader.receive_json_from(timeout=5)

    assert busy["type"] == "error" and busy["code"] == "SESSION_BUSY"
    assert "Files are being written" in busy["message"]
    assert ready["type"] == "ready" and ready["files"] == ["data/sales.csv"]
    await uploader.disconnect()
    await other.disconnect()


async def test_the_session_is_free_again_after_a_failed_sync(isolated) -> None:
    socket = await connected()
    await socket.send_json_to({"type": "init", "sessionId": "s1", "files": {"../x": "no"}})
    refused = await socket.receive_json_from(timeout=5)
    await socket.send_json_to({"type": "init", "sessionId": "s1", "files": {"ok.txt": "yes"}})
    ready = await socket.receive_json_from(timeout=5)

    assert refused["code"] == "INVALID_PATH"
    assert ready["type"] == "ready" and ready["files"] == ["ok.txt"]
    await socket.disconnect()


async def test_a_turn_racing_a_large_init_never_claims_or_undoes_the_upload(
    backend, session_id
) -> None:
    """The attack of issue 9, item 4, end to end: 500 files, a message 50 ms later.

    Whichever comes first, the other is refused with SESSION_BUSY, or runs after it:
    a turn never reports the upload as its own, and undoing it never deletes an upload
    that came before it. (The big frame is parsed in a worker process, so the message
    may overtake it; an upload after the turn is then reverted by its undo, as
    documented. ``seq`` tells the orders apart: ``ready`` carries the current one.)
    """
    files = {f"data/part{n:03d}.csv": f"n,value\n{n},{'x' * 8000}\n" for n in range(500)}
    uploader = await ChatClient.connect(backend.ws_url)
    talker = await ChatClient.connect(backend.ws_url)
    await talker.init(session_id)

    await uploader.send({"type": "init", "sessionId": session_id, "files": files})
    await asyncio.sleep(0.05)
    turn = await talker.message(session_id, "[script:echo] hello", clientMessageId="r")
    answer = turn[-1]
    ready = (await uploader.until("ready", "error"))[-1]
    if answer["type"] == "complete":
        assert not set(answer["files"]) & set(files)
        await talker.send({"type": "undo", "sessionId": session_id})
        assert (await talker.until("undone", "error"))[-1]["type"] == "undone"
    else:
        assert answer["code"] == "SESSION_BUSY"
    after = await talker.init(session_id)
    await uploader.close()
    await talker.close()

    if ready["type"] != "ready":
        assert ready["code"] == "SESSION_BUSY" and answer["type"] == "complete"
    elif answer["type"] == "error" or ready["seq"] < turn[0]["seq"]:
        assert set(files) <= set(after["files"])  # the upload came first: kept
    else:
        assert ready["seq"] >= answer["seq"], "the upload landed in the middle of the turn"
        assert not set(files) & set(after["files"])  # after the turn: undone with it
