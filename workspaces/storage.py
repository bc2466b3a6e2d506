"""Blobs, manifests and undo states in the database (blocking: the ORM's thread, or a command).

A listing is what a manifest holds: relative path to the SHA-256 of the file's bytes.
Every write is one transaction that writes only what is new: the blobs whose hashes
the database lacks (looked up in one query per :data:`CHUNK` hashes, inserted with
``ignore_conflicts`` so that two sessions storing the same bytes at once both
succeed), and a manifest with its entries only when the workspace has no manifest of
that listing yet. Returning to a listing the workspace already holds (an undo, a turn
that changed nothing) writes no blob and no entry.

A manifest nothing refers to any more (not the current one, no undo state) is
removed with its entries by the write that let go of it. Blobs are shared by every
session, so they are only removed by :func:`remove_unreferenced_blobs` (the cleanup
command). That one may race a write that found a blob present and refers to it: the
foreign key makes one of the two transactions fail, and a write is then run again
(:data:`ATTEMPTS`), finding the blob gone and storing it anew.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import ParamSpec, TypeVar

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, QuerySet, Sum

from workspaces import fencing
from workspaces.models import Blob, Manifest, ManifestEntry, StoredWorkspace, UndoState

CHUNK = 500  # hashes per ``IN (...)``: below every database's bound on query parameters
ATTEMPTS = 3

Listing = dict[str, str]  # relative path -> SHA-256 of the file's bytes

_P = ParamSpec("_P")
_R = TypeVar("_R")


@dataclass(frozen=True, slots=True)
class Current:
    """Which stored state a workspace is in: what a copy on disk is stamped with."""

    workspace: int  # the StoredWorkspace row, new if the session was deleted and made again
    generation: int
    manifest: str  # the SHA-256 of the current listing

    @classmethod
    def of(cls, workspace: StoredWorkspace) -> Current:
        """The state ``workspace`` is in."""
        return cls(workspace.pk, workspace.generation, workspace.current)


def listing_hash(listing: Mapping[str, str]) -> str:
    """The SHA-256 naming ``listing``: of its sorted ``path NUL sha256 LF`` lines.

    Unambiguous: the path gate refuses NUL and line breaks in a path.
    """
    digest = hashlib.sha256()
    for path in sorted(listing):
        digest.update(f"{path}\0{listing[path]}\n".encode())
    return digest.hexdigest()


def _chunks(items: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _retried(write: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``write`` in a transaction, again if a concurrent cleanup or writer beat it."""

    @wraps(write)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                with transaction.atomic():
                    return write(*args, **kwargs)
            except IntegrityError:
                if attempt == ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    return run


# --- Writing ----------------------------------------------------------------------------


def _store_blobs(hashes: Iterable[str], contents: Mapping[str, bytes]) -> None:
    """Insert the blobs of ``hashes`` the database lacks, from ``contents``."""
    wanted = set(hashes)
    present: set[str] = set()
    for batch in _chunks(sorted(wanted)):
        present.update(Blob.objects.filter(pk__in=batch).values_list("pk", flat=True))
    missing = sorted(wanted - present)
    unknown = [sha for sha in missing if sha not in contents]
    if unknown:
        raise LookupError(f"no content for {len(unknown)} blob(s) the database lacks")
    Blob.objects.bulk_create(
        [Blob(sha256=sha, content=contents[sha], size=len(contents[sha])) for sha in missing],
        ignore_conflicts=True,
    )


def _manifest_id(
    workspace: StoredWorkspace, listing: Mapping[str, str], contents: Mapping[str, bytes]
) -> int:
    """The workspace's manifest of ``listing``, stored with its new blobs if missing.

    A new manifest is made from the current one where there is one (a turn changes a
    few files of many): its entries are copied inside the database and only the paths
    that differ are written, and only blobs the current manifest does not hold are
    looked up (those it holds exist: the foreign key says so).
    """
    sha = listing_hash(listing)
    found = Manifest.objects.filter(workspace=workspace, sha256=sha).values_list("pk", flat=True)
    existing = found.first()
    if existing is not None:
        return existing
    base_id = (
        Manifest.objects.filter(workspace=workspace, sha256=workspace.current)
        .values_list("pk", flat=True)
        .first()
    )
    base: Listing = {} if base_id is None else _entries(base_id)
    written = {path: blob for path, blob in listing.items() if base.get(path) != blob}
    _store_blobs(set(written.values()) - set(base.values()), contents)
    manifest = Manifest.objects.create(workspace=workspace, sha256=sha)
    if base_id is not None:
        _copy_entries(base_id, manifest.pk)
        replaced = [path for path in base if path in written or path not in listing]
        for batch in _chunks(replaced):
            ManifestEntry.objects.filter(manifest=manifest, path__in=batch).delete()
    entries = [ManifestEntry(manifest=manifest, path=p, blob_id=b) for p, b in written.items()]
    ManifestEntry.objects.bulk_create(entries, batch_size=CHUNK)
    return manifest.pk


def _entries(manifest_id: int) -> Listing:
    return dict(
        ManifestEntry.objects.filter(manifest_id=manifest_id).values_list("path", "blob_id")
    )


def _copy_entries(source: int, target: int) -> None:
    """Give manifest ``target`` every entry of manifest ``source``, in one statement
    (the ORM has no INSERT ... SELECT, and building the rows in Python was most of a
    turn's recording)."""
    table = connection.ops.quote_name(ManifestEntry._meta.db_table)
    manifest, path, blob = (  # no db_column is set: a field's column is its attribute name
        connection.ops.quote_name(field.get_attname())
        for field in (
            ManifestEntry.manifest.field,
            ManifestEntry.path.field,
            ManifestEntry.blob.field,
        )
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} ({manifest}, {path}, {blob}) "  # noqa: S608 (names, not input)
            f"SELECT %s, {path}, {blob} FROM {table} WHERE {manifest} = %s",
            [target, source],
        )


def _release_manifests(workspace: StoredWorkspace) -> None:
    """Remove the workspace's manifests that are neither current nor an undo state."""
    referenced = UndoState.objects.filter(manifest=OuterRef("pk"))
    Manifest.objects.filter(workspace=workspace).exclude(sha256=workspace.current).exclude(
        Exists(referenced)
    ).delete()


def _locked_workspace(session_id: str) -> StoredWorkspace | None:
    """The session's row, locked for this transaction; :class:`StaleWriter` when the
    current task writes as an owner the workspace is no longer claimed by."""
    workspace = StoredWorkspace.objects.select_for_update().filter(session_id=session_id).first()
    token = fencing.writer()
    if workspace is not None and token is not None and workspace.writer != token:
        raise fencing.StaleWriter(session_id)
    return workspace


def _new_workspace(session_id: str, listing: Mapping[str, str]) -> StoredWorkspace:
    return StoredWorkspace.objects.create(
        session_id=session_id,
        current=listing_hash(listing),
        generation=1,
        writer=fencing.writer() or 0,
    )


@_retried
def claim(session_id: str, token: int) -> None:
    """The owner with fencing token ``token`` takes the session's workspace: from now
    on writes made as another token are refused (see :mod:`workspaces.fencing`)."""
    StoredWorkspace.objects.filter(session_id=session_id).update(writer=token)


@_retried
def record(session_id: str, listing: Mapping[str, str], contents: Mapping[str, bytes]) -> Current:
    """Make ``listing`` the session's current files; ``contents`` has the bytes of new blobs.

    Nothing is written when it already is the current listing. The first record of a
    session creates its row.
    """
    sha = listing_hash(listing)
    workspace = _locked_workspace(session_id)
    if workspace is not None and workspace.current == sha:
        return Current.of(workspace)
    if workspace is None:
        workspace = _new_workspace(session_id, listing)
        _manifest_id(workspace, listing, contents)
        return Current.of(workspace)
    _manifest_id(workspace, listing, contents)
    workspace.current = sha
    workspace.generation += 1
    workspace.save(update_fields=["current", "generation"])
    _release_manifests(workspace)
    return Current.of(workspace)


def current(session_id: str) -> Current | None:
    """The state the session's workspace is in, or ``None`` if the database has none."""
    row = (
        StoredWorkspace.objects.filter(session_id=session_id)
        .values_list("pk", "generation", "current")
        .first()
    )
    return None if row is None else Current(*row)


def _listing(workspace_id: int, manifest: str) -> Listing:
    found = Manifest.objects.filter(workspace_id=workspace_id, sha256=manifest).first()
    if found is None:
        raise LookupError(f"manifest {manifest} of workspace {workspace_id} is not stored")
    return _entries(found.pk)


@transaction.atomic
def current_listing(session_id: str) -> tuple[Current, Listing] | None:
    """The state the session's workspace is in and its current files, read together."""
    state = current(session_id)
    if state is None:
        return None
    return state, _listing(state.workspace, state.manifest)


def current_sizes(session_ids: Collection[str]) -> dict[str, tuple[int, int]]:
    """Files and bytes of each session's current files, for those the database holds."""
    rows = (
        ManifestEntry.objects.filter(
            manifest__workspace__session_id__in=list(session_ids),
            manifest__sha256=F("manifest__workspace__current"),
        )
        .values("manifest__workspace__session_id")
        .annotate(files=Count("pk"), bytes=Sum("blob__size"))
    )
    return {
        row["manifest__workspace__session_id"]: (row["files"], row["bytes"] or 0) for row in rows
    }


def blob_contents(hashes: Iterable[str]) -> dict[str, bytes]:
    """The bytes of each blob of ``hashes``; :class:`LookupError` if one is not stored."""
    wanted = set(hashes)
    found: dict[str, bytes] = {}
    for batch in _chunks(sorted(wanted)):
        rows = Blob.objects.filter(pk__in=batch).values_list("pk", "content")
        found.update((sha, bytes(content)) for sha, content in rows)
    if len(found) != len(wanted):
        raise LookupError(f"{len(wanted) - len(found)} blob(s) are not stored")
    return found


@_retried
def delete_workspace(session_id: str) -> bool:
    """Forget the session's files and undo states (blobs stay for the cleanup); whether any."""
    deleted, _ = StoredWorkspace.objects.filter(session_id=session_id).delete()
    return deleted > 0


# --- Undo states ------------------------------------------------------------------------


@_retried
def save_state(
    session_id: str,
    state_id: str,
    listing: Mapping[str, str],
    contents: Mapping[str, bytes],
    keep: int,
) -> None:
    """Keep ``listing`` as the newest undo state ``state_id``; at most ``keep`` states stay.

    A workspace the database does not know yet is recorded with ``listing`` current.
    """
    workspace = _locked_workspace(session_id) or _new_workspace(session_id, listing)
    manifest = _manifest_id(workspace, listing, contents)
    UndoState.objects.filter(workspace=workspace, state_id=state_id).delete()
    UndoState.objects.create(workspace=workspace, state_id=state_id, manifest_id=manifest)
    newest_first = UndoState.objects.filter(workspace=workspace).order_by("-pk")
    stale = list(newest_first.values_list("pk", flat=True)[keep:])
    if stale:
        UndoState.objects.filter(pk__in=stale).delete()
        _release_manifests(workspace)


def state_ids(session_id: str) -> list[str]:
    """The ids of the session's undo states, oldest first."""
    states = UndoState.objects.filter(workspace__session_id=session_id).order_by("pk")
    return list(states.values_list("state_id", flat=True))


def state_listing(session_id: str, state_id: str) -> Listing:
    """The files of undo state ``state_id``; :class:`LookupError` if it is not kept."""
    state = (
        UndoState.objects.filter(workspace__session_id=session_id, state_id=state_id)
        .select_related("manifest")
        .first()
    )
    if state is None:
        raise LookupError(f"no undo state {state_id!r} in session {session_id!r}")
    entries = ManifestEntry.objects.filter(manifest=state.manifest)
    return dict(entries.values_list("path", "blob_id"))


@_retried
def forget_states(session_id: str, *, from_state: str | None = None) -> None:
    """Forget undo state ``from_state`` and every later one (``None``: all of them)."""
    workspace = _locked_workspace(session_id)
    if workspace is None:
        return
    states = UndoState.objects.filter(workspace=workspace)
    if from_state is not None:
        first = states.filter(state_id=from_state).values_list("pk", flat=True).first()
        if first is None:
            return
        states = states.filter(pk__gte=first)
    states.delete()
    _release_manifests(workspace)


# --- Cleanup ----------------------------------------------------------------------------


def _unreferenced(ignoring: Collection[str] = ()) -> QuerySet[Blob]:
    held = ManifestEntry.objects.filter(blob=OuterRef("pk"))
    if ignoring:
        held = held.exclude(manifest__workspace__session_id__in=list(ignoring))
    return Blob.objects.filter(~Exists(held))


def unreferenced_blobs(ignoring: Collection[str] = ()) -> tuple[int, int]:
    """How many blobs no manifest holds, and their bytes.

    With ``ignoring`` (session ids), as if those sessions' workspaces were gone: what
    expiring them would free, for a dry run. One query parameter per id.
    """
    totals = _unreferenced(ignoring).aggregate(count=Count("pk"), bytes=Sum("size"))
    return int(totals["count"] or 0), int(totals["bytes"] or 0)


@_retried
def remove_unreferenced_blobs() -> tuple[int, int]:
    """Remove the blobs no manifest holds; how many, and their bytes.

    One statement (no blob is read): Django has nothing to cascade from a blob.
    """
    count, size = unreferenced_blobs()
    if count:
        _unreferenced().delete()
    return count, size
