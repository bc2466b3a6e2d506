"""The socket's defences on a real server: hosts, token, rates and capacity limits."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.support.live import ROOT, ChatClient, claude_processes, refused_with

pytestmark = pytest.mark.timeout(90)

TOKEN = "s3cret-token-for-tests"


def handshake_status(port: int, host: str) -> int:
    """The HTTP status a raw WebSocket handshake with ``Host: host`` gets."""
    request = (
        "GET /ws/chat HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request.encode())
        return int(sock.recv(1024).split(b" ", 2)[1])


def test_handshake_host_must_be_an_allowed_host(backend) -> None:
    assert handshake_status(backend.port, "evil.example") == 403
    assert handshake_status(backend.port, f"evil.example:{backend.port}") == 403
    assert handshake_status(backend.port, f"localhost:{backend.port}") == 101


async def test_token_is_required_when_configured(own_server) -> None:
    with own_server(CHAT_AUTH_TOKEN=TOKEN) as server:
        missing = await refused_with(server.ws_url)
        wrong = await refused_with(server.ws_url + "?token=nope")
        by_query = await ChatClient.connect(server.ws_url + f"?token={TOKEN}")
        query_ready = await by_query.init("tok1")
        await by_query.close()
        by_protocol = await ChatClient.connect(
            server.ws_url, subprotocols=["dashboard-ai", f"auth.{TOKEN}"]
        )
        protocol_ready = await by_protocol.init("tok2")
        selected = by_protocol.ws.subprotocol
        await by_protocol.close()
        log = server.log_text()

    for frame, close_code in (missing, wrong):
        assert frame["code"] == "UNAUTHORIZED" and frame["recoverable"] is False
        assert close_code == 4401
    assert query_ready["type"] == "ready" and protocol_ready["type"] == "ready"
    assert selected == "dashboard-ai"
    assert TOKEN not in log


async def test_frames_beyond_the_rate_get_rate_limited_and_the_socket_stays(own_server) -> None:
    with own_server(CHAT_RATE_PER_SECOND="1", CHAT_RATE_BURST="5") as server:
        client = await ChatClient.connect(server.ws_url)
        for _ in range(8):
            await client.send({"type": "stop", "sessionId": "rate1"})
        answers = [await client.recv() for _ in range(8)]
        await asyncio.sleep(1.2)
        ready = await client.init("rate1")
        await client.close()

    codes = [a["code"] for a in answers]
    assert codes.count("RATE_LIMITED") == 3 and codes.count("NOT_INITIALIZED") == 5
    assert ready["type"] == "ready"


async def test_sockets_per_client_address_are_capped(own_server) -> None:
    with own_server(MAX_SOCKETS_PER_CLIENT="2") as server:
        first = await ChatClient.connect(server.ws_url)
        second = await ChatClient.connect(server.ws_url)
        frame, close_code = await refused_with(server.ws_url)
        await first.close()
        await asyncio.sleep(0.2)
        third = await ChatClient.connect(server.ws_url)
        ready = await third.init("cap1")
        await second.close()
        await third.close()

    assert frame["code"] == "SERVER_BUSY" and close_code == 4013
    assert ready["type"] == "ready"


async def test_sessions_per_server_are_capped(own_server) -> None:
    with own_server(MAX_SESSIONS="2") as server:
        client = await ChatClient.connect(server.ws_url)
        await client.init("cap-a")
        await client.init("cap-b")
        refused = await client.init("cap-c")
        again = await client.init("cap-a")
        await client.close()

    assert refused["type"] == "error" and refused["code"] == "SERVER_BUSY"
    assert again["type"] == "ready"


async def test_agent_pool_closes_an_idle_cli_to_make_room(own_server) -> None:
    with own_server(MAX_LIVE_AGENTS="1", AGENT_SLOT_WAIT_SECONDS="1") as server:
        client = await ChatClient.connect(server.ws_url)
        await client.init("pool-a")
        await client.init("pool-b")
        first = await client.message("pool-a", "remember plum [script:echo]")
        second = await client.message("pool-b", "hello [script:echo]")
        a_alive_after_b = bool(claude_processes("pool-a"))
        third = await client.message("pool-a", "which fruit? [script:echo]")
        await client.close()

    assert [f[-1]["type"] for f in (first, second, third)] == ["complete"] * 3
    assert not a_alive_after_b
    assert "remember plum" in third[-1]["result"] or "2 user prompts" in third[-1]["result"]


async def busy_pool_of_one(server, busy: str, waiting: str) -> ChatClient:
    """A client with two sessions open, the only agent busy streaming in ``busy``."""
    client = await ChatClient.connect(server.ws_url)
    await client.init(busy)
    await client.init(waiting)
    await client.begin(busy, "[script:long_text]")
    return client


async def test_agent_pool_refuses_when_every_agent_is_busy(own_server) -> None:
    with own_server(MAX_LIVE_AGENTS="1", AGENT_SLOT_WAIT_SECONDS="1") as server:
        client = await busy_pool_of_one(server, "busy-a", "busy-b")
        refused = await client.message("busy-b", "me too [script:echo]")
        await client.send({"type": "stop", "sessionId": "busy-a"})
        await client.close()

    assert refused[-1]["type"] == "error" and refused[-1]["code"] == "SERVER_BUSY"
    assert refused[-1]["recoverable"] is True


def test_check_deploy_is_clean_with_production_settings(tmp_path) -> None:
    env = {
        "PATH": os.environ["PATH"],
        "WORKSPACE_ROOT": str(tmp_path),
        "DEBUG": "false",
        "SECRET_KEY": "a-long-random-production-secret-key-0123456789-abcdefghijklmnop",
        "ALLOWED_HOSTS": "dashboards.example.com",
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
        "SECURE_HSTS_PRELOAD": "true",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


async def test_a_stop_ends_a_turn_waiting_for_an_agent_slot(own_server) -> None:
    with own_server(MAX_LIVE_AGENTS="1", AGENT_SLOT_WAIT_SECONDS="20") as server:
        client = await busy_pool_of_one(server, "wait-a", "wait-b")
        await client.send({"type": "message", "sessionId": "wait-b", "message": "[script:echo]"})
        await asyncio.sleep(0.5)
        started = time.monotonic()
        await client.send({"type": "stop", "sessionId": "wait-b"})
        waiting = await client.until("complete")
        while waiting[-1]["sessionId"] != "wait-b":
            waiting = await client.until("complete")
        took = time.monotonic() - started
        await client.send({"type": "stop", "sessionId": "wait-a"})
        await client.close()

    assert waiting[-1]["stopped"] is True
    assert took < 6  # well inside AGENT_SLOT_WAIT_SECONDS
