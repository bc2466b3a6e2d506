"""Workspace services: the only code that touches workspace files on disk.

A workspace is ``settings.WORKSPACE_ROOT / <session_id>``. Every client or agent path
goes through :func:`workspaces.paths.resolve_inside`. The async services cross to a
thread once per call, so a batch of files costs one hop, not one per file.
Directories are created with mode 0700 and files with 0600, whatever the umask.

The database holds what must survive (:mod:`workspaces.storage`); a workspace
directory is only this server's copy of the current files. Every change made through
these services is recorded as it is made, :func:`record_current` records what others
wrote (the agent in a turn), and :func:`ensure_current` makes a missing or outdated
copy the stored one again before it is used.

Beside the workspaces, the root holds ``.leases/`` (:mod:`workspaces.leases`),
``.stamps/`` (:mod:`workspaces.stamps`) and, from before the database held them,
``.history/`` (undo states, read once: see :func:`ensure_current`); dot-names never
collide with session ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from asgiref.sync import sync_to_async
from django.conf import settings

from workspaces import stamps, stat_index, storage
from workspaces.content import ClientContent, decode_from_wire
from workspaces.exceptions import InvalidPath, PayloadTooLarge, WorkspaceNotFound, short_repr
from workspaces.files import make_dirs, read_regular, read_regular_stat, write_temp
from workspaces.paths import (
    path_problem,
    relative_to_root,
    resolve_inside,
    validate_session_id,
)
from workspaces.snapshots import FileState, ListingChanges, Snapshot, split_snapshot
from workspaces.stamps import Stamp
from workspaces.storage import Current, Listing
from workspaces.trees import remove_tree

LEASES_DIR = ".leases"
HISTORY_DIR = ".history"  # undo states on disk, from before the database held them


@dataclass(frozen=True, slots=True)
class _Limits:
    """The sync limits from settings, read once on the event loop's thread."""

    max_files: int
    max_file_bytes: int
    max_total_bytes: int


# --- Locations ---------------------------------------------------------------------


def workspace_root() -> Path:
    """The directory holding every workspace (``settings.WORKSPACE_ROOT``)."""
    return Path(settings.WORKSPACE_ROOT)


def path_for(session_id: str) -> Path:
    """The workspace directory of ``session_id`` (validated; it may not exist yet)."""
    return workspace_root() / validate_session_id(session_id)


# --- Blocking helpers (run in a thread) -------------------------------------------


def _walk(root: Path) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """``(relative POSIX path, directory entry)`` of each regular file the gate accepts.

    Exactly the paths :func:`path_problem` accepts, so every file a client or the
    agent can create is listed, reported and undone. What it refuses can only be on
    disk by bypassing the gate (our in-flight temp files, files from before a rule):
    never listed, and not descended into, so the walk goes no deeper than
    ``WORKSPACE_MAX_DEPTH``. Symlinks and special files are never followed or listed.
    """
    pending: list[tuple[str, str]] = [(str(root), "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            scan = os.scandir(directory)
        except FileNotFoundError:  # removed while we walked: nothing left to report
            continue
        with scan as entries:
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_symlink() or path_problem(rel) is not None:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    pending.append((entry.path, rel + "/"))
                elif entry.is_file(follow_symlinks=False):
                    yield rel, entry


def _require_workspace(root: Path, session_id: str) -> None:
    if not root.is_dir():
        raise WorkspaceNotFound(session_id)


def _plan_sync(
    root: Path, files: Mapping[str, ClientContent], limits: _Limits
) -> list[tuple[Path, bytes]]:
    """Check every path, content and limit; return ``(target, bytes)`` to write."""
    if len(files) > limits.max_files:
        raise PayloadTooLarge("number of files", limits.max_files, len(files))
    plan: dict[Path, tuple[str, bytes]] = {}
    total = 0
    for rel, content in files.items():
        target = resolve_inside(root, rel)
        data = decode_from_wire(rel, content)
        if len(data) > limits.max_file_bytes:
            what = f"size of {short_repr(rel)} in bytes"
            raise PayloadTooLarge(what, limits.max_file_bytes, len(data))
        if target in plan:
            raise InvalidPath(rel, f"same file as {short_repr(plan[target][0])}")
        plan[target] = (rel, data)
        total += len(data)
    if total > limits.max_total_bytes:
        raise PayloadTooLarge("total size in bytes", limits.max_total_bytes, total)
    real_root = root.resolve()
    for target, (rel, _) in plan.items():
        if target.is_dir():
            raise InvalidPath(rel, "is a directory")
        for parent in target.parents:
            if parent == real_root:
                break
            if parent in plan:
                raise InvalidPath(rel, f"{short_repr(plan[parent][0])} is a file in this sync")
            if parent.exists() and not parent.is_dir():
                raise InvalidPath(rel, "a parent is not a directory")
    return [(target, data) for target, (_, data) in plan.items()]


def _apply_stamped(
    session_id: str, plan: list[tuple[Path, bytes]], delete: list[str], writing: Stamp
) -> dict[str, bytes]:
    """Stamp the copy as being written, apply ``plan`` and ``delete`` (one thread hop);
    the files written, by the path a listing of the workspace gives them."""
    root = path_for(session_id)
    stamps.write(session_id, writing)
    _apply_blocking(root, plan, delete)
    return {relative_to_root(root, target): data for target, data in plan}


def _write_all(root: Path, plan: list[tuple[Path, bytes]]) -> None:
    """Stage every file as a temp file, then rename them all.

    A failure while staging removes the temp files and the directories it created,
    so the workspace is left as it was.
    """
    created: list[Path] = []
    staged: list[tuple[Path, Path]] = []
    try:
        created += make_dirs(root)
        for target, data in plan:
            created += make_dirs(target.parent)
            staged.append((write_temp(target.parent, data), target))
    except BaseException:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
        for directory in reversed(created):
            with contextlib.suppress(OSError):  # someone else wrote into it meanwhile
                directory.rmdir()
        raise
    for temp, target in staged:
        temp.replace(target)


def _plan_apply(root: Path, write: Mapping[str, bytes]) -> list[tuple[Path, bytes]]:
    _require_workspace(root, root.name)
    return [(resolve_inside(root, rel), data) for rel, data in write.items()]


def _apply_blocking(root: Path, plan: list[tuple[Path, bytes]], delete: Iterable[str]) -> None:
    _write_all(root, plan)
    for rel in delete:
        resolve_inside(root, rel).unlink(missing_ok=True)


def _snapshot_blocking(root: Path, session_id: str) -> Snapshot:
    """Stat every file; read and hash only those the stat index cannot vouch for."""
    _require_workspace(root, session_id)
    known = stat_index.INDEX.get(str(root)) or {}
    entries: dict[str, stat_index.Entry] = {}
    started = stat_index.fs_now_ns(root.parent)  # before the first read: see stat_index
    snapshot = Snapshot(read=lambda rel: read_regular(resolve_inside(root, rel)))
    for rel, found_at in _walk(root):
        try:
            info = found_at.stat(follow_symlinks=False)
        except FileNotFoundError:  # vanished since the listing
            continue
        sha = stat_index.trusted(known.get(rel), info)
        if sha is not None:
            snapshot[rel] = FileState(sha256=sha, size=info.st_size)
            entries[rel] = known[rel]
            continue
        found = read_regular_stat(found_at.path)
        if found is None:  # it vanished or changed type since the listing
            continue
        content, opened = found
        snapshot[rel] = state = FileState.of(content)
        entries[rel] = stat_index.entry_of(opened, state.sha256, hashed_at_ns=started)
    stat_index.INDEX.put(str(root), entries)
    return snapshot


def _list_files_blocking(root: Path, session_id: str) -> list[str]:
    _require_workspace(root, session_id)
    return sorted(rel for rel, _ in _walk(root))


def _read_files_blocking(
    root: Path, session_id: str, paths: list[str], limit: int
) -> dict[str, bytes]:
    _require_workspace(root, session_id)
    result: dict[str, bytes] = {}
    for rel in paths:
        content = read_regular(resolve_inside(root, rel), limit=limit)
        if content is None:
            raise InvalidPath(rel, "no such file")
        result[rel] = content
    return result


# --- Workspace services -------------------------------------------------------------

#: The last snapshot :func:`record_current` recorded per session, with the state it
#: became (without the bytes it had read), for :func:`snapshot_for_turn`.
_recorded: stat_index.Recent[tuple[Current, Snapshot]] = stat_index.Recent()


async def create(*, session_id: str) -> Path:
    """Create the workspace of ``session_id`` if missing and return its directory."""
    root = path_for(session_id)
    await asyncio.to_thread(make_dirs, root)
    return root


async def exists(*, session_id: str) -> bool:
    """Whether the workspace of ``session_id`` exists."""
    return await asyncio.to_thread(path_for(session_id).is_dir)


async def delete(*, session_id: str) -> bool:
    """Delete the workspace of ``session_id``: this server's copy, however deep, and the
    stored files and undo states (blobs stay for the cleanup). Whether there was one."""
    removed = await asyncio.to_thread(remove_tree, path_for(session_id))
    stat_index.INDEX.forget(str(path_for(session_id)))
    _recorded.forget(session_id)
    await asyncio.to_thread(stamps.remove, session_id)
    stored = await sync_to_async(storage.delete_workspace)(session_id)
    return removed or stored


async def list_files(*, session_id: str) -> list[str]:
    """The sorted relative POSIX paths of the user files in the workspace.

    From this server's copy; with none (never opened here, or removed by the
    cleanup), from the database, without making a copy.
    """
    root = path_for(session_id)
    try:
        return await asyncio.to_thread(_list_files_blocking, root, session_id)
    except WorkspaceNotFound:
        found = await sync_to_async(storage.current_listing)(session_id)
        if found is None:
            raise
        return sorted(listable(found[1]))


async def sync_in(*, session_id: str, files: Mapping[str, ClientContent]) -> list[str]:
    """Write ``files`` (relative path to content) into the workspace, all or nothing.

    Every path, content and limit is checked before the first byte is written;
    each file is then replaced atomically. Creates the workspace if missing (rebuilt
    from the database first, see :func:`ensure_current`); the change is recorded.
    Returns the written paths, sorted.
    """
    await _refuse_before_first_copy(session_id, files)
    await ensure_current(session_id=session_id)
    return await _sync_in(session_id, files)


def _limits() -> _Limits:
    return _Limits(
        max_files=int(settings.WORKSPACE_MAX_FILES),
        max_file_bytes=int(settings.WORKSPACE_MAX_FILE_BYTES),
        max_total_bytes=int(settings.WORKSPACE_MAX_TOTAL_BYTES),
    )


async def _refuse_before_first_copy(session_id: str, files: Mapping[str, ClientContent]) -> None:
    """With no copy on this disk yet, check the batch before one is made for it.

    So that a refused batch leaves nothing behind; with a copy, :func:`_sync_in`
    checks it against the current copy anyway.
    """
    root = path_for(session_id)
    if not await asyncio.to_thread(root.is_dir):
        await asyncio.to_thread(_plan_sync, root, dict(files), _limits())


async def _sync_in(session_id: str, files: Mapping[str, ClientContent]) -> list[str]:
    root = path_for(session_id)
    batch = dict(files)
    plan = await asyncio.to_thread(_plan_sync, root, batch, _limits())
    await _change(session_id, plan, delete=[])
    return sorted(batch)


async def apply_changes(
    *, session_id: str, write: Mapping[str, bytes], delete: Iterable[str]
) -> None:
    """Write ``write`` (path to bytes, atomically per file) and delete ``delete``.

    For content the server itself kept (undo); client content goes through
    :func:`sync_in` and its limits. The change is recorded.
    """
    await ensure_current(session_id=session_id)
    root = path_for(session_id)
    plan = await asyncio.to_thread(_plan_apply, root, dict(write))
    await _change(session_id, plan, delete=list(delete))


@dataclass(frozen=True, slots=True)
class SyncConflict:
    """A file both sides changed: the server's version and the one the client sent."""

    path: str
    server: bytes
    client: bytes


def _conflicts_blocking(
    root: Path, files: Mapping[str, ClientContent], base_hashes: Mapping[str, str]
) -> list[SyncConflict]:
    conflicts = []
    for rel, content in files.items():
        base = base_hashes.get(rel)
        if base is None or not root.is_dir():
            continue
        current = read_regular(resolve_inside(root, rel))
        if current is None or FileState.of(current).sha256 == base:
            continue  # gone on the server, or unchanged since the client's version
        sent = decode_from_wire(rel, content)
        if sent != current:
            conflicts.append(SyncConflict(rel, server=current, client=sent))
    return conflicts


async def sync_in_unless_conflicting(
    *, session_id: str, files: Mapping[str, ClientContent], base_hashes: Mapping[str, str]
) -> list[SyncConflict]:
    """:func:`sync_in`, except files changed on the server since the client's version.

    ``base_hashes`` maps a path to the SHA-256 of the version the client's edit is
    based on. When the server's file no longer has that hash and differs from what
    the client sent, both sides changed it: the server's version stays, and the
    pair is returned for the client to resolve.
    """
    await _refuse_before_first_copy(session_id, files)
    await ensure_current(session_id=session_id)
    root = path_for(session_id)
    conflicts = await asyncio.to_thread(_conflicts_blocking, root, dict(files), dict(base_hashes))
    skipped = {conflict.path for conflict in conflicts}
    await _sync_in(session_id, {p: c for p, c in files.items() if p not in skipped})
    return conflicts


async def snapshot(*, session_id: str) -> Snapshot:
    """The hash and size of every user file in the workspace (see :class:`Snapshot`)."""
    root = path_for(session_id)
    return await asyncio.to_thread(_snapshot_blocking, root, session_id)


async def snapshot_contents(files: Snapshot) -> dict[str, bytes]:
    """Every file's bytes as of ``files`` (:class:`SnapshotOutOfDate` if one changed since)."""
    return await asyncio.to_thread(lambda: {path: files.content(path) for path in files})


async def read_files(*, session_id: str, paths: Iterable[str]) -> dict[str, bytes]:
    """The content of each of ``paths``; :class:`InvalidPath` if one is not a file."""
    root = path_for(session_id)
    limit = int(settings.WORKSPACE_MAX_FILE_BYTES)
    return await asyncio.to_thread(_read_files_blocking, root, session_id, list(paths), limit)


async def read_file(*, session_id: str, path: str) -> bytes:
    """The content of one file in the workspace."""
    return (await read_files(session_id=session_id, paths=[path]))[path]


# --- The stored copy ------------------------------------------------------------------


async def ensure_current(*, session_id: str, expect_writes: bool = False) -> Current:
    """Make this server's copy of the workspace the one the database holds.

    Cheap when it already is: one query and a small file read (the copy's stamp, see
    :mod:`workspaces.stamps`). A copy that is missing or outdated (another server
    moved the session on) is rebuilt byte for byte from the database. A copy left
    with changes nobody recorded (a server that died during a turn or a sync) is
    recorded as it is. A session the database does not know is recorded from what
    this disk holds (a workspace, and its undo states, from before the database held
    them), or starts empty.

    ``expect_writes``: something other than these services (the agent) is about to
    write into the workspace. Until :func:`record_current`, the copy is stamped as
    being written, so that if this server dies meanwhile, the next open finds out.

    Callers serialise it with every other change of the session's workspace (the
    session runner does: sync, turn and undo never overlap).
    """
    root = path_for(session_id)
    state = await sync_to_async(storage.current)(session_id)
    stamp, present = await asyncio.to_thread(_look, session_id, root)
    if state is None:
        state = await _first_record(session_id, root, stamp if present else None)
    elif present and stamp is not None and stamp.holds(state):
        pass
    elif present and stamp is not None and stamp.changed_since(state):
        state = await _store(session_id, await snapshot(session_id=session_id))
    else:
        state = await _rebuild(session_id, root)
    wanted = Stamp.of(state, writing=expect_writes)
    if wanted != stamp:
        await asyncio.to_thread(stamps.write, session_id, wanted)
    return state


async def snapshot_for_turn(*, session_id: str) -> Snapshot:
    """Make the copy current for a turn (:func:`ensure_current` expecting writes) and
    take its snapshot before the turn.

    When the copy is still in the state the last :func:`record_current` of this
    process recorded (the previous turn's end, nothing changed since: any change is
    recorded, and moves the state's generation), that snapshot is the answer and the
    workspace is not walked: at 500 files a walk is about 10 ms of a turn.
    """
    state = await ensure_current(session_id=session_id, expect_writes=True)
    remembered = _recorded.get(session_id)
    if remembered is not None and remembered[0] == state:
        return remembered[1]
    return await snapshot(session_id=session_id)


async def claim(*, session_id: str, token: int) -> None:
    """Take the session's stored workspace as the owner with fencing token ``token``:
    writes made as any other token are refused from now on (:mod:`workspaces.fencing`)."""
    await sync_to_async(storage.claim)(session_id, token)


async def record_current(*, session_id: str, files: Snapshot | None = None) -> None:
    """Record the workspace's files in the database: ``files``, a snapshot just taken,
    or a new one. For what was written without these services (the agent's turn).

    Only new blobs and a new manifest are written; nothing when nothing changed.
    """
    if files is None:
        files = await snapshot(session_id=session_id)
    state = await _store(session_id, files)
    await asyncio.to_thread(stamps.write, session_id, Stamp.of(state))
    _recorded.put(session_id, (state, files.without_bytes()))


def _look(session_id: str, root: Path) -> tuple[Stamp | None, bool]:
    return stamps.read(session_id), root.is_dir()


def listable(listing: Listing) -> Listing:
    """A stored listing without the names a rule made since refuses: a workspace
    could not hold them, so a rebuild, a restore or a listing leaves them out."""
    return {path: sha for path, sha in listing.items() if path_problem(path) is None}


async def _store(session_id: str, files: Snapshot) -> Current:
    return await sync_to_async(storage.record)(session_id, *split_snapshot(files))


async def _change(session_id: str, plan: list[tuple[Path, bytes]], *, delete: list[str]) -> None:
    """Apply ``plan`` (target, bytes) and ``delete`` to the copy, and record the result.

    The copy was made current just before (:func:`ensure_current`), so the new
    listing is the stored one with this change: no file is read back or hashed again.
    """
    if not plan and not delete:
        return
    found = await sync_to_async(storage.current_listing)(session_id)
    if found is None:  # the session was deleted since the copy was made current
        raise WorkspaceNotFound(session_id)
    base, listing = found
    written = await asyncio.to_thread(
        _apply_stamped, session_id, plan, delete, Stamp.of(base, writing=True)
    )
    for rel in delete:
        listing.pop(rel, None)
    contents: dict[str, bytes] = {}
    for rel, data in written.items():
        listing[rel] = sha = FileState.of(data).sha256
        contents[sha] = data
    state = await sync_to_async(storage.record)(session_id, listing, contents)
    await asyncio.to_thread(stamps.write, session_id, Stamp.of(state))


async def _first_record(session_id: str, root: Path, stamp: Stamp | None) -> Current:
    """Record a workspace the database does not know, from this disk."""
    if stamp is not None:
        # This code stamped the copy, yet the database has no such session: it was
        # deleted (from another server). A new session of that id starts empty.
        await asyncio.to_thread(remove_tree, root)
    await create(session_id=session_id)
    state = await _store(session_id, await snapshot(session_id=session_id))
    if stamp is None:
        await _import_disk_history(session_id)
    return state


async def _rebuild(session_id: str, root: Path) -> Current:
    """Make the copy the database's current files: write what differs, delete the rest."""
    # Half a rebuild must never look current, should this server die during it.
    await asyncio.to_thread(stamps.remove, session_id)
    found = await sync_to_async(storage.current_listing)(session_id)
    if found is None:  # deleted since we looked
        raise WorkspaceNotFound(session_id)
    state, stored = found
    listing = listable(stored)
    await create(session_id=session_id)
    paths = ListingChanges.between(await snapshot(session_id=session_id), listing)
    missing = paths.created + paths.changed
    contents = await sync_to_async(storage.blob_contents)({listing[p] for p in missing})
    plan = await asyncio.to_thread(
        _plan_apply, root, {path: contents[listing[path]] for path in missing}
    )
    await asyncio.to_thread(_apply_blocking, root, plan, paths.deleted)
    return state


def _disk_history(directory: Path) -> list[tuple[str, Listing, dict[str, bytes]]]:
    """The undo states kept in ``directory`` before the database held them, oldest first."""
    try:
        raw = json.loads((directory / "states.json").read_text())
    except (FileNotFoundError, ValueError):
        return []
    states = []
    for entry in raw:
        listing: Listing = dict(entry["files"])
        contents = {sha: (directory / "blobs" / sha).read_bytes() for sha in set(listing.values())}
        states.append((str(entry["id"]), listing, contents))
    return states


async def _import_disk_history(session_id: str) -> None:
    """Move the undo states a workspace kept on disk (``.history/``) into the database."""
    directory = workspace_root() / HISTORY_DIR / session_id
    keep = int(settings.WORKSPACE_HISTORY_STATES)
    for state_id, listing, contents in await asyncio.to_thread(_disk_history, directory):
        await sync_to_async(storage.save_state)(session_id, state_id, listing, contents, keep)
    await asyncio.to_thread(remove_tree, directory)
