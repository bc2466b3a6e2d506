"""Large hostile frames are refused early and parsed off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import json

import pytest

from chat import frame_parser as parsing
from chat.frame_parser import FrameParser, FrameRefused
from chat.protocol import FrameLimits, InitFrame, parse_client_frame
from tests.support.live import ChatClient
from workspaces.exceptions import PayloadTooLarge

pytestmark = pytest.mark.timeout(120)

LIMITS = FrameLimits(
    max_message_chars=1000, max_files=500, max_file_bytes=1000, max_total_bytes=3000
)


def many_empty_files(count: int) -> str:
    entries = ",".join(f'"f{n:07d}":""' for n in range(count))
    return '{"type":"init","sessionId":"attacker","files":{' + entries + "}}"


@pytest.mark.parametrize(
    "frame",
    [
        # the count is checked before the schema: the bad lastSeq is never looked at
        {"files": {f"f{n}": "" for n in range(501)}, "lastSeq": "nope"},
        {"baseHashes": {f"f{n}": "0" * 64 for n in range(501)}},
        {"files": {"a.txt": "x" * 1001}, "lastSeq": "nope"},
        {"files": {"a.bin": {"content": "QUJD" * 400, "encoding": "base64"}}, "lastSeq": "no"},
        {"files": {f"f{n}.txt": "x" * 900 for n in range(4)}},
    ],
    ids=["files", "baseHashes", "one-file", "one-base64-file", "total"],
)
def test_sync_limits_are_checked_before_the_schema(frame) -> None:
    with pytest.raises(PayloadTooLarge):
        parse_client_frame(json.dumps({"type": "init", "sessionId": "s", **frame}), LIMITS)


def test_sizes_at_the_limits_are_accepted() -> None:
    files = {"a.txt": "x" * 1000, "b.bin": {"content": "QUJD" * 333, "encoding": "base64"}}
    frame = parse_client_frame(
        json.dumps({"type": "init", "sessionId": "s", "files": files}), LIMITS
    )
    assert isinstance(frame, InitFrame) and len(frame.files or {}) == 2


async def test_a_large_frame_is_parsed_in_the_worker_like_inline(monkeypatch) -> None:
    parser = FrameParser()
    text = json.dumps({"type": "init", "sessionId": "s", "files": {"a.txt": "x" * 900}})
    monkeypatch.setattr(parsing, "INLINE_MAX_CHARS", 100)
    try:
        parsed = await parser.parse(text, LIMITS)
        with pytest.raises(FrameRefused) as refused:
            await parser.parse(many_empty_files(600), LIMITS)
    finally:
        parser.close()

    assert parsed == parse_client_frame(text, LIMITS)
    assert refused.value.code == "PAYLOAD_TOO_LARGE" and refused.value.recoverable
    assert "number of files is 600" in refused.value.message


async def test_the_loop_keeps_running_while_a_huge_frame_is_parsed() -> None:
    parser = FrameParser()
    text = many_empty_files(1_000_000)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    with contextlib.suppress(FrameRefused):  # large enough for the worker: it is up now
        await parser.parse(many_empty_files(10_000), LIMITS)
    try:
        before = ticks
        with pytest.raises(FrameRefused):
            await parser.parse(text, LIMITS)
        during = ticks - before
    finally:
        ticker.cancel()
        parser.close()

    assert during > 0  # inline, the parse would have held the loop from start to end


async def test_a_hostile_frame_is_refused_and_the_socket_goes_on(backend, session_id) -> None:
    """The attack of issue 9, item 6 (2.2 million empty files in one 30 MiB frame), end to
    end; bench/hostile_load.py measures what it costs other clients meanwhile."""
    attacker = await ChatClient.connect(backend.ws_url)

    await attacker.send_raw(many_empty_files(2_200_000))
    refused = await attacker.recv(timeout=90)
    ready = await attacker.init(session_id)
    await attacker.close()

    assert refused["type"] == "error" and refused["code"] == "PAYLOAD_TOO_LARGE"
    assert refused["sessionId"] is None and "number of files" in refused["message"]
    assert ready["type"] == "ready"
