"""The browser client library (chat/client/): served by the backend, and its Node tests.

The library's own logic (reconnect, replay, resend, base hashes) is tested in
tests/js/client.test.mjs with Node's test runner; the last test here runs it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from django.test import AsyncClient

from tests.support.live import LiveServer

ROOT = Path(__file__).resolve().parent.parent
CLIENT_DIR = ROOT / "chat" / "client"


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("dashboard-ai-client.js", "text/javascript; charset=utf-8"),
        ("dashboard-ai-client.d.ts", "application/typescript; charset=utf-8"),
    ],
)
async def test_the_file_is_served_as_it_is_on_disk(name: str, media_type: str) -> None:
    response = await AsyncClient().get(f"/client/{name}")
    assert response.status_code == 200
    assert response["Content-Type"] == media_type
    assert response["X-Content-Type-Options"] == "nosniff"  # so the type must be right
    assert response["Cache-Control"] == "no-cache"
    body = (CLIENT_DIR / name).read_bytes()
    assert response.content == body
    assert response["ETag"] == f'"{hashlib.sha256(body).hexdigest()}"'


async def test_an_unchanged_file_is_not_sent_again() -> None:
    client = AsyncClient()
    etag = (await client.get("/client/dashboard-ai-client.js"))["ETag"]
    response = await client.get("/client/dashboard-ai-client.js", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""


async def test_a_page_of_an_allowed_origin_may_load_the_module() -> None:
    # a <script type="module"> from another origin is fetched in CORS mode
    response = await AsyncClient().get(
        "/client/dashboard-ai-client.js", headers={"Origin": "http://localhost:2500"}
    )
    assert response["Access-Control-Allow-Origin"] == "http://localhost:2500"


async def test_other_methods_and_files_are_refused() -> None:
    client = AsyncClient()
    refused = await client.post("/client/dashboard-ai-client.js")
    assert refused.status_code == 405
    assert refused["Allow"] == "GET, HEAD"
    assert refused.json()["code"] == "METHOD_NOT_ALLOWED"
    missing = await client.get("/client/../settings.py")
    assert missing.status_code == 404
    assert (await client.get("/client/client_library.py")).status_code == 404


def node_or_skip() -> str:
    """The ``node`` binary; without it the library's tests cannot run here."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (.ci/run installs Debian's nodejs)")
    return node


@pytest.mark.e2e
def test_the_library_passes_its_node_tests() -> None:
    node = node_or_skip()
    run = subprocess.run(
        [node, "--test", "--test-reporter=tap", "tests/js/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "# fail 0" in run.stdout


@pytest.mark.e2e
def test_a_turn_through_the_library_survives_a_dropped_socket(
    backend: LiveServer, session_id: str
) -> None:
    """The library against the real server: the socket drops after 5 of the turn's 200 text
    chunks, the client reconnects with lastSeq, and the app sees the whole text exactly once."""
    node = node_or_skip()
    probe = [node, "--experimental-websocket", "-e", "process.exit(WebSocket ? 0 : 1)"]
    if subprocess.run(probe, capture_output=True, timeout=30).returncode != 0:
        pytest.skip("this node has no WebSocket (Node 20.10 or later has; Debian 12's is 18)")
    run = subprocess.run(
        [
            node,
            "--experimental-websocket",  # Node 20 has WebSocket behind a flag (Node 22: on)
            "tests/js/live_turn.mjs",
            backend.ws_url,
            session_id,
            "[script:write_then_long_text]",
            "5",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    states = [e["state"] for e in events if e["type"] == "connection"]
    assert states == ["open", "reconnecting", "connecting", "open", "closed"]
    turn = [
        e
        for e in events
        if e["type"] in ("stream", "tool_start", "tool_result", "file_changed", "complete")
    ]
    assert [e["seq"] for e in turn] == list(range(1, len(turn) + 1)), "none missing or repeated"
    assert "".join(e["text"] for e in turn if e["type"] == "stream") == "Still talking. " * 200
    assert [e["path"] for e in turn if e["type"] == "file_changed"] == ["src/App.tsx"]
    assert [e["type"] for e in turn][-1] == "complete"
    assert turn[-1]["stopped"] is False
