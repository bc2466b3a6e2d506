"""Large writes and paths outside the workspace, through daphne, the SDK and the real CLI."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator

import pytest

from scripted_model.server import ScriptedModelServer
from tests.support.live import ChatClient, LiveServer, server_env
from tests.support.scripts import BIG_CSV, BIG_CSV_HEADER

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

APP = "export default function App() {\n  return <h1>Hello</h1>;\n}\n"
# A slash that starts an absolute path in a frame's JSON, where no relative path or
# URL can put one: after a quote or a space (JSON escapes "/" in nothing we send).
ABSOLUTE_PATH = re.compile(r"""(?:^|["'\s(])/[\w.~-]""")


@pytest.fixture(scope="module")
def unbudgeted(
    tmp_path_factory: pytest.TempPathFactory, shared_model: ScriptedModelServer
) -> Iterator[LiveServer]:
    """A backend without a spending limit: the scripted model bills a big Write's input
    as output tokens (5 MiB is about $19 at list prices), which the default $2 stops."""
    data = tmp_path_factory.mktemp("unbudgeted")
    with LiveServer(
        data=data, env=server_env(data, shared_model.url, CLAUDE_MAX_BUDGET_USD="0")
    ) as server:
        yield server


@pytest.fixture
async def writer(unbudgeted: LiveServer) -> AsyncIterator[ChatClient]:
    client = await ChatClient.connect(unbudgeted.ws_url)
    yield client
    await client.close()


async def test_a_2_mib_write_completes_with_the_file(
    writer: ChatClient, unbudgeted: LiveServer, session_id: str
) -> None:
    await writer.init(session_id)

    frames = await writer.message(session_id, "[script:write_2mib]")

    complete = frames[-1]
    assert complete["type"] == "complete", json.dumps(complete)[:1000]
    assert complete["files"] == {"data/big.csv": BIG_CSV}
    on_disk = unbudgeted.data / "workspaces" / session_id / "data" / "big.csv"
    assert on_disk.read_text() == BIG_CSV
    [result] = [f for f in frames if f["type"] == "tool_result"]
    assert result["isError"] is False and result["summary"] == "Wrote data/big.csv"


async def test_an_edit_of_a_2_mib_file_completes(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    await chat.init(session_id, files={"data/big.csv": BIG_CSV})

    frames = await chat.message(session_id, "[script:edit_big_csv]")

    complete = frames[-1]
    assert complete["type"] == "complete", json.dumps(complete)[:1000]
    edited = BIG_CSV.replace(BIG_CSV_HEADER, BIG_CSV_HEADER.upper(), 1)
    assert complete["files"] == {"data/big.csv": edited}
    assert (backend.data / "workspaces" / session_id / "data" / "big.csv").read_text() == edited


async def test_a_write_over_the_file_limit_is_refused_and_the_turn_completes(
    writer: ChatClient, unbudgeted: LiveServer, session_id: str
) -> None:
    await writer.init(session_id)

    frames = await writer.message(session_id, "[script:write_over_file_limit]")

    [result] = [f for f in frames if f["type"] == "tool_result"]
    assert result["isError"] is True
    assert "data/huge.txt" in result["summary"] and "5242881 bytes" in result["summary"]
    assert "limit of 5242880 bytes" in result["summary"]
    complete = frames[-1]
    assert complete["type"] == "complete" and complete["files"] == {}
    assert not (unbudgeted.data / "workspaces" / session_id / "data" / "huge.txt").exists()


async def test_reaching_home_and_missing_files_shows_no_server_path(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    await chat.init(session_id, files={"src/App.tsx": APP})

    frames = await chat.message(session_id, "[script:reach_outside]")

    assert frames[-1]["type"] == "complete"
    starts = [f for f in frames if f["type"] == "tool_start"]
    results = {f["toolUseId"]: f for f in frames if f["type"] == "tool_result"}
    assert [s["tool"] for s in starts] == ["Read", "Glob", "Read", "Glob"]
    read_home, glob_home, read_missing, glob_src = (results[s["toolUseId"]] for s in starts)
    assert read_home["isError"] and "outside the workspace" in read_home["summary"]
    assert glob_home["isError"] and "'~'" in glob_home["summary"]
    assert read_missing["isError"] and "does not exist" in read_missing["summary"]
    assert glob_src["isError"] is False and glob_src["summary"] == "src/App.tsx"
    assert starts[3]["input"]["path"] == "."
    history = await asyncio.to_thread(backend.get_json, f"/api/sessions/{session_id}/messages")
    for shown in (*frames, history):
        text = json.dumps(shown)
        assert str(backend.data) not in text and not ABSOLUTE_PATH.search(text), text[:2000]
    log = [json.loads(line) for line in backend.log_text().splitlines() if line.startswith("{")]
    assert any(
        entry.get("message") == "tool call refused"
        and entry.get("sessionId") == session_id
        and entry.get("tool") == "Glob"
        for entry in log
    )
