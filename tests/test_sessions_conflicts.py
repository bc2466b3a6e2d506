"""Edits made in the editor while Claude changed the same file are reported, not lost."""

from __future__ import annotations

import hashlib

import pytest

from scripted_model.scripts import APP_TSX
from tests.support.live import ChatClient, LiveServer

pytestmark = pytest.mark.timeout(120)

ORIGINAL = "export default function App() {\n  return <h1>Original</h1>;\n}\n"
USER_EDIT = "export default function App() {\n  return <h1>Edited by hand</h1>;\n}\n"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_file_changed_by_both_is_a_conflict_with_both_versions(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    app = backend.data / "workspaces" / session_id / "src" / "App.tsx"
    ready = await chat.init(session_id, files={"src/App.tsx": ORIGINAL})
    claude = await chat.message(session_id, "[script:write_app]")

    frames = await chat.message(
        session_id,
        "[script:echo]",
        files={"src/App.tsx": USER_EDIT},
        baseHashes={"src/App.tsx": ready["hashes"]["src/App.tsx"]},
    )

    assert ready["hashes"]["src/App.tsx"] == sha(ORIGINAL)
    changed = [f for f in claude if f["type"] == "file_changed"]
    assert changed[-1]["hash"] == claude[-1]["hashes"]["src/App.tsx"] == sha(APP_TSX)
    assert frames[-1]["conflicts"] == [
        {"path": "src/App.tsx", "server": APP_TSX, "client": USER_EDIT}
    ]
    assert app.read_text() == APP_TSX


async def test_an_edit_based_on_the_latest_version_is_written(
    chat: ChatClient, backend: LiveServer, session_id: str
) -> None:
    app = backend.data / "workspaces" / session_id / "src" / "App.tsx"
    await chat.init(session_id, files={"src/App.tsx": ORIGINAL})
    claude = await chat.message(session_id, "[script:write_app]")

    frames = await chat.message(
        session_id,
        "[script:echo]",
        files={"src/App.tsx": USER_EDIT},
        baseHashes={"src/App.tsx": claude[-1]["hashes"]["src/App.tsx"]},
    )

    assert "conflicts" not in frames[-1]
    assert app.read_text() == USER_EDIT


async def test_init_reports_conflicts_too(chat: ChatClient, session_id: str) -> None:
    await chat.init(session_id, files={"src/App.tsx": ORIGINAL})
    await chat.message(session_id, "[script:write_app]")

    ready = await chat.init(
        session_id,
        files={"src/App.tsx": USER_EDIT},
        baseHashes={"src/App.tsx": sha(ORIGINAL)},
    )

    assert ready["conflicts"][0]["server"] == APP_TSX
    assert ready["hashes"]["src/App.tsx"] == sha(APP_TSX)


async def test_a_malformed_base_hash_is_invalid_message(chat: ChatClient, session_id: str) -> None:
    error = await chat.init(session_id, files={"a.txt": "x"}, baseHashes={"a.txt": "nope"})
    assert error["type"] == "error" and error["code"] == "INVALID_MESSAGE"


async def test_conflicts_survive_a_turn_that_fails(chat: ChatClient, session_id: str) -> None:
    ready = await chat.init(session_id, files={"src/App.tsx": ORIGINAL})
    await chat.message(session_id, "[script:write_app]")

    frames = await chat.message(
        session_id,
        "[script:overloaded_529]",
        files={"src/App.tsx": USER_EDIT},
        baseHashes={"src/App.tsx": ready["hashes"]["src/App.tsx"]},
    )

    assert frames[-1]["type"] == "error"
    assert frames[-1]["conflicts"][0]["client"] == USER_EDIT
