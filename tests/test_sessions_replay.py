"""Sessions that survive: reconnect with replay, several sockets, buffer overflow."""

from __future__ import annotations

import pytest

from tests.support.live import ChatClient

pytestmark = pytest.mark.timeout(120)

SCRIPT = "[script:write_then_long_text]"


def shape(frames: list[dict]) -> list[tuple]:
    """What must match between two runs of one script: order, types, text and files."""
    keep = ("type", "seq", "text", "tool", "path", "content", "files", "stopped", "result")
    return [tuple((k, str(f.get(k))) for k in keep) for f in frames]


async def test_reconnect_with_last_seq_loses_and_duplicates_nothing(backend) -> None:
    reference = await ChatClient.connect(backend.ws_url)
    await reference.init("replay-ref")
    uninterrupted = await reference.message("replay-ref", SCRIPT)
    await reference.close()

    first = await ChatClient.connect(backend.ws_url)
    await first.init("replay-1")
    await first.send({"type": "message", "sessionId": "replay-1", "message": SCRIPT})
    seen = [await first.recv() for _ in range(12)]
    await first.close()
    second = await ChatClient.connect(backend.ws_url)
    ready = await second.init("replay-1", lastSeq=seen[-1]["seq"])
    rest = await second.turn()
    await second.close()

    combined = seen + rest
    assert ready["replayTruncated"] is False
    assert [f["seq"] for f in combined] == list(range(1, len(combined) + 1))
    assert shape(combined) == shape(uninterrupted)


async def test_two_sockets_see_identical_events_and_either_can_stop(backend) -> None:
    one = await ChatClient.connect(backend.ws_url)
    two = await ChatClient.connect(backend.ws_url)
    await one.init("pair-1")
    await two.init("pair-1")

    await one.send({"type": "message", "sessionId": "pair-1", "message": "[script:long_text]"})
    await two.until("stream")
    await two.send({"type": "message", "sessionId": "pair-1", "message": "me too"})
    busy = await two.until("error")
    await two.send({"type": "stop", "sessionId": "pair-1"})
    from_one = await one.turn()
    from_two = await two.turn()
    await one.close()
    await two.close()

    assert busy[-1]["code"] == "SESSION_BUSY"
    events_one = [f for f in one.frames if f["type"] != "ready"]
    events_two = [f for f in two.frames if f["type"] not in ("ready", "error")]
    assert events_one == events_two
    assert from_one[-1] == from_two[-1] and from_one[-1]["stopped"] is True


async def test_overflowed_buffer_gives_replay_truncated_and_current_files(own_server) -> None:
    with own_server(REPLAY_BUFFER_EVENTS="5") as server:
        client = await ChatClient.connect(server.ws_url)
        await client.init("overflow-1", files={"data/a.csv": "x\n1\n"})
        frames = await client.message("overflow-1", "[script:write_app]")
        await client.close()
        again = await ChatClient.connect(server.ws_url)
        truncated = await again.init("overflow-1", lastSeq=1)
        recent = await ChatClient.connect(server.ws_url)
        replayed_ready = await recent.init("overflow-1", lastSeq=frames[-3]["seq"])
        replayed = [await recent.recv() for _ in range(2)]
        nothing_more = await again.nothing(0.3)
        await again.close()
        await recent.close()
        on_disk = (server.data / "workspaces" / "overflow-1" / "src" / "App.tsx").read_text()

    assert truncated["replayTruncated"] is True
    assert truncated["contents"] == {"data/a.csv": "x\n1\n", "src/App.tsx": on_disk}
    assert nothing_more
    assert replayed_ready["replayTruncated"] is False
    assert replayed == frames[-2:]


async def test_last_seq_after_a_restart_is_truncated_with_files(own_server) -> None:
    with own_server() as server:
        client = await ChatClient.connect(server.ws_url)
        await client.init("restart-replay")
        frames = await client.message("restart-replay", "[script:write_app]")
        await client.close()
        server.restart()
        client = await ChatClient.connect(server.ws_url)
        current = await client.init("restart-replay", lastSeq=frames[-1]["seq"])
        behind = await client.init("restart-replay", lastSeq=1)
        await client.close()

    assert current["replayTruncated"] is False and current["seq"] == frames[-1]["seq"]
    assert behind["replayTruncated"] is True and "src/App.tsx" in behind["contents"]
