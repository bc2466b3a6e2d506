"""A server that lost its copy of a workspace rebuilds it from the database (live server)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from scripted_model.scripts import APP_TSX
from tests.support.live import ChatClient
from workspaces.trees import remove_tree

pytestmark = pytest.mark.timeout(120)

LOGO = bytes(range(256)) * 4  # not UTF-8: must come back byte for byte
FILES = {
    "data/sales.csv": "month,revenue\nJan,10\nFeb,20\n",
    "public/logo.png": {"content": base64.b64encode(LOGO).decode(), "encoding": "base64"},
    "src/App.tsx": "export default function App() { return null; }\n",
}


def files_of(directory: Path) -> dict[str, bytes]:
    return {
        p.relative_to(directory).as_posix(): p.read_bytes()
        for p in directory.rglob("*")
        if p.is_file()
    }


async def test_a_deleted_workspace_comes_back_from_the_database_with_its_undo_states(
    own_server,
) -> None:
    server = own_server()
    with server:
        chat = await ChatClient.connect(server.ws_url)
        first = await chat.init("lost1", files=FILES)
        turn = await chat.message("lost1", "[script:write_app]")
        after_turn = await chat.init("lost1")
        await chat.close()
    assert turn[-1]["type"] == "complete" and turn[-1]["files"] == {"src/App.tsx": APP_TSX}
    workspace = server.data / "workspaces" / "lost1"
    on_disk = files_of(workspace)
    remove_tree(workspace)

    with server:
        chat = await ChatClient.connect(server.ws_url)
        ready = await chat.init("lost1")
        rebuilt = files_of(workspace)
        await chat.send({"type": "undo", "sessionId": "lost1"})
        undone = (await chat.until("undone", "error"))[-1]
        after_undo = await chat.init("lost1")
        await chat.close()

    assert ready["files"] == after_turn["files"] == sorted(FILES)
    assert ready["hashes"] == after_turn["hashes"]
    assert rebuilt == on_disk and rebuilt["public/logo.png"] == LOGO
    assert undone["type"] == "undone"
    assert undone["files"] == {"src/App.tsx": FILES["src/App.tsx"]} and undone["deleted"] == []
    assert after_undo["hashes"] == first["hashes"]
    assert (workspace / "public" / "logo.png").read_bytes() == LOGO
