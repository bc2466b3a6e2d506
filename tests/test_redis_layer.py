"""REDIS_URL: the channel layer on a real redis-server survives idle sockets and delivers.

Channels gives every consumer a channel and keeps a blocking receive on it open for as
long as the socket lives, so the layer is in use even though no code of ours sends on it.
"""

from __future__ import annotations

import asyncio

import pytest
from channels.layers import BaseChannelLayer, ChannelLayerManager
from channels_redis.core import RedisChannelLayer
from django.test import override_settings

from tests.support.live import ChatClient
from tests.support.redis import RedisServer
from tests.test_settings import settings_in

pytestmark = pytest.mark.timeout(90)

# The layer's receive is a BZPOPMIN that waits 5 s on the server (brpop_timeout); redis-py 8
# gave every read a 5 s client timeout by default, which cut that wait short.
BZPOPMIN_WAIT = RedisChannelLayer.brpop_timeout
IDLE_PAST_THE_OLD_TIMEOUT = BZPOPMIN_WAIT + 1.0
# A socket idle through two whole BZPOPMIN waits and into a third: every one of them was
# a read the old timeout cut short, so the first already closed the socket.
IDLE_SOCKET = 2 * BZPOPMIN_WAIT + 1.0


def layer_as_configured(redis_url: str) -> BaseChannelLayer:
    """A channel layer built by Channels from the CHANNEL_LAYERS that settings.py derives
    from ``REDIS_URL``: what one server process gets."""
    config = settings_in({"REDIS_URL": redis_url}, "settings.CHANNEL_LAYERS")
    with override_settings(CHANNEL_LAYERS=config):
        return ChannelLayerManager()["default"]


async def test_layer_sends_and_group_sends_across_processes_after_an_idle_wait(
    redis_server: RedisServer,
) -> None:
    one, two = layer_as_configured(redis_server.url), layer_as_configured(redis_server.url)
    first, second = await one.new_channel(), await two.new_channel()
    await one.group_add("room", first)
    await two.group_add("room", second)
    receiving = [asyncio.create_task(one.receive(first)), asyncio.create_task(two.receive(second))]
    try:
        await asyncio.sleep(IDLE_PAST_THE_OLD_TIMEOUT)
        await one.group_send("room", {"type": "note", "text": "to everyone"})
        got = await asyncio.wait_for(asyncio.gather(*receiving), timeout=5)
        assert got == [{"type": "note", "text": "to everyone"}] * 2

        await two.send(first, {"type": "note", "text": "to one"})
        assert await asyncio.wait_for(one.receive(first), timeout=5) == {
            "type": "note",
            "text": "to one",
        }
    finally:
        for task in receiving:
            task.cancel()
        await asyncio.gather(*receiving, return_exceptions=True)
        await one.flush()
        await two.close_pools()


async def test_idle_socket_stays_open_and_then_runs_a_turn(
    own_server, redis_server: RedisServer, session_id: str
) -> None:
    with own_server(REDIS_URL=redis_server.url) as server:
        chat = await ChatClient.connect(server.ws_url)
        try:
            ready = await chat.init(session_id)
            assert ready["type"] == "ready", ready

            assert await chat.nothing(timeout=IDLE_SOCKET)

            frames = await chat.message(session_id, "are you still there?")
            assert frames[-1]["type"] == "complete"
        finally:
            await chat.close()
