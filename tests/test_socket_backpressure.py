"""A client that never reads cannot grow the server: small frames get small answers, and
what piles up unread is bounded (``CHAT_MAX_SEND_BUFFER_BYTES``, close code 4008)."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

from chat.send_buffer import SendBuffer
from tests.support.live import ChatClient

pytestmark = pytest.mark.timeout(120)


class Producer:
    """The producer a transport had before ours: records what it was told."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")

    def resumeProducing(self) -> None:
        self.calls.append("resume")

    def stopProducing(self) -> None:
        self.calls.append("stop")


def test_only_what_is_sent_while_the_transport_is_full_counts() -> None:
    buffer = SendBuffer(limit=100)
    assert buffer.admit(1_000)  # the transport takes it: nothing waits
    buffer.pauseProducing()
    assert buffer.admit(60)
    assert not buffer.admit(60)
    buffer.resumeProducing()
    assert buffer.queued == 0 and buffer.admit(60)


def test_the_transports_own_producer_is_still_told_everything() -> None:
    previous = Producer()
    buffer = SendBuffer(limit=100, previous=previous)
    buffer.pauseProducing()
    buffer.resumeProducing()
    buffer.stopProducing()
    assert previous.calls == ["pause", "resume", "stop"]


async def test_a_last_seq_beyond_the_session_is_refused_and_the_socket_stays(
    chat, session_id
) -> None:
    await chat.init(session_id, files={"big.csv": "x" * 100_000})
    done = await chat.message(session_id, "[script:echo] hi")

    refused = await chat.init(session_id, lastSeq=done[-1]["seq"] + 1_000_000)
    ready = await chat.init(session_id, lastSeq=done[-1]["seq"])

    assert refused["type"] == "error" and refused["code"] == "INVALID_LAST_SEQ"
    assert refused["recoverable"] is True and "contents" not in refused
    assert len(json.dumps(refused)) < 500
    assert ready["type"] == "ready" and ready["replayTruncated"] is False


async def test_a_socket_that_never_reads_is_closed_and_others_go_on(own_server) -> None:
    half = 1_500_000
    with own_server(CHAT_MAX_SEND_BUFFER_BYTES=str(4 * 1024 * 1024)) as server:
        setup = await ChatClient.connect(server.ws_url)
        await setup.init("unread", files={"a.csv": "a" * half, "b.csv": "b" * half})
        await setup.message("unread", "[script:echo] so that seq > 0")
        await setup.close()
        server.restart()  # the replay log is empty: lastSeq 0 gets every file again

        # max_queue=1: past one waiting frame, the client stops reading from TCP.
        sleeper = await websockets.connect(server.ws_url, max_size=None, max_queue=1)
        frame = json.dumps({"type": "init", "sessionId": "unread", "lastSeq": 0})
        for _ in range(25):
            try:
                await sleeper.send(frame)
            except websockets.ConnectionClosed:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(2)  # the close handshake times out: the connection is dropped
        with pytest.raises(websockets.ConnectionClosed):
            async with asyncio.timeout(20):
                while True:
                    await sleeper.recv()
        other = await ChatClient.connect(server.ws_url)
        ready = await other.init("unread")
        await other.close()
        log = server.log_text()

    assert "websocket closed: the client does not read" in log
    assert ready["type"] == "ready" and sorted(ready["files"]) == ["a.csv", "b.csv"]
