"""The path rules through the real server, SDK and CLI: what the gate refuses, nobody creates.

One rule (``workspaces/paths.py``): a path that is not user work, not in Unicode NFC, or
nested deeper than ``WORKSPACE_MAX_DEPTH`` is refused for clients (``INVALID_PATH``) and
for the agent (the tool gate's deny), so every file in a workspace is listed, reported
and undone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.live import ChatClient, LiveServer
from tests.support.scripts import REFUSED_AGENT_WRITES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

NFC = "caf\u00e9.txt"
NFD = "cafe\u0301.txt"


def files_on_disk(backend: LiveServer, session_id: str) -> set[str]:
    """Every regular file in the session's workspace, as it is on disk."""
    root = backend.data / "workspaces" / session_id
    if not root.exists():
        return set()
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def assert_refused(frame: dict, reason: str) -> None:
    assert frame["type"] == "error"
    assert frame["code"] == "INVALID_PATH"
    assert frame["recoverable"] is True
    assert reason in frame["message"]


@pytest.mark.parametrize(
    "path",
    ["node_modules/x.js", "notes.txt~", "src/.DS_Store", ".git/config", ".wstmp-abc.tmp"],
)
async def test_client_init_with_a_name_that_is_not_user_work_is_refused(
    chat: ChatClient, backend: LiveServer, session_id: str, path: str
) -> None:
    reply = await chat.init(session_id, files={"ok.txt": "ok", path: "x"})
    assert_refused(reply, "not user work")
    assert files_on_disk(backend, session_id) == set()


async def test_agent_writes_of_refused_names_are_refused_and_leave_nothing(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    ready = await chat.init(session_id, files={"a.txt": "a"})
    assert ready["files"] == ["a.txt"]

    frames = await chat.message(session_id, "[script:write_refused_names]")

    started = {f["toolUseId"]: f["input"]["file_path"] for f in frames if f["type"] == "tool_start"}
    errors = {started[f["toolUseId"]]: f["isError"] for f in frames if f["type"] == "tool_result"}
    assert errors == {**dict.fromkeys(REFUSED_AGENT_WRITES, True), "ok.txt": False}
    complete = frames[-1]
    assert complete["type"] == "complete"
    assert complete["files"] == {"ok.txt": "ok\n"}
    assert files_on_disk(backend, session_id) == {"a.txt", "ok.txt"}

    await chat.send({"type": "undo", "sessionId": session_id})
    undone = (await chat.until("undone", "error"))[-1]
    assert undone["type"] == "undone"
    assert files_on_disk(backend, session_id) == {"a.txt"}


async def test_client_init_with_nfc_and_nfd_twins_is_refused(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    reply = await chat.init(session_id, files={NFC: "composed", NFD: "decomposed"})
    assert_refused(reply, "not in Unicode NFC form")
    assert files_on_disk(backend, session_id) == set()


async def test_a_second_init_cannot_add_the_nfd_twin(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    assert (await chat.init(session_id, files={NFC: "composed"}))["files"] == [NFC]
    reply = await chat.init(session_id, files={NFD: "decomposed"})
    assert_refused(reply, "not in Unicode NFC form")
    assert files_on_disk(backend, session_id) == {NFC}


async def test_nfc_twin_of_a_decomposed_name_already_on_disk_is_refused(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    root: Path = backend.data / "workspaces" / session_id
    root.mkdir(parents=True)
    (root / NFD).write_text("written before the NFC rule")
    reply = await chat.init(session_id, files={NFC: "twin"})
    assert_refused(reply, "same name as an existing file once normalised")
    assert files_on_disk(backend, session_id) == {NFD}


async def test_client_path_nested_too_deep_is_refused(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    reply = await chat.init(session_id, files={"d/" * 33 + "deep.txt": "x"})
    assert_refused(reply, "nested deeper than 32 directories")
    assert files_on_disk(backend, session_id) == set()
    ready = await chat.init(session_id, files={"d/" * 32 + "deep.txt": "x"})
    assert ready["files"] == ["d/" * 32 + "deep.txt"]
