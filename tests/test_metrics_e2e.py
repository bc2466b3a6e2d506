"""Prometheus metrics end to end: daphne with ``METRICS_MODE=token``, the real CLI on
the scripted model, and ``GET /metrics`` scraped over HTTP as Prometheus would.

Each test reads the exposition before and after what it does and checks how far the
counters it should move moved (the server is the module's, shared by the tests).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chat.auth import NOBODY
from chat.owners import server_id
from scripted_model.server import ScriptedModelServer
from tests.support.live import ChatClient, LiveServer, server_env
from tests.support.metrics import METRICS_ENV, METRICS_TOKEN, Scrape, scrape

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SESSION_PREFIX = "metrics-e2e-"
#: Every label the metrics may carry; none can hold a session id, a user or a path.
LABEL_NAMES = {"outcome", "kind", "direction", "type", "reason", "server_id", "version", "le"}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, shared_model: ScriptedModelServer
) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("metrics-e2e")
    env = server_env(data, shared_model.url, **METRICS_ENV)
    with LiveServer(data=data, env=env) as live:
        yield live


@pytest.fixture
async def chat(server: LiveServer) -> Iterator[ChatClient]:
    client = await ChatClient.connect(server.ws_url)
    yield client
    await client.close()


async def test_a_turn_with_a_tool_call_moves_turns_tokens_cost_latency_and_frames(
    server: LiveServer, chat: ChatClient
) -> None:
    session = SESSION_PREFIX + "tool"
    start = Scrape(server)
    await chat.init(session)

    frames = await chat.message(session, "[script:write_app]")

    complete = frames[-1]
    assert complete["type"] == "complete" and not complete["stopped"]
    assert [f["tool"] for f in frames if f["type"] == "tool_start"] == ["Write"]
    assert start.moved("dashboard_ai_turns_started_total") == 1
    assert start.moved("dashboard_ai_turns_ended_total", outcome="complete") == 1
    assert start.moved("dashboard_ai_turn_duration_seconds_count") == 1
    assert start.moved("dashboard_ai_turn_first_text_seconds_count") == 1
    usage = complete["usage"]
    assert start.moved("dashboard_ai_model_tokens_total", kind="input") == usage["inputTokens"]
    assert start.moved("dashboard_ai_model_tokens_total", kind="output") == usage["outputTokens"]
    assert start.moved("dashboard_ai_model_cost_usd_total") == pytest.approx(complete["costUsd"])
    sent = [f["type"] for f in chat.frames]
    for kind in ("ready", "tool_start", "tool_result", "file_changed", "complete"):
        assert start.moved("dashboard_ai_frames_total", direction="out", type=kind) == sent.count(
            kind
        ), kind
    assert start.moved("dashboard_ai_frames_total", direction="in", type="message") == 1
    # A real CLI is live for the session, and its memory is counted.
    _, now = scrape(server)
    assert now[("dashboard_ai_agents_live", ())] >= 1
    assert now[("dashboard_ai_agents_rss_bytes", ())] > 50 * 1024 * 1024
    assert now[("dashboard_ai_sockets_open", ())] >= 1


async def test_a_stopped_turn_counts_as_stopped(server: LiveServer, chat: ChatClient) -> None:
    session = SESSION_PREFIX + "stop"
    await chat.init(session)
    start = Scrape(server)

    await chat.begin(session, "[script:long_text]")
    await chat.send({"type": "stop", "sessionId": session})
    terminal = (await chat.turn())[-1]

    assert terminal["type"] == "complete" and terminal["stopped"] is True
    assert start.moved("dashboard_ai_turns_ended_total", outcome="stopped") == 1
    assert start.moved("dashboard_ai_turns_ended_total", outcome="complete") == 0
    assert start.moved("dashboard_ai_frames_total", direction="in", type="stop") == 1


async def test_a_model_529_counts_its_error_code(server: LiveServer, chat: ChatClient) -> None:
    session = SESSION_PREFIX + "529"
    await chat.init(session)
    start = Scrape(server)

    error = (await chat.message(session, "[script:overloaded_529]"))[-1]

    assert (error["type"], error["code"]) == ("error", "MODEL_UNAVAILABLE")
    assert start.moved("dashboard_ai_turns_ended_total", outcome="MODEL_UNAVAILABLE") == 1
    assert start.moved("dashboard_ai_turns_ended_total", outcome="complete") == 0
    assert not any(start.refusals().values())  # the model's trouble is no refusal


async def test_refused_paths_count_as_gate_refusals(server: LiveServer, chat: ChatClient) -> None:
    session = SESSION_PREFIX + "paths"
    start = Scrape(server)

    refused = await chat.init(session, files={"../outside.tsx": "x"})
    await chat.init(session)
    frames = await chat.message(session, "[script:read_etc_passwd]")

    assert refused["code"] == "INVALID_PATH"
    assert frames[-1]["type"] == "complete"
    assert [f["isError"] for f in frames if f["type"] == "tool_result"] == [True]
    assert {reason: n for reason, n in start.refusals().items() if n} == {
        "path_gate": 1,
        "tool_gate": 1,
    }


async def test_no_label_names_a_session_or_carries_a_secret(
    server: LiveServer, chat: ChatClient
) -> None:
    await chat.init(SESSION_PREFIX + "labels", files={"data/private-name.csv": "a\n1\n"})
    await chat.message(SESSION_PREFIX + "labels", "[script:echo]")

    text, samples = scrape(server)

    label_names = {name for _, labels in samples for name, _ in labels}
    assert label_names <= LABEL_NAMES
    session_key = server_id(NOBODY, SESSION_PREFIX + "labels")  # the id the server uses
    for secret in (SESSION_PREFIX, session_key, "private-name", METRICS_TOKEN, "sk-ant"):
        assert secret not in text


def test_the_metrics_need_the_token(server: LiveServer) -> None:
    assert server.fetch("/metrics")[0] == 401
    assert server.fetch("/metrics", headers={"Authorization": "Bearer wrong-token"})[0] == 401
    assert METRICS_TOKEN not in server.log_text()
