"""Fencing: once a newer owner claims a session's workspace, an older one cannot write it."""

from __future__ import annotations

import pytest

from workspaces import fencing, storage
from workspaces.models import StoredWorkspace, UndoState
from workspaces.snapshots import FileState

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.database]

OLD, NEW = 1, 2


def listing(data: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    sha = FileState.of(data).sha256
    return {"a.txt": sha}, {sha: data}


def stored(session_id: str) -> str:
    return StoredWorkspace.objects.get(session_id=session_id).current


def test_a_workspace_made_by_an_owner_is_claimed_by_it() -> None:
    with fencing.writing_as(OLD):
        storage.record("f1", *listing(b"one"))

    assert StoredWorkspace.objects.get(session_id="f1").writer == OLD


def test_after_a_newer_claim_the_old_owner_writes_nothing_and_the_new_one_writes() -> None:
    with fencing.writing_as(OLD):
        storage.record("f2", *listing(b"one"))
    before = stored("f2")
    storage.claim("f2", NEW)

    with fencing.writing_as(OLD), pytest.raises(fencing.StaleWriter):
        storage.record("f2", *listing(b"stale"))
    with fencing.writing_as(OLD), pytest.raises(fencing.StaleWriter):
        storage.save_state("f2", "state-1", *listing(b"stale"), keep=5)
    assert stored("f2") == before
    assert not UndoState.objects.filter(workspace__session_id="f2").exists()

    with fencing.writing_as(NEW):
        storage.record("f2", *listing(b"two"))
    assert stored("f2") != before


def test_an_unchanged_listing_is_refused_to_a_stale_owner_too() -> None:
    """A turn that changed no file must not pass for a write the owner may make."""
    with fencing.writing_as(OLD):
        storage.record("f3", *listing(b"one"))
    storage.claim("f3", NEW)

    with fencing.writing_as(OLD), pytest.raises(fencing.StaleWriter):
        storage.record("f3", *listing(b"one"))


def test_writes_made_as_no_owner_are_not_fenced() -> None:
    """The cleanup command and the HTTP API write as nobody."""
    with fencing.writing_as(OLD):
        storage.record("f4", *listing(b"one"))
    storage.claim("f4", NEW)

    storage.record("f4", *listing(b"two"))

    assert stored("f4") == storage.listing_hash(listing(b"two")[0])
