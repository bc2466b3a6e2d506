"""``manage.py cleanup_workspaces``: old unleased workspaces go, everything else stays."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command

from tests.support.deep_trees import deep_tree
from workspaces import cleanup as workspace_cleanup
from workspaces import leases, services, stamps, storage, undo_states
from workspaces.management.commands import cleanup_workspaces as cleanup_command
from workspaces.models import Blob
from workspaces.snapshots import FileState

# The command removes unreferenced blobs from the database; the services record on the
# async ORM's own thread (outside a test transaction).
pytestmark = pytest.mark.django_db(transaction=True)

HOUR = 3600
NO_SESSIONS = "expired 0 session(s) unused for 30 days\n"
NO_BLOBS = "removed 0 unreferenced blob(s) from the database (0 bytes)\n"


@pytest.fixture
def root(settings, tmp_path):
    settings.WORKSPACE_ROOT = tmp_path / "sessions"
    settings.WORKSPACE_CLEANUP_HOURS = 24.0
    settings.SESSION_EXPIRY_DAYS = 30.0
    settings.WORKSPACE_ROOT.mkdir()
    return settings.WORKSPACE_ROOT


def make_workspace(root, session_id, *, age_hours, files):
    """A workspace whose every entry (and itself) was last modified ``age_hours`` ago."""
    ws = root / session_id
    for rel, content in files.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text(content)
    ws.mkdir(exist_ok=True)
    stamp = time.time() - age_hours * HOUR
    for path in [ws, *ws.rglob("*")]:
        os.utime(path, (stamp, stamp))
    return ws


def cleanup(*args, stderr=None):
    out = StringIO()
    call_command("cleanup_workspaces", *args, stdout=out, stderr=stderr or StringIO())
    return out.getvalue()


def test_old_workspace_is_removed_and_fresh_one_kept(root):
    old = make_workspace(root, "old", age_hours=48, files={"a.txt": "12345", "d/b": "123"})
    fresh = make_workspace(root, "fresh", age_hours=1, files={"a.txt": "x"})
    output = cleanup()
    assert not old.exists()
    assert fresh.exists()
    assert "removed old (8 bytes" in output
    assert "fresh" not in output
    assert output.endswith("freed 8 bytes\n" + NO_BLOBS)


def test_a_long_run_says_how_far_it_got(root, monkeypatch):
    for number in range(3):
        make_workspace(root, f"w{number}", age_hours=1, files={"a.txt": "x"})
    monkeypatch.setattr(cleanup_command, "PROGRESS_SECONDS", 0.0)  # every step is "long"
    progress = [line for line in cleanup().splitlines() if "copies inspected" in line]
    assert progress == ["copies inspected: 1 of 3", "copies inspected: 2 of 3"]
    monkeypatch.setattr(cleanup_command, "PROGRESS_SECONDS", 3600.0)
    assert "inspected" not in cleanup()  # a short run prints no progress


def test_newest_file_decides_not_the_oldest(root):
    ws = make_workspace(root, "mixed", age_hours=48, files={"old.txt": "x", "src/new.txt": "y"})
    recent = time.time() - HOUR
    os.utime(ws / "src" / "new.txt", (recent, recent))
    cleanup()
    assert ws.exists()


def test_older_than_overrides_the_setting(root):
    ws = make_workspace(root, "s", age_hours=3, files={"a": "x"})
    cleanup("--older-than", "4")
    assert ws.exists()
    cleanup("--older-than", "2")
    assert not ws.exists()


def test_leased_workspace_is_skipped(root):
    ws = make_workspace(root, "busy", age_hours=48, files={"a": "x"})
    asyncio.run(leases.acquire_lease(session_id="busy"))
    output = cleanup()
    assert ws.exists()
    assert output == NO_SESSIONS + "freed 0 bytes\n" + NO_BLOBS


def test_stale_lease_does_not_protect_and_is_removed(root):
    ws = make_workspace(root, "orphan", age_hours=48, files={"a": "x"})
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    (root / ".leases").mkdir()
    (root / ".leases" / "orphan").write_text(str(finished.pid))
    cleanup()
    assert not ws.exists()
    assert not (root / ".leases" / "orphan").exists()


def test_dry_run_removes_nothing(root):
    ws = make_workspace(root, "old", age_hours=48, files={"a.txt": "1234"})
    output = cleanup("--dry-run")
    assert ws.exists()
    assert "would remove old (4 bytes" in output
    assert output.endswith(
        "would free 4 bytes\nwould remove 0 unreferenced blob(s) from the database (0 bytes)\n"
    )


def test_entries_that_are_not_workspaces_are_left_alone(root, tmp_path):
    make_workspace(root, "bad name!", age_hours=48, files={"a": "x"})
    (root / "stray-file").write_text("x")
    (tmp_path / "elsewhere").mkdir()
    (root / "linked").symlink_to(tmp_path / "elsewhere")
    stamp = time.time() - 48 * HOUR
    os.utime(root / "stray-file", (stamp, stamp))
    assert cleanup() == NO_SESSIONS + "freed 0 bytes\n" + NO_BLOBS
    assert sorted(p.name for p in root.iterdir()) == ["bad name!", "linked", "stray-file"]


def test_missing_root_is_nothing_to_do(settings, tmp_path):
    settings.WORKSPACE_ROOT = tmp_path / "missing"
    assert cleanup() == NO_SESSIONS + "freed 0 bytes\n" + NO_BLOBS


@pytest.mark.parametrize("hours", ["-1", "nan"])
def test_bad_hours_is_a_command_error(root, hours):
    with pytest.raises(CommandError, match="--older-than"):
        cleanup("--older-than", hours)


# --- One bad workspace never stops the others ----------------------------------------


def test_a_tree_deeper_than_the_recursion_limit_is_removed_with_the_others(root):
    first = make_workspace(root, "a", age_hours=48, files={"a.txt": "1"})
    last = make_workspace(root, "c", age_hours=48, files={"c.txt": "1"})
    with deep_tree(root / "b") as deep:  # one file 2,000 directories down
        output = cleanup("--older-than", "0")

        assert not first.exists() and not deep.exists() and not last.exists()
    assert "removed b (4 bytes" in output
    assert output.endswith("freed 6 bytes\n" + NO_BLOBS)


def test_a_workspace_that_cannot_be_removed_is_reported_and_the_others_removed(root, monkeypatch):
    workspaces = [make_workspace(root, s, age_hours=48, files={"f": "x"}) for s in "abc"]
    real_remove = workspace_cleanup.remove_tree

    def remove_except_b(path):
        if path == workspaces[1]:
            raise PermissionError(1, "Operation not permitted", "f")
        return real_remove(path)

    monkeypatch.setattr(workspace_cleanup, "remove_tree", remove_except_b)
    errors = StringIO()

    with pytest.raises(CommandError, match="could not remove 1 workspace: b$"):
        cleanup(stderr=errors)

    assert [ws.exists() for ws in workspaces] == [False, True, False]
    assert errors.getvalue() == (
        "could not remove b: PermissionError: [Errno 1] Operation not permitted: 'f'\n"
    )
    assert "Traceback" not in errors.getvalue()


# --- with the database ------------------------------------------------------------------


def sha(data: bytes) -> str:
    return FileState.of(data).sha256


@pytest.mark.database
def test_blobs_no_manifest_holds_are_removed_and_the_others_kept(root) -> None:
    storage.record("s1", {"a": sha(b"old")}, {sha(b"old"): b"old"})
    storage.save_state("s1", "t1", {"a": sha(b"undo")}, {sha(b"undo"): b"undo"}, keep=5)
    storage.record("s1", {"a": sha(b"new")}, {sha(b"new"): b"new"})

    dry = cleanup("--dry-run")
    assert dry.endswith("would remove 1 unreferenced blob(s) from the database (3 bytes)\n")
    assert Blob.objects.count() == 3

    real = cleanup()

    assert real.endswith("removed 1 unreferenced blob(s) from the database (3 bytes)\n")
    assert sorted(bytes(blob.content) for blob in Blob.objects.all()) == [b"new", b"undo"]
    assert cleanup() == NO_SESSIONS + "freed 0 bytes\n" + NO_BLOBS


@pytest.mark.database
async def test_an_old_copy_goes_and_comes_back_from_the_database(root) -> None:
    await services.sync_in(session_id="old", files={"a.txt": "kept", "d/b.txt": "too"})
    files = await services.snapshot(session_id="old")
    await undo_states.save_state(session_id="old", state_id="t1", files=files)
    make_workspace(root, "old", age_hours=48, files={})

    output = await sync_to_async(cleanup)()

    assert "removed old (7 bytes" in output
    assert not (root / "old").exists() and stamps.read("old") is None
    await services.ensure_current(session_id="old")
    assert (root / "old" / "a.txt").read_text() == "kept"
    assert (root / "old" / "d" / "b.txt").read_text() == "too"
    assert await undo_states.state_ids(session_id="old") == ["t1"]
