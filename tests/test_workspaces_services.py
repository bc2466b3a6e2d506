"""Workspace services on a real temporary disk: sync in, snapshot, read, delete, leases."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from workspaces import files, leases, services
from workspaces.exceptions import (
    InvalidContent,
    InvalidPath,
    InvalidSessionId,
    PayloadTooLarge,
    WorkspaceNotFound,
)
from workspaces.paths import resolve_inside
from workspaces.snapshots import diff_snapshots
from workspaces.trees import remove_tree

# Every change of a workspace is recorded in the database, on the async ORM's own thread
# (outside a test transaction).
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def root(settings, tmp_path):
    """A fresh WORKSPACE_ROOT with small limits: 3 files, 10 bytes each, 25 in all."""
    settings.WORKSPACE_ROOT = tmp_path / "sessions"
    settings.WORKSPACE_MAX_FILES = 3
    settings.WORKSPACE_MAX_FILE_BYTES = 10
    settings.WORKSPACE_MAX_TOTAL_BYTES = 25
    return settings.WORKSPACE_ROOT


def contents(directory):
    """Every entry under ``directory`` (files with content), to compare before and after."""
    if not directory.exists():
        return None
    return {
        p.relative_to(directory).as_posix(): (p.read_bytes() if p.is_file() else None)
        for p in directory.rglob("*")
    }


def test_path_for_is_root_slash_session_id(root):
    assert services.path_for("abc") == root / "abc"


def test_path_for_refuses_invalid_session_id(root):
    with pytest.raises(InvalidSessionId):
        services.path_for("../abc")


# --- sync_in ----------------------------------------------------------------------------


async def test_sync_in_writes_text(root):
    assert await services.sync_in(session_id="s", files={"a.txt": "h\u00e9llo"}) == ["a.txt"]
    assert (root / "s" / "a.txt").read_text(encoding="utf-8") == "h\u00e9llo"


async def test_sync_in_writes_base64(root):
    blob = b"\x89PNG\x00\xff"
    content = {"content": base64.b64encode(blob).decode(), "encoding": "base64"}
    await services.sync_in(session_id="s", files={"img.png": content})
    assert (root / "s" / "img.png").read_bytes() == blob


async def test_sync_in_accepts_explicit_utf8_encoding(root):
    await services.sync_in(session_id="s", files={"a.txt": {"content": "hi", "encoding": "utf-8"}})
    assert (root / "s" / "a.txt").read_text() == "hi"


async def test_sync_in_creates_workspace_and_subdirectories(root):
    await services.sync_in(session_id="s", files={"src/components/App.tsx": "x"})
    assert (root / "s" / "src" / "components" / "App.tsx").read_text() == "x"


async def test_sync_in_with_no_files_creates_the_workspace(root):
    assert await services.sync_in(session_id="s", files={}) == []
    assert (root / "s").is_dir()


async def test_sync_in_returns_written_paths_sorted(root):
    written = await services.sync_in(session_id="s", files={"b": "1", "a/c": "2", "a/b": "3"})
    assert written == ["a/b", "a/c", "b"]


async def test_sync_in_overwrites_existing_file(root):
    await services.sync_in(session_id="s", files={"a.txt": "old"})
    await services.sync_in(session_id="s", files={"a.txt": "new"})
    assert (root / "s" / "a.txt").read_text() == "new"


async def test_sync_in_sets_modes_whatever_the_umask(root):
    previous = os.umask(0o277)
    try:
        await services.sync_in(session_id="s", files={"src/a.txt": "x"})
    finally:
        os.umask(previous)
    for directory in (root, root / "s", root / "s" / "src"):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "s" / "src" / "a.txt").stat().st_mode) == 0o600


async def test_sync_in_leaves_no_temp_files(root):
    await services.sync_in(session_id="s", files={"a": "1", "d/b": "2"})
    assert sorted(p.name for p in (root / "s").rglob("*")) == ["a", "b", "d"]


BAD_BATCHES = {
    "escaping-path": ({"ok.txt": "x", "../evil": "x"}, InvalidPath),
    "absolute-path": ({"ok.txt": "x", "/etc/evil": "x"}, InvalidPath),
    "bad-base64": (
        {"ok.txt": "x", "b.bin": {"content": "!!", "encoding": "base64"}},
        InvalidContent,
    ),
    "unknown-encoding": (
        {"ok.txt": "x", "b": {"content": "x", "encoding": "rot13"}},
        InvalidContent,
    ),
    "content-not-string": ({"ok.txt": "x", "b": {"content": 5}}, InvalidContent),
    "lone-surrogate": ({"ok.txt": "x", "b": "\udc80"}, InvalidContent),
    "too-many-files": ({"a": "1", "b": "2", "c": "3", "d": "4"}, PayloadTooLarge),
    "file-too-large": ({"ok.txt": "x", "big": "x" * 11}, PayloadTooLarge),
    "total-too-large": ({"a": "x" * 10, "b": "x" * 10, "c": "x" * 6}, PayloadTooLarge),
    "file-and-dir-same-name": ({"a": "1", "a/b": "2"}, InvalidPath),
    "under-existing-file": ({"ok.txt": "x", "keep.txt/b": "2"}, InvalidPath),
    "onto-existing-directory": ({"ok.txt": "x", "dir": "2"}, InvalidPath),
    "node-modules": ({"ok.txt": "x", "node_modules/x.js": "2"}, InvalidPath),
    "editor-backup": ({"ok.txt": "x", "notes.txt~": "2"}, InvalidPath),
    "os-litter": ({"ok.txt": "x", "src/.DS_Store": "2"}, InvalidPath),
    "nfc-and-nfd-twins": ({"caf\u00e9.txt": "1", "cafe\u0301.txt": "2"}, InvalidPath),
    "too-deep": ({"ok.txt": "x", "d/" * 33 + "f": "2"}, InvalidPath),
}


@pytest.mark.parametrize(("files", "error"), BAD_BATCHES.values(), ids=BAD_BATCHES.keys())
async def test_bad_batch_writes_nothing(root, files, error):
    await services.sync_in(session_id="s", files={"keep.txt": "kept", "dir/x": "x"})
    before = contents(root / "s")
    with pytest.raises(error):
        await services.sync_in(session_id="s", files=files)
    assert contents(root / "s") == before


async def test_bad_batch_does_not_create_the_workspace(root):
    with pytest.raises(InvalidPath):
        await services.sync_in(session_id="s", files={"ok.txt": "x", "../evil": "x"})
    assert not (root / "s").exists()


async def test_payload_too_large_says_which_limit(root):
    with pytest.raises(PayloadTooLarge) as caught:
        await services.sync_in(session_id="s", files={"a": "x" * 10, "b": "x" * 10, "c": "x" * 6})
    assert (caught.value.limit, caught.value.actual) == (25, 26)
    assert caught.value.code == "PAYLOAD_TOO_LARGE"


async def test_two_paths_to_the_same_file_are_refused(root):
    (root / "s" / "src").mkdir(parents=True)
    (root / "s" / "alias").symlink_to(root / "s" / "src")
    with pytest.raises(InvalidPath, match="same file"):
        await services.sync_in(session_id="s", files={"src/a": "1", "alias/a": "2"})


async def test_failure_while_staging_rolls_back(root, monkeypatch):
    await services.sync_in(session_id="s", files={"keep.txt": "kept"})
    before = contents(root / "s")
    real_write_temp = files.write_temp
    calls = []

    def failing_write_temp(directory, data):
        calls.append(directory)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_write_temp(directory, data)

    monkeypatch.setattr(services, "write_temp", failing_write_temp)
    with pytest.raises(OSError, match="disk full"):
        await services.sync_in(session_id="s", files={"new/a": "1", "new/deeper/b": "2"})
    assert contents(root / "s") == before


async def test_sync_in_refuses_invalid_session_id(root):
    with pytest.raises(InvalidSessionId):
        await services.sync_in(session_id="a/b", files={"a": "x"})
    assert not root.exists()


# --- snapshot and diff -----------------------------------------------------------------


async def test_snapshot_records_hash_size_and_content(root):
    await services.sync_in(session_id="s", files={"a.txt": "abc"})
    state = (await services.snapshot(session_id="s"))["a.txt"]
    assert (state.size, state.content) == (3, b"abc")
    assert state.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


async def test_diff_reports_created_changed_and_deleted_only(root):
    await services.sync_in(session_id="s", files={"same": "1", "edit": "2", "gone": "3"})
    before = await services.snapshot(session_id="s")
    ws = root / "s"
    (ws / "edit").write_text("2b")
    (ws / "gone").unlink()
    (ws / "sub").mkdir()
    (ws / "sub" / "new").write_text("4")
    (ws / "same").write_text("1")  # rewritten with the same content: not a change
    diff = diff_snapshots(before, await services.snapshot(session_id="s"))
    assert diff.created == {"sub/new": b"4"}
    assert diff.changed == {"edit": b"2b"}
    assert diff.deleted == ["gone"]
    assert not diff.is_empty


async def test_snapshot_leaves_out_only_names_the_gate_refuses(root):
    """Left on disk by something that bypassed the gate (our own in-flight temp files, or
    a server from before these names were refused): never reported, as nothing can reach them."""
    ws = root / "s"
    for rel in [
        ".DS_Store", "Thumbs.db", "src/desktop.ini", ".git/config", "src/node_modules/x/i.js",
        "node_modules/y.js", "a.tsx.swp", "a.swo", "a.tsx~", ".#a.tsx", "#a.tsx#",
        ".wstmp-abc123.tmp", "src/App.tsx",
    ]:  # fmt: skip
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text("x")
    assert list(await services.snapshot(session_id="s")) == ["src/App.tsx"]


# Names the gate accepts, some of them close to the ones it refuses.
ACCEPTED = [
    "src/App.tsx", ".gitignore", ".github/workflows/ci.yml", "node_modules.md", "a#b", "~notes",
    "notes~.txt", ".env", "x.swp.txt", "caf\u00e9.txt", "d/" * 31 + "f",
]  # fmt: skip


@given(names=st.lists(st.sampled_from([*ACCEPTED, "node_modules/x/index.js", "notes.txt~",
                                       "src/.DS_Store", "cafe\u0301.txt", "d/" * 33 + "f"]),
                      unique=True, max_size=6))  # fmt: skip
@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_every_file_the_gate_lets_through_is_listed(root, names):
    """The one rule: a file a client or the agent could create is listed (so reported
    and undone); a name the gate refuses is never created."""
    ws = root / "s"
    remove_tree(ws)
    ws.mkdir(parents=True)
    created = set()
    for rel in names:  # as the agent's Write does once the tool gate let it through
        try:
            target = resolve_inside(ws, rel)
        except InvalidPath:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("x")
        created.add(rel)
    assert set(services._list_files_blocking(ws, "s")) == created
    assert set(services._snapshot_blocking(ws, "s")) == created


async def test_listing_does_not_descend_below_the_depth_limit(root, settings):
    settings.WORKSPACE_MAX_DEPTH = 2
    await services.sync_in(session_id="s", files={"a/b/ok": "1"})
    current = root / "s"
    for _ in range(100):  # written around the gate, as by a server before the limit
        current = current / "d"
        current.mkdir()
    (current / "f").write_text("x")
    assert await services.list_files(session_id="s") == ["a/b/ok"]


async def test_sync_of_the_nfc_twin_of_a_file_on_disk_writes_nothing(root):
    await services.sync_in(session_id="s", files={"keep.txt": "kept"})
    (root / "s" / "cafe\u0301.txt").write_text("from before NFC was required")
    before = contents(root / "s")
    with pytest.raises(InvalidPath, match="same name as an existing file once normalised"):
        await services.sync_in(session_id="s", files={"ok.txt": "x", "caf\u00e9.txt": "twin"})
    assert contents(root / "s") == before


async def test_a_second_sync_cannot_add_an_nfd_twin(root):
    await services.sync_in(session_id="s", files={"caf\u00e9.txt": "1"})
    with pytest.raises(InvalidPath, match="not in Unicode NFC form"):
        await services.sync_in(session_id="s", files={"cafe\u0301.txt": "2"})
    assert await services.list_files(session_id="s") == ["caf\u00e9.txt"]


async def test_snapshot_and_listing_skip_symlinks_and_special_files(root, tmp_path):
    await services.sync_in(session_id="s", files={"a.txt": "a"})
    ws = root / "s"
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("secret")
    (ws / "passwd").symlink_to("/etc/passwd")
    (ws / "outdir").symlink_to(tmp_path / "outside")
    (ws / "alias.txt").symlink_to(ws / "a.txt")
    os.mkfifo(ws / "pipe")
    assert list(await services.snapshot(session_id="s")) == ["a.txt"]
    assert await services.list_files(session_id="s") == ["a.txt"]


async def test_snapshot_skips_names_the_gate_would_refuse(root):
    await services.sync_in(session_id="s", files={"ok": "1"})
    (root / "s" / "trailing.").write_text("x")
    (root / "s" / "new\nline").write_text("x")
    assert list(await services.snapshot(session_id="s")) == ["ok"]


async def test_snapshot_of_missing_workspace_is_refused(root):
    with pytest.raises(WorkspaceNotFound) as caught:
        await services.snapshot(session_id="nope")
    assert caught.value.code == "WORKSPACE_NOT_FOUND"


# --- list, read, create, exists, delete ------------------------------------------------


async def test_list_files_is_sorted(root):
    await services.sync_in(session_id="s", files={"b/c": "1", "a": "2", "b/a": "3"})
    assert await services.list_files(session_id="s") == ["a", "b/a", "b/c"]


async def test_list_files_of_missing_workspace_is_refused(root):
    with pytest.raises(WorkspaceNotFound):
        await services.list_files(session_id="nope")


async def test_read_files_returns_contents(root):
    await services.sync_in(session_id="s", files={"a": "1", "d/b": "2"})
    assert await services.read_files(session_id="s", paths=["a", "d/b"]) == {"a": b"1", "d/b": b"2"}
    assert await services.read_file(session_id="s", path="d/b") == b"2"


@pytest.mark.parametrize("path", ["missing", "d", "../s/a", "link/etc/passwd"])
async def test_read_file_refuses_what_is_not_a_file_inside(root, path):
    await services.sync_in(session_id="s", files={"a": "1", "d/b": "2"})
    (root / "s" / "link").symlink_to("/")
    with pytest.raises(InvalidPath):
        await services.read_file(session_id="s", path=path)


async def test_read_file_over_the_limit_is_refused(root):
    await services.create(session_id="s")
    (root / "s" / "big").write_bytes(b"x" * 11)
    with pytest.raises(PayloadTooLarge):
        await services.read_file(session_id="s", path="big")


async def test_create_is_idempotent_and_private(root):
    assert await services.create(session_id="s") == root / "s"
    assert await services.create(session_id="s") == root / "s"
    assert stat.S_IMODE((root / "s").stat().st_mode) == 0o700


async def test_exists_and_delete(root):
    assert not await services.exists(session_id="s")
    await services.sync_in(session_id="s", files={"d/a": "1"})
    assert await services.exists(session_id="s")
    assert await services.delete(session_id="s") is True
    assert not (root / "s").exists()
    assert await services.delete(session_id="s") is False


async def test_delete_does_not_follow_symlinks_out(root, tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep").write_text("x")
    await services.create(session_id="s")
    (root / "s" / "out").symlink_to(tmp_path / "outside")
    assert await services.delete(session_id="s")
    assert (tmp_path / "outside" / "keep").read_text() == "x"


# --- leases ----------------------------------------------------------------------------


def dead_pid():
    """The PID of a process that has exited."""
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


async def test_lease_is_held_until_released(root):
    assert not leases.is_leased(session_id="s")
    await leases.acquire_lease(session_id="s")
    assert leases.is_leased(session_id="s")
    assert (root / ".leases" / "s").read_text() == str(os.getpid())
    await leases.release_lease(session_id="s")
    assert not leases.is_leased(session_id="s")
    assert not (root / ".leases" / "s").exists()


async def test_lease_of_dead_process_is_stale(root):
    (root / ".leases").mkdir(parents=True)
    (root / ".leases" / "s").write_text(str(dead_pid()))
    assert not leases.is_leased(session_id="s")


@pytest.mark.parametrize("text", ["", "garbage", "0", "-1"])
async def test_unreadable_lease_is_ignored(root, text):
    (root / ".leases").mkdir(parents=True)
    (root / ".leases" / "s").write_text(text)
    assert not leases.is_leased(session_id="s")


async def test_release_keeps_another_process_lease(root):
    (root / ".leases").mkdir(parents=True)
    (root / ".leases" / "s").write_text("1")  # PID 1 is always alive
    await leases.release_lease(session_id="s")
    assert leases.is_leased(session_id="s")


async def test_lease_refuses_invalid_session_id(root):
    with pytest.raises(InvalidSessionId):
        await leases.acquire_lease(session_id="../x")
    with pytest.raises(InvalidSessionId):
        leases.is_leased(session_id=".leases")
