"""Undo states: kept content-addressed, bounded, restored byte for byte."""

from __future__ import annotations

import pytest
from django.db.models import Exists, OuterRef

from workspaces import services, undo_states
from workspaces.models import Blob, ManifestEntry, UndoState

# Transactional: the async ORM runs on a thread of its own, outside a test transaction.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.database]


@pytest.fixture(autouse=True)
def _root(settings, tmp_path):
    settings.WORKSPACE_ROOT = tmp_path
    settings.WORKSPACE_HISTORY_STATES = 3


async def write(files: dict[str, str]) -> None:
    await services.sync_in(session_id="s1", files=files)


async def save(state_id: str) -> None:
    files = await services.snapshot(session_id="s1")
    await undo_states.save_state(session_id="s1", state_id=state_id, files=files)


async def test_restore_brings_back_files_byte_for_byte_and_deletes_new_ones(tmp_path) -> None:
    binary = {"content": "AAEC/w==", "encoding": "base64"}
    await write({"src/App.tsx": "one", "data/a.csv": "x\n", "bin.dat": binary})
    before = await services.snapshot(session_id="s1")
    await save("t1")
    await write({"src/App.tsx": "two", "src/New.tsx": "new"})
    (tmp_path / "s1" / "data" / "a.csv").unlink()

    change = await undo_states.restore_state(session_id="s1", state_id="t1")

    assert await services.snapshot(session_id="s1") == before
    assert (tmp_path / "s1" / "bin.dat").read_bytes() == b"\x00\x01\x02\xff"
    assert change.changed == {"src/App.tsx": b"one"} and change.created == {"data/a.csv": b"x\n"}
    assert change.deleted == ["src/New.tsx"]
    assert await undo_states.state_ids(session_id="s1") == []


async def test_states_are_bounded_and_blobs_stored_once(tmp_path) -> None:
    await write({"big.txt": "same content", "v.txt": "0"})
    for number in range(5):
        await write({"v.txt": str(number)})
        await save(f"t{number}")

    assert await undo_states.state_ids(session_id="s1") == ["t2", "t3", "t4"]
    # The blobs of dropped states stay until the cleanup removes them (see cleanup tests).
    held = {
        bytes(content)
        async for content in Blob.objects.filter(
            Exists(ManifestEntry.objects.filter(blob=OuterRef("pk")))
        ).values_list("content", flat=True)
    }
    assert held == {b"2", b"3", b"4", b"same content"}
    assert await Blob.objects.filter(content=b"same content").acount() == 1
    assert not (tmp_path / ".history").exists()


async def test_restoring_an_older_state_forgets_it_and_the_later_ones() -> None:
    await write({"v.txt": "0"})
    for number in range(3):
        await save(f"t{number}")
        await write({"v.txt": str(number + 1)})

    await undo_states.restore_state(session_id="s1", state_id="t1")

    assert (await services.read_file(session_id="s1", path="v.txt")) == b"1"
    assert await undo_states.state_ids(session_id="s1") == ["t0"]


async def test_history_lives_outside_the_workspace_and_is_deleted_with_it(tmp_path) -> None:
    await write({"a.txt": "a"})
    await save("t1")
    assert await services.list_files(session_id="s1") == ["a.txt"]

    await undo_states.delete_history(session_id="s1")

    assert await undo_states.state_ids(session_id="s1") == []
    assert not await UndoState.objects.aexists()
