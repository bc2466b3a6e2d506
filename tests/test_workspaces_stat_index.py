"""Snapshots read only the files whose status changed (workspaces.stat_index), on a real disk."""

from __future__ import annotations

import asyncio
import os

import pytest

from workspaces import services, stat_index, storage
from workspaces.models import Blob
from workspaces.snapshots import FileState, Snapshot, SnapshotOutOfDate, diff_snapshots

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def root(settings, tmp_path):
    settings.WORKSPACE_ROOT = tmp_path / "sessions"
    return settings.WORKSPACE_ROOT


def unread(snapshot: Snapshot) -> set[str]:
    """The paths whose hash came from the index (their bytes were not read)."""
    return {path for path, state in snapshot.items() if state.content is None}


async def settled_snapshot(session_id: str) -> Snapshot:
    """A snapshot once the file system's clock has moved past the files' last writes, so
    that every file is vouched for by the index (a tick is milliseconds)."""
    for _ in range(200):
        snapshot = await services.snapshot(session_id=session_id)
        if unread(snapshot) == set(snapshot):
            return snapshot
        await asyncio.sleep(0.01)
    raise AssertionError("the index never vouched for every file")


def write_workspace(root, session_id: str, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = root / session_id / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


async def test_an_unchanged_file_is_not_read_again_and_keeps_its_hash(root):
    write_workspace(root, "s", {"a.txt": b"alpha", "src/b.tsx": b"beta"})
    first = await services.snapshot(session_id="s")
    assert unread(first) == set()  # nothing known yet: everything read
    later = await settled_snapshot("s")
    assert later == first  # same paths, hashes and sizes
    assert later["a.txt"] == FileState.of(b"alpha")


async def test_a_rewrite_is_seen_even_with_the_same_size_and_its_old_mtime_put_back(root):
    write_workspace(root, "s", {"a.txt": b"alpha"})
    await settled_snapshot("s")
    path = root / "s" / "a.txt"
    before = path.stat()
    with path.open("r+b") as file:  # in place: same inode, same size
        file.write(b"ALPHA")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = await services.snapshot(session_id="s")
    assert after["a.txt"] == FileState.of(b"ALPHA")
    assert after["a.txt"].content == b"ALPHA"


async def test_a_replaced_file_is_read_again(root):
    write_workspace(root, "s", {"a.txt": b"alpha", "keep.txt": b"keep"})
    before = await settled_snapshot("s")
    tmp = root / "s" / "new.part"
    tmp.write_bytes(b"omega")
    tmp.replace(root / "s" / "a.txt")  # a new inode, as an atomic writer makes
    after = await services.snapshot(session_id="s")
    assert unread(after) == {"keep.txt"}
    diff = await asyncio.to_thread(diff_snapshots, before, after)
    assert diff.changed == {"a.txt": b"omega"} and not diff.created and not diff.deleted


def test_a_hash_taken_in_the_tick_of_the_last_write_is_not_trusted(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    info = path.stat()
    newest = max(info.st_mtime_ns, info.st_ctime_ns)
    racy = stat_index.entry_of(info, "sha", hashed_at_ns=newest)
    assert not racy.settled and stat_index.trusted(racy, info) is None
    settled = stat_index.entry_of(info, "sha", hashed_at_ns=newest + 1)
    assert stat_index.trusted(settled, info) == "sha"
    assert stat_index.trusted(settled, (tmp_path / "f").stat()) == "sha"
    path.write_bytes(b"y")
    assert stat_index.trusted(settled, path.stat()) is None


def test_the_file_system_clock_is_not_behind_a_file_just_written(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    info = path.stat()
    assert stat_index.fs_now_ns(tmp_path) >= max(info.st_mtime_ns, info.st_ctime_ns)
    assert list(tmp_path.iterdir()) == [path]  # the clock's own file is gone


async def test_unread_bytes_are_read_on_demand_and_checked(root):
    write_workspace(root, "s", {"a.txt": b"alpha"})
    snapshot = await settled_snapshot("s")
    assert await asyncio.to_thread(snapshot.content, "a.txt") == b"alpha"
    (root / "s" / "a.txt").write_bytes(b"changed")
    with pytest.raises(SnapshotOutOfDate):
        await asyncio.to_thread(snapshot.content, "a.txt")
    (root / "s" / "a.txt").unlink()
    with pytest.raises(SnapshotOutOfDate):
        await asyncio.to_thread(snapshot.content, "a.txt")


async def test_recording_a_snapshot_stores_the_blobs_it_did_not_read(root):
    write_workspace(root, "fresh", {"a.txt": b"alpha", "b.txt": b"beta"})
    snapshot = await settled_snapshot("fresh")  # no bytes held, and no blob stored yet
    await services.record_current(session_id="fresh", files=snapshot)
    blobs = await asyncio.to_thread(
        lambda: {bytes(b.content) for b in Blob.objects.all()}  # own thread: the ORM is sync
    )
    assert blobs == {b"alpha", b"beta"}
    found = await asyncio.to_thread(storage.current_listing, "fresh")
    assert found is not None
    assert found[1] == {p: s.sha256 for p, s in snapshot.items()}


async def test_a_deleted_workspace_is_forgotten(root):
    await services.sync_in(session_id="s", files={"a.txt": "alpha"})
    await settled_snapshot("s")
    assert stat_index.INDEX.get(str(services.path_for("s")))
    await services.delete(session_id="s")
    assert stat_index.INDEX.get(str(services.path_for("s"))) is None


def test_the_index_keeps_only_the_most_recent_workspaces():
    index: stat_index.Recent[dict[str, stat_index.Entry]] = stat_index.Recent()
    entry = stat_index.Entry((1, 2, 3, 4, 5), "sha", settled=True)
    for number in range(stat_index.WORKSPACES + 1):
        index.put(f"w{number}", {"f": entry})
    assert index.get("w0") is None
    assert index.get(f"w{stat_index.WORKSPACES}") == {"f": entry}


async def test_the_snapshot_before_a_turn_is_the_last_one_recorded_while_nothing_changed(
    root, monkeypatch
):
    await services.sync_in(session_id="s", files={"a.txt": "alpha"})
    await services.ensure_current(session_id="s", expect_writes=True)
    (root / "s" / "b.txt").write_bytes(b"beta")  # the agent's turn
    after = await services.snapshot(session_id="s")
    await services.record_current(session_id="s", files=after)
    walks = []
    real_walk = services._snapshot_blocking
    monkeypatch.setattr(services, "_snapshot_blocking", lambda *a: walks.append(a) or real_walk(*a))

    before = await services.snapshot_for_turn(session_id="s")
    assert before == after and not walks  # not walked
    assert unread(before) == set(before)  # and holds no bytes
    assert await asyncio.to_thread(before.content, "b.txt") == b"beta"

    await services.sync_in(session_id="s", files={"a.txt": "changed"})
    walks.clear()
    before = await services.snapshot_for_turn(session_id="s")
    assert len(walks) == 1  # a change since: walked
    assert before["a.txt"] == FileState.of(b"changed")
