"""Prometheus metrics (chat/metrics.py, GET /metrics): they move as scripted turns run,
carry no session id or secret, and /metrics obeys METRICS_MODE.

In-process: the real consumer and HTTP view, the session core on the fake SDK client
(tests/support/fake_sdk.py). The registry is the process's own, shared by every test:
each test compares what it reads after with what it read before.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from chat import metrics
from chat.agent import options
from chat.agent.gate import tool_gate
from chat.consumers import ChatConsumer
from chat.runtime import Runtime, get_runtime, reset_runtime
from dashboard_ai.handshake import BrowserOriginValidator
from tests.support.fake_sdk import FakeSDK, Reply, recorded
from tests.support.live import ROOT
from tests.support.ports import free_port

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.database,
    pytest.mark.timeout(60),
]

API_KEY = "sk-ant-metrics-test-key-0123456789"
METRICS_TOKEN = "metrics-token-0123456789abcdef"
SESSION = "metrics-session-7f3a9c"
#: Every label name the metrics may carry: none of them can hold a session id.
LABEL_NAMES = {"outcome", "kind", "direction", "type", "reason", "server_id", "version", "le"}


@pytest.fixture(autouse=True)
def _settings(settings, tmp_path) -> None:
    settings.WORKSPACE_ROOT = tmp_path / "sessions"
    settings.DATA_DIR = tmp_path / "data"
    settings.ANTHROPIC_API_KEY = API_KEY
    settings.AGENT_PREWARM = False
    settings.STOP_DEADLINE_SECONDS = 0.3
    settings.METRICS_MODE = "off"
    settings.METRICS_TOKEN = ""


@pytest.fixture
def sdk() -> Iterator[FakeSDK]:
    fake = FakeSDK()
    reset_runtime(Runtime.create(make_client=fake))
    yield fake
    reset_runtime()


def value(name: str, **labels: str) -> float:
    """A sample of the registry now (0 when it has none)."""
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


class Moved:
    """How much samples moved since it was made."""

    def __init__(self) -> None:
        self.before = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in metrics.REGISTRY.collect()
            for sample in family.samples
        }

    def __call__(self, name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return value(name, **labels) - self.before.get(key, 0.0)


async def connect(headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(ChatConsumer.as_asgi(), "/ws/chat", headers=headers)
    connected, _ = await socket.connect()
    assert connected
    return socket


async def frames_until(socket: WebsocketCommunicator, *kinds: str) -> list[dict]:
    got: list[dict] = []
    while not got or got[-1]["type"] not in kinds:
        got.append(await socket.receive_json_from(timeout=10))
    return got


async def init(socket: WebsocketCommunicator, **fields) -> dict:
    await socket.send_json_to({"type": "init", "sessionId": SESSION, **fields})
    return await socket.receive_json_from(timeout=10)


async def turn(socket: WebsocketCommunicator, reply: Reply, sdk: FakeSDK) -> list[dict]:
    """Run one message to its terminal frame on the fake SDK's ``reply``."""
    sdk.answer(reply)
    await socket.send_json_to({"type": "message", "sessionId": SESSION, "message": "go"})
    return await frames_until(socket, "complete", "error")


async def begin_long_turn(socket: WebsocketCommunicator, sdk: FakeSDK) -> None:
    """Start a turn that streams, then hangs until stopped; return at its first text."""
    sdk.answer(Reply(recorded("long_text"), hang_after=8))
    await socket.send_json_to({"type": "message", "sessionId": SESSION, "message": "go"})
    await frames_until(socket, "stream")


async def settled() -> None:
    """Until the runner has left its turn (the metrics of the turn's end are counted
    before the terminal frame is published, so this is only for the runner's state)."""
    runner = get_runtime().sessions.live(SESSION)
    if runner is not None:
        await runner.wait_idle()


# --- turns -------------------------------------------------------------------------


async def test_a_turn_with_a_tool_call_counts_its_outcome_tokens_cost_and_latency(sdk) -> None:
    moved = Moved()
    socket = await connect()
    assert (await init(socket))["type"] == "ready"

    frames = await turn(socket, Reply(recorded("write_app")), sdk)
    await settled()

    complete = frames[-1]
    assert complete["type"] == "complete" and not complete["stopped"]
    assert any(frame["type"] == "tool_start" for frame in frames)
    assert moved("dashboard_ai_turns_started_total") == 1
    assert moved("dashboard_ai_turns_ended_total", outcome="complete") == 1
    assert moved("dashboard_ai_turns_ended_total", outcome="stopped") == 0
    usage = complete["usage"]
    assert usage["inputTokens"] > 0 and usage["outputTokens"] > 0
    assert moved("dashboard_ai_model_tokens_total", kind="input") == usage["inputTokens"]
    assert moved("dashboard_ai_model_tokens_total", kind="output") == usage["outputTokens"]
    assert complete["costUsd"] > 0
    assert moved("dashboard_ai_model_cost_usd_total") == pytest.approx(complete["costUsd"])
    assert moved("dashboard_ai_turn_duration_seconds_count") == 1
    assert moved("dashboard_ai_turn_first_text_seconds_count") == 1
    assert moved("dashboard_ai_turn_duration_seconds_bucket", le="120.0") == 1
    # Frames, in by type and out by type.
    assert moved("dashboard_ai_frames_total", direction="in", type="init") == 1
    assert moved("dashboard_ai_frames_total", direction="in", type="message") == 1
    sent = [frame["type"] for frame in [*frames]]
    assert moved("dashboard_ai_frames_total", direction="out", type="tool_start") == sent.count(
        "tool_start"
    )
    assert moved("dashboard_ai_frames_total", direction="out", type="complete") == 1
    assert moved("dashboard_ai_frames_total", direction="out", type="ready") == 1
    # What is live, read when scraped.
    assert value("dashboard_ai_sockets_open") == 1
    assert value("dashboard_ai_sessions_live") == 1
    assert value("dashboard_ai_agents_live") == 1
    await socket.disconnect()
    assert value("dashboard_ai_sockets_open") == 0


async def test_a_stopped_turn_ends_as_stopped(sdk) -> None:
    moved = Moved()
    socket = await connect()
    await init(socket)
    await begin_long_turn(socket, sdk)

    await socket.send_json_to({"type": "stop", "sessionId": SESSION})
    complete = (await frames_until(socket, "complete", "error"))[-1]
    await settled()

    assert complete["type"] == "complete" and complete["stopped"] is True
    assert moved("dashboard_ai_turns_ended_total", outcome="stopped") == 1
    assert moved("dashboard_ai_turns_ended_total", outcome="complete") == 0
    assert moved("dashboard_ai_frames_total", direction="in", type="stop") == 1
    assert moved("dashboard_ai_turn_duration_seconds_count") == 1
    await socket.disconnect()


async def test_a_model_529_ends_with_its_error_code(sdk) -> None:
    moved = Moved()
    socket = await connect()
    await init(socket)

    error = (await turn(socket, Reply(recorded("overloaded_529")), sdk))[-1]
    await settled()

    assert (error["type"], error["code"]) == ("error", "MODEL_UNAVAILABLE")
    assert moved("dashboard_ai_turns_ended_total", outcome="MODEL_UNAVAILABLE") == 1
    assert moved("dashboard_ai_turns_ended_total", outcome="complete") == 0
    assert moved("dashboard_ai_frames_total", direction="out", type="error") == 1
    # A turn that failed is not a refusal.
    assert sum(moved("dashboard_ai_refusals_total", reason=r) for r in metrics.REFUSAL_REASONS) == 0
    await socket.disconnect()


# --- refusals ----------------------------------------------------------------------


async def test_a_refused_client_path_counts_as_path_gate(sdk) -> None:
    moved = Moved()
    socket = await connect()

    error = await init(socket, files={"../outside.txt": "x"})

    assert (error["type"], error["code"]) == ("error", "INVALID_PATH")
    assert moved("dashboard_ai_refusals_total", reason="path_gate") == 1
    assert moved("dashboard_ai_frames_total", direction="in", type="init") == 1
    await socket.disconnect()


async def test_a_tool_call_outside_the_workspace_counts_as_tool_gate(tmp_path) -> None:
    moved = Moved()
    workspace = tmp_path / "ws"
    workspace.mkdir()
    gate = tool_gate(workspace, SESSION).hooks[0]

    denied = await gate({"tool_name": "Read", "tool_input": {"file_path": "/etc/passwd"}}, None, {})
    allowed = await gate({"tool_name": "Read", "tool_input": {"file_path": "a.txt"}}, None, {})

    assert denied["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert allowed == {}
    assert moved("dashboard_ai_refusals_total", reason="tool_gate") == 1


async def test_rate_limit_busy_and_origin_refusals_are_counted(sdk, settings) -> None:
    settings.CORS_ALLOWED_ORIGINS = ["http://good.test"]
    moved = Moved()
    # A turn under way: a second message is refused as busy.
    socket = await connect()
    await init(socket)
    await begin_long_turn(socket, sdk)
    await socket.send_json_to({"type": "message", "sessionId": SESSION, "message": "again"})
    busy = await frames_until(socket, "error")
    assert busy[-1]["code"] == "SESSION_BUSY"
    await socket.send_json_to({"type": "stop", "sessionId": SESSION})
    await frames_until(socket, "complete")
    await settled()

    # Frames faster than the socket's bucket allows.
    settings.CHAT_RATE_PER_SECOND = 0.1
    settings.CHAT_RATE_BURST = 1
    fast = await connect()
    await fast.send_to(text_data="{}")
    await fast.send_to(text_data="{}")
    codes = [(await fast.receive_json_from(timeout=5))["code"] for _ in range(2)]
    assert codes == ["INVALID_MESSAGE", "RATE_LIMITED"]

    # A handshake from an origin not allowed.
    app = BrowserOriginValidator(ChatConsumer.as_asgi(), settings.CORS_ALLOWED_ORIGINS)
    evil = WebsocketCommunicator(app, "/ws/chat", headers=[(b"origin", b"http://evil.test")])
    connected, _ = await evil.connect()
    assert not connected

    assert moved("dashboard_ai_refusals_total", reason="busy") == 1
    assert moved("dashboard_ai_refusals_total", reason="rate_limit") == 1
    assert moved("dashboard_ai_refusals_total", reason="origin") == 1
    assert moved("dashboard_ai_frames_total", direction="in", type="unread") == 2
    await socket.disconnect()
    await fast.disconnect()


# --- replay, memory ----------------------------------------------------------------


async def test_replay_requests_and_truncations_are_counted(sdk, settings) -> None:
    settings.REPLAY_BUFFER_EVENTS = 2
    socket = await connect()
    await init(socket)
    await turn(socket, Reply(recorded("write_app")), sdk)
    await settled()
    moved = Moved()

    last = await init(socket, lastSeq=1)  # its events are gone: truncated
    assert last["replayTruncated"] is True
    await init(socket, lastSeq=last["seq"])  # nothing missed: served whole

    assert moved("dashboard_ai_replay_requests_total") == 2
    assert moved("dashboard_ai_replay_truncated_total") == 1
    await socket.disconnect()


def test_process_rss_is_read_from_proc() -> None:
    assert metrics.process_rss_bytes(os.getpid()) > 1024 * 1024
    assert metrics.process_rss_bytes(2**22 + 12345) == 0  # no such process


async def test_the_live_clis_memory_is_summed_from_their_pidfiles(sdk) -> None:
    socket = await connect()
    await init(socket)
    await turn(socket, Reply(recorded("write_app")), sdk)
    await settled()
    (session_id,) = get_runtime().agents.session_ids()
    pidfile = options.paths_for(session_id).pidfile
    assert value("dashboard_ai_agents_live") == 1
    assert value("dashboard_ai_agents_rss_bytes") == 0  # the fake SDK started no process

    pidfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.write_text(str(os.getpid()))  # this test process stands in for the CLI
    try:
        assert value("dashboard_ai_agents_rss_bytes") == pytest.approx(
            metrics.process_rss_bytes(os.getpid()), rel=0.2
        )
    finally:
        pidfile.unlink()
    await socket.disconnect()


# --- what the labels hold ----------------------------------------------------------


async def test_no_label_carries_a_session_id_or_a_secret(sdk, settings) -> None:
    settings.METRICS_MODE = "token"
    settings.METRICS_TOKEN = METRICS_TOKEN
    settings.CHAT_AUTH_TOKEN = ""
    socket = await connect()
    await init(socket, files={"data/secret-name.csv": "a,b\n"})
    await turn(socket, Reply(recorded("write_app")), sdk)
    await init(socket, files={"../escape": "x"})  # refused: its path is no label either
    await settled()

    text = generate_latest(metrics.REGISTRY).decode()
    families = list(text_string_to_metric_families(text))
    names = {name for f in families for s in f.samples for name in s.labels}
    values = {v for f in families for s in f.samples for v in s.labels.values()}

    assert names <= LABEL_NAMES
    forbidden = (SESSION, API_KEY, METRICS_TOKEN, settings.SECRET_KEY, "secret-name", "escape")
    for secret in forbidden:
        assert secret not in text
        assert not any(secret in v for v in values)
    assert {s.labels["server_id"] for f in families for s in f.samples if "server_id" in s.labels}
    assert value("dashboard_ai_server_info", server_id=settings.SERVER_ID, version=_version()) == 1
    await socket.disconnect()


def _version() -> str:
    import dashboard_ai

    return dashboard_ai.__version__


# --- GET /metrics and METRICS_MODE -------------------------------------------------


async def test_metrics_are_a_404_when_off(settings) -> None:
    settings.METRICS_MODE = "off"
    answer = await AsyncClient().get("/metrics")
    assert answer.status_code == 404
    assert answer.json()["code"] == "NOT_FOUND"


async def test_metrics_need_the_token_in_token_mode(settings) -> None:
    settings.METRICS_MODE = "token"
    settings.METRICS_TOKEN = METRICS_TOKEN
    client = AsyncClient()

    missing = await client.get("/metrics")
    wrong = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}x"})
    basic = await client.get("/metrics", headers={"Authorization": f"Basic {METRICS_TOKEN}"})
    right = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    post = await client.post("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})

    assert [missing.status_code, wrong.status_code, basic.status_code] == [401, 401, 401]
    assert missing["WWW-Authenticate"].startswith("Bearer")
    assert METRICS_TOKEN not in wrong.content.decode()
    assert right.status_code == 200
    assert right["Content-Type"].startswith("text/plain")
    body = right.content.decode()
    for name in (
        "dashboard_ai_turns_started_total",
        "dashboard_ai_turns_ended_total",
        "dashboard_ai_turn_duration_seconds_bucket",
        "dashboard_ai_refusals_total",
        "dashboard_ai_sockets_open",
        "dashboard_ai_agents_rss_bytes",
        "dashboard_ai_server_info",
    ):
        assert name in body
    assert post.status_code == 405


async def test_metrics_are_a_404_on_the_main_port_in_port_mode(settings) -> None:
    settings.METRICS_MODE = "port"
    settings.METRICS_TOKEN = METRICS_TOKEN
    answer = await AsyncClient().get(
        "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    assert answer.status_code == 404


PORT_MODE_SCRIPT = """
import sys, urllib.request
import dashboard_ai.asgi  # starts the metrics server, as daphne's import does
from django.test import Client
port = int(sys.argv[1])
with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
    body = answer.read().decode()
    print("metrics-port", answer.status, "dashboard_ai_turns_started_total" in body)
print("main-port", Client(HTTP_HOST="localhost").get("/metrics").status_code)
"""


def _run(env: dict[str, str], *args: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env={
            "PATH": os.environ["PATH"],
            "DJANGO_SETTINGS_MODULE": "dashboard_ai.settings",
            "AUTO_MIGRATE": "false",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_port_mode_serves_the_metrics_on_their_own_port(tmp_path: Path) -> None:
    port = free_port()
    result = _run(
        {
            "METRICS_MODE": "port",
            "METRICS_PORT": str(port),
            "DATA_DIR": str(tmp_path / "data"),
            "WORKSPACE_ROOT": str(tmp_path / "sessions"),
        },
        str(port),
        code=PORT_MODE_SCRIPT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "metrics-port 200 True" in result.stdout
    assert "main-port 404" in result.stdout


@pytest.mark.parametrize("token", ["", "too-short"])
def test_token_mode_needs_a_metrics_token(token: str) -> None:
    code = "import django; django.setup()"
    result = _run({"METRICS_MODE": "token", "METRICS_TOKEN": token}, code=code)
    assert result.returncode != 0
    assert "METRICS_TOKEN" in result.stderr
    assert (
        _run({"METRICS_MODE": "token", "METRICS_TOKEN": METRICS_TOKEN}, code=code).returncode == 0
    )


def test_metrics_token_is_redacted_from_logs(settings) -> None:
    from dashboard_ai.logging import _secret_values

    settings.METRICS_TOKEN = METRICS_TOKEN
    assert METRICS_TOKEN in _secret_values()


def test_docs_operations_lists_every_metric_and_no_other() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text()
    families = list(metrics.REGISTRY.collect())
    known = {f.name for f in families} | {s.name for f in families for s in f.samples}

    for family in families:
        assert family.name in doc, family.name
    assert set(re.findall(r"dashboard_ai_\w+", doc)) <= known
