"""The fake SDK client replays recorded CLI streams and hangs, stalls or fails on request."""

from __future__ import annotations

import asyncio
from pathlib import PurePosixPath

import pytest
from claude_agent_sdk import CLIConnectionError, ResultMessage, StreamEvent

from chat.events import TurnEnded, TurnTranslator
from tests.support.fake_sdk import FakeSDK, Reply, recorded


async def connected(sdk: FakeSDK):
    client = sdk("options")
    await client.connect()
    return client


async def collect(client) -> list:
    return [message async for message in client.receive_response()]


def ended(messages: list) -> TurnEnded | None:
    translator = TurnTranslator(workspace=PurePosixPath("/WORKSPACE"))
    outputs = [o for m in messages for o in translator.translate(m)]
    return next((o for o in outputs if isinstance(o, TurnEnded)), None)


async def test_a_reply_replays_the_recorded_turn_through_its_result() -> None:
    sdk = FakeSDK(Reply(recorded("write_app")))
    client = await connected(sdk)

    await client.query("make an app")
    messages = await collect(client)

    assert len(messages) == len(recorded("write_app"))
    assert isinstance(messages[-1], ResultMessage) and not messages[-1].is_error
    assert sdk.queries == ["make an app"] and client.options == "options"


async def test_replies_are_taken_in_order_across_clients() -> None:
    sdk = FakeSDK(Reply(recorded("write_app")), Reply(recorded("overloaded_then_ok")))
    first, second = await connected(sdk), await connected(sdk)

    await first.query("one")
    await collect(first)
    await second.query("two")
    last = (await collect(second))[-1]

    assert last.result == "Answered after two overloaded errors."
    assert sdk.queries == ["one", "two"]


async def test_an_interrupt_during_a_hang_ends_with_the_recorded_aborted_result() -> None:
    sdk = FakeSDK(Reply(recorded("long_text"), hang_after=5))
    client = await connected(sdk)
    await client.query("talk")
    got: list = []

    async def read() -> None:
        async for message in client.receive_response():
            got.append(message)

    reading = asyncio.create_task(read())
    await asyncio.sleep(0.01)
    assert len(got) == 5 and not reading.done()  # hanging
    await client.interrupt()
    await asyncio.wait_for(reading, 1)

    result = ended(got)
    assert result is not None and result.interrupted and result.is_error
    assert sdk.interrupts == 1


async def test_a_disconnect_ends_a_hanging_stream_without_a_result() -> None:
    sdk = FakeSDK(Reply(recorded("long_text"), hang_after=0, ignore_interrupt=True))
    client = await connected(sdk)
    await client.query("talk")
    reading = asyncio.create_task(collect(client))

    await client.interrupt()
    await asyncio.sleep(0.01)
    assert not reading.done()  # the interrupt was ignored
    await client.disconnect()

    assert await asyncio.wait_for(reading, 1) == []


async def test_without_result_the_stream_just_ends() -> None:
    sdk = FakeSDK(Reply(recorded("write_app"), without_result=True))
    client = await connected(sdk)
    await client.query("make an app")

    messages = await collect(client)

    assert messages and ended(messages) is None
    assert isinstance(messages[-1], StreamEvent)


async def test_a_slow_reply_waits_before_each_message() -> None:
    sdk = FakeSDK(Reply(recorded("overloaded_then_ok"), delay=0.002))
    client = await connected(sdk)
    await client.query("slow")
    loop = asyncio.get_running_loop()

    started = loop.time()
    messages = await collect(client)

    assert loop.time() - started >= 0.002 * len(messages)


async def test_connect_fails_while_a_connect_error_is_set() -> None:
    sdk = FakeSDK(connect_error=CLIConnectionError("no CLI"))

    with pytest.raises(CLIConnectionError):
        await sdk().connect()
    sdk.connect_error = None
    await sdk().connect()


async def test_a_query_before_connect_fails_like_the_sdk() -> None:
    with pytest.raises(CLIConnectionError):
        await FakeSDK(Reply([]))().query("hi")


async def test_a_query_with_no_reply_left_fails_loudly() -> None:
    client = await connected(FakeSDK())

    with pytest.raises(AssertionError, match="no reply"):
        await client.query("hi")
