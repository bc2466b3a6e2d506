"""Workspace files in the database: blobs stored once, manifests written only when new."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from workspaces import storage
from workspaces.models import Blob, Manifest, ManifestEntry
from workspaces.snapshots import FileState

# Transactional like every database test here (the async ORM runs on a thread of its own).
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.database]


def sha(data: bytes) -> str:
    return FileState.of(data).sha256


def statements(queries: CaptureQueriesContext, verb: str, table: str) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(verb) and f'"workspaces_{table}"' in q["sql"]
    ]


def test_a_record_looks_blobs_up_in_one_query_and_writes_only_the_new_one() -> None:
    storage.record("s1", {"a": sha(b"A"), "b": sha(b"B")}, {sha(b"A"): b"A", sha(b"B"): b"B"})

    with CaptureQueriesContext(connection) as queries:
        storage.record("s1", {"a": sha(b"A"), "b": sha(b"B2")}, {sha(b"B2"): b"B2"})

    assert len(statements(queries, "SELECT", "blob")) == 1
    [insert] = statements(queries, "INSERT", "blob")
    assert sorted(bytes(b.content) for b in Blob.objects.all()) == [b"A", b"B", b"B2"]
    assert sha(b"B2") in insert and sha(b"A") not in insert and sha(b"B") not in insert


def test_a_new_listing_is_the_current_one_with_only_its_differences_written() -> None:
    old = {"keep": sha(b"K"), "edit": sha(b"E"), "gone": sha(b"G")}
    storage.record("s1", old, {sha(b"K"): b"K", sha(b"E"): b"E", sha(b"G"): b"G"})
    storage.save_state("s1", "t1", old, {}, keep=5)  # the old manifest stays, as an undo state
    new = {"keep": sha(b"K"), "edit": sha(b"E2"), "added": sha(b"K")}

    with CaptureQueriesContext(connection) as queries:
        storage.record("s1", new, {sha(b"E2"): b"E2"})

    found = storage.current_listing("s1")
    assert found is not None and found[1] == new
    assert storage.state_listing("s1", "t1") == old
    [lookup] = statements(queries, "SELECT", "blob")  # E2 alone: K is held by the old manifest
    assert sha(b"E2") in lookup and sha(b"K") not in lookup
    copied = 'FROM "workspaces_manifestentry"'  # the copy of the old manifest's entries
    [written] = [sql for sql in statements(queries, "INSERT", "manifestentry") if copied not in sql]
    assert "edit" in written and "added" in written and "keep" not in written


def test_identical_content_is_stored_once_across_files_states_and_sessions() -> None:
    same = {sha(b"same"): b"same"}
    storage.record("s1", {"a.txt": sha(b"same"), "copy/a.txt": sha(b"same")}, same)
    storage.record("s2", {"other.txt": sha(b"same")}, same)
    storage.save_state("s1", "t1", {"b.txt": sha(b"same")}, same, keep=5)

    assert Blob.objects.count() == 1
    assert Blob.objects.get().size == 4


def test_the_state_before_a_turn_costs_one_row_when_it_is_the_current_files() -> None:
    listing = {"a": sha(b"A"), "deep/b": sha(b"B")}
    storage.record("s1", listing, {sha(b"A"): b"A", sha(b"B"): b"B"})

    with CaptureQueriesContext(connection) as queries:
        storage.save_state("s1", "t1", listing, {}, keep=5)

    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1 and '"workspaces_undostate"' in inserts[0]
    assert storage.state_ids("s1") == ["t1"]


def test_recording_the_current_files_again_writes_nothing() -> None:
    listing = {"a": sha(b"A")}
    first = storage.record("s1", listing, {sha(b"A"): b"A"})

    with CaptureQueriesContext(connection) as queries:
        again = storage.record("s1", listing, {sha(b"A"): b"A"})

    writes = ("INSERT", "UPDATE", "DELETE")
    assert not [q for q in queries.captured_queries if q["sql"].lstrip().startswith(writes)]
    assert again == first


def test_a_manifest_nothing_refers_to_goes_with_its_entries_and_its_blobs_stay() -> None:
    storage.record("s1", {"a": sha(b"1")}, {sha(b"1"): b"1"})
    storage.record("s1", {"a": sha(b"2")}, {sha(b"2"): b"2"})

    assert Manifest.objects.count() == 1 and ManifestEntry.objects.count() == 1
    assert Blob.objects.count() == 2  # shared by all sessions: only the cleanup removes them


def test_a_generation_counts_every_change_of_the_current_files() -> None:
    one = storage.record("s1", {"a": sha(b"1")}, {sha(b"1"): b"1"})
    two = storage.record("s1", {"a": sha(b"2")}, {sha(b"2"): b"2"})
    back = storage.record("s1", {"a": sha(b"1")}, {sha(b"1"): b"1"})

    assert (one.generation, two.generation, back.generation) == (1, 2, 3)
    assert back.manifest == one.manifest
