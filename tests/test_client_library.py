"""The browser client library (chat/client/): served by the backend, and its Node tests.

The library's own logic (reconnect, replay, resend, base hashes) is tested in
tests/js/client.test.mjs with Node's test runner; the last test here runs it.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from django.test import AsyncClient

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


@pytest.mark.e2e
def test_the_library_passes_its_node_tests() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (.ci/run installs Debian's nodejs)")
    run = subprocess.run(
        [node, "--test", "--test-reporter=tap", "tests/js/"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "# fail 0" in run.stdout
