"""The session runner's owner task, driven directly."""

from __future__ import annotations

import asyncio

import pytest
from claude_agent_sdk import ClaudeSDKClient

from chat.runtime import Runtime
from chat.session.event_stream import EventStream
from chat.session.ownership import Lease
from chat.session.runner import SessionRunner

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.database,
    pytest.mark.timeout(30),
]


async def send_nowhere(frame: dict) -> None:
    """A socket that drops every frame."""


async def test_close_is_not_lost_when_a_socket_leaves_at_the_same_moment(
    settings, tmp_path
) -> None:
    settings.WORKSPACE_ROOT = tmp_path
    settings.AGENT_IDLE_SECONDS = 300
    runtime = Runtime.create()
    for _ in range(20):
        runner = SessionRunner(
            "race1",
            runtime.sessions,
            lease=Lease("race1", "test", 1),
            stream=EventStream("race1"),
            agents=runtime.agents,
            make_client=ClaudeSDKClient,
        )
        await asyncio.sleep(0.01)  # the owner task is now waiting for a command

        runner.leave(send_nowhere)  # a command arrives...
        closed = asyncio.ensure_future(runner.close())  # ...as the task is cancelled

        await asyncio.wait_for(closed, timeout=5)
        assert runner.closed
