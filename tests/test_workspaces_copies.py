"""This server's copy of a workspace and the database: rebuilt, recorded, never stale.

Two ``WORKSPACE_ROOT`` folders on one test database play two servers with disks of
their own.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from workspaces import services, stamps, storage, undo_states
from workspaces.snapshots import FileState
from workspaces.trees import remove_tree

# Transactional: the async ORM runs on a thread of its own, outside a test transaction.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.database]

BINARY = bytes(range(256)) * 3  # not UTF-8


def b64(data: bytes) -> dict[str, str]:
    return {"content": base64.b64encode(data).decode(), "encoding": "base64"}


def tree(directory: Path) -> dict[str, bytes]:
    """Every regular file under ``directory`` by relative path, with its bytes."""
    found = {}
    for parent, _, names in os.walk(directory):
        for name in names:
            path = Path(parent) / name
            found[path.relative_to(directory).as_posix()] = path.read_bytes()
    return found


def sha(data: bytes) -> str:
    return FileState.of(data).sha256


async def current_listing(session_id: str) -> dict[str, str]:
    found = await sync_to_async(storage.current_listing)(session_id)
    assert found is not None
    return found[1]


@pytest.fixture
def server_a(settings, tmp_path) -> Path:
    """The first server's WORKSPACE_ROOT, in use now."""
    settings.WORKSPACE_ROOT = tmp_path / "a"
    return settings.WORKSPACE_ROOT


@pytest.fixture
def use(settings):
    """Switch to another server's WORKSPACE_ROOT (same database)."""

    def switch(root: Path) -> Path:
        settings.WORKSPACE_ROOT = root
        return root

    return switch


async def test_a_missing_copy_is_rebuilt_byte_for_byte(server_a, settings) -> None:
    deep = "/".join(f"d{n}" for n in range(settings.WORKSPACE_MAX_DEPTH)) + "/leaf.bin"
    await services.sync_in(
        session_id="s1",
        files={"logo.png": b64(BINARY), deep: b64(b"\x00\xff"), "empty.txt": "", "é.txt": "é"},
    )
    (server_a / "s1" / "src").mkdir()
    (server_a / "s1" / "src" / "App.tsx").write_bytes(b"written by the agent\n")
    await services.record_current(session_id="s1")
    before = tree(server_a / "s1")

    remove_tree(server_a / "s1")
    await services.ensure_current(session_id="s1")

    assert tree(server_a / "s1") == before
    assert before["logo.png"] == BINARY and before[deep] == b"\x00\xff"
    assert len(before) == 5


async def test_an_outdated_copy_is_rebuilt_from_what_another_server_recorded(
    server_a, use, tmp_path
) -> None:
    await services.sync_in(session_id="s1", files={"a.txt": "1", "gone.txt": "x"})
    server_b = use(tmp_path / "b")
    await services.ensure_current(session_id="s1")
    assert tree(server_b / "s1") == {"a.txt": b"1", "gone.txt": b"x"}
    await services.apply_changes(session_id="s1", write={"a.txt": b"2"}, delete=["gone.txt"])
    await services.sync_in(session_id="s1", files={"new/b.bin": b64(BINARY)})

    use(server_a)
    await services.ensure_current(session_id="s1")

    assert tree(server_a / "s1") == tree(server_b / "s1") == {"a.txt": b"2", "new/b.bin": BINARY}


async def test_a_current_copy_is_left_alone(server_a) -> None:
    await services.sync_in(session_id="s1", files={"a.txt": "1"})
    stamp = stamps.read("s1")
    (server_a / "s1" / "a.txt").chmod(0o400)  # a rewrite would replace the file
    inode = (server_a / "s1" / "a.txt").stat().st_ino

    await services.ensure_current(session_id="s1")

    assert (server_a / "s1" / "a.txt").stat().st_ino == inode
    assert stamps.read("s1") == stamp and stamp is not None and not stamp.writing


async def test_what_a_dead_server_left_written_is_recorded_when_the_session_opens(
    server_a,
) -> None:
    await services.sync_in(session_id="s1", files={"a.txt": "1"})
    await services.ensure_current(session_id="s1", expect_writes=True)  # a turn starts
    (server_a / "s1" / "b.txt").write_bytes(b"the agent wrote this")  # then the server dies

    await services.ensure_current(session_id="s1")

    found = await current_listing("s1")
    assert found == {"a.txt": sha(b"1"), "b.txt": sha(b"the agent wrote this")}
    stamp = stamps.read("s1")
    assert stamp is not None and not stamp.writing


async def test_what_a_dead_server_left_is_dropped_once_another_server_moved_on(
    server_a, use, tmp_path
) -> None:
    await services.sync_in(session_id="s1", files={"a.txt": "1"})
    await services.ensure_current(session_id="s1", expect_writes=True)
    (server_a / "s1" / "partial.txt").write_bytes(b"half a turn")  # A dies here
    server_b = use(tmp_path / "b")
    await services.sync_in(session_id="s1", files={"a.txt": "2"})  # B continues

    use(server_a)
    await services.ensure_current(session_id="s1")

    assert tree(server_a / "s1") == tree(server_b / "s1") == {"a.txt": b"2"}


async def test_a_copy_of_a_session_deleted_elsewhere_is_not_brought_back(
    server_a, use, tmp_path
) -> None:
    await services.sync_in(session_id="s1", files={"secret.txt": "x"})
    use(tmp_path / "b")
    assert await services.delete(session_id="s1")  # deleted on B

    use(server_a)
    await services.ensure_current(session_id="s1")  # a new session of that id, on A

    assert tree(server_a / "s1") == {}
    assert await current_listing("s1") == {}


async def test_a_workspace_from_before_the_database_is_kept_with_its_undo_states(
    server_a,
) -> None:
    (server_a / "s1" / "src").mkdir(parents=True)
    (server_a / "s1" / "src" / "App.tsx").write_bytes(b"v2")
    history = server_a / ".history" / "s1"
    (history / "blobs").mkdir(parents=True)
    (history / "blobs" / sha(b"v1")).write_bytes(b"v1")
    states = [{"id": "t1", "files": {"src/App.tsx": sha(b"v1")}}, {"id": "t2", "files": {}}]
    (history / "states.json").write_text(json.dumps(states))

    await services.ensure_current(session_id="s1")

    assert await current_listing("s1") == {"src/App.tsx": sha(b"v2")}
    assert await undo_states.state_ids(session_id="s1") == ["t1", "t2"]
    assert not history.exists()
    await undo_states.restore_state(session_id="s1", state_id="t1")
    assert tree(server_a / "s1") == {"src/App.tsx": b"v1"}


async def test_undo_restores_on_a_server_that_never_had_the_copy(server_a, use, tmp_path) -> None:
    await services.sync_in(session_id="s1", files={"logo.png": b64(BINARY), "a.txt": "before"})
    before = tree(server_a / "s1")
    files = await services.snapshot(session_id="s1")
    await undo_states.save_state(session_id="s1", state_id="t1", files=files)
    await services.sync_in(session_id="s1", files={"a.txt": "after", "new.txt": "new"})

    server_b = use(tmp_path / "b")
    change = await undo_states.restore_state(session_id="s1", state_id="t1")

    assert tree(server_b / "s1") == before
    # What the undo changed in the session's files, not in B's empty disk.
    assert change.written == {"a.txt": b"before"} and change.deleted == ["new.txt"]
    use(server_a)
    await services.ensure_current(session_id="s1")
    assert tree(server_a / "s1") == before


async def test_files_are_listed_from_the_database_on_a_server_without_a_copy(
    server_a, use, tmp_path
) -> None:
    await services.sync_in(session_id="s1", files={"b.txt": "b", "a/c.txt": "c"})
    server_b = use(tmp_path / "b")

    assert await services.list_files(session_id="s1") == ["a/c.txt", "b.txt"]
    assert not (server_b / "s1").exists()  # listing makes no copy
