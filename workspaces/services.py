"""Workspace services: the only code that touches workspace files on disk.

A workspace is ``settings.WORKSPACE_ROOT / <session_id>``. Every client or agent path
goes through :func:`workspaces.paths.resolve_inside`. The async services cross to a
thread once per call, so a batch of files costs one hop, not one per file.
Directories are created with mode 0700 and files with 0600, whatever the umask.

Beside the workspaces, the root holds ``.leases/`` (:mod:`workspaces.leases`) and
``.history/`` (:mod:`workspaces.undo_states`); dot-names never collide with session ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from workspaces.content import ClientContent, decode_from_wire
from workspaces.exceptions import InvalidPath, PayloadTooLarge, WorkspaceNotFound, short_repr
from workspaces.files import make_dirs, read_regular, write_temp
from workspaces.paths import (
    path_problem,
    resolve_inside,
    validate_session_id,
)
from workspaces.snapshots import FileState, Snapshot
from workspaces.trees import remove_tree

LEASES_DIR = ".leases"
HISTORY_DIR = ".history"  # undo states, see workspaces.undo_states


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


def _walk(root: Path) -> Iterator[tuple[str, str]]:
    """``(relative POSIX path, absolute path)`` of each regular file the gate accepts.

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
                    yield rel, entry.path


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


def _sync_in_blocking(root: Path, files: Mapping[str, ClientContent], limits: _Limits) -> None:
    """Validate the whole batch, then write it (see :func:`_write_all`)."""
    _write_all(root, _plan_sync(root, files, limits))


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


def _apply_blocking(root: Path, write: Mapping[str, bytes], delete: Iterable[str]) -> None:
    _require_workspace(root, root.name)
    _write_all(root, [(resolve_inside(root, rel), data) for rel, data in write.items()])
    for rel in delete:
        resolve_inside(root, rel).unlink(missing_ok=True)


def _snapshot_blocking(root: Path, session_id: str) -> Snapshot:
    _require_workspace(root, session_id)
    snapshot: Snapshot = {}
    for rel, absolute in _walk(root):
        content = read_regular(absolute)
        if content is not None:  # None: it vanished or changed type since the listing
            snapshot[rel] = FileState.of(content)
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


async def create(*, session_id: str) -> Path:
    """Create the workspace of ``session_id`` if missing and return its directory."""
    root = path_for(session_id)
    await asyncio.to_thread(make_dirs, root)
    return root


async def exists(*, session_id: str) -> bool:
    """Whether the workspace of ``session_id`` exists."""
    return await asyncio.to_thread(path_for(session_id).is_dir)


async def delete(*, session_id: str) -> bool:
    """Delete the workspace of ``session_id``, however deep; whether there was one."""
    return await asyncio.to_thread(remove_tree, path_for(session_id))


async def list_files(*, session_id: str) -> list[str]:
    """The sorted relative POSIX paths of the user files in the workspace."""
    root = path_for(session_id)
    return await asyncio.to_thread(_list_files_blocking, root, session_id)


async def sync_in(*, session_id: str, files: Mapping[str, ClientContent]) -> list[str]:
    """Write ``files`` (relative path to content) into the workspace, all or nothing.

    Every path, content and limit is checked before the first byte is written;
    each file is then replaced atomically. Creates the workspace if missing.
    Returns the written paths, sorted.
    """
    root = path_for(session_id)
    limits = _Limits(
        max_files=int(settings.WORKSPACE_MAX_FILES),
        max_file_bytes=int(settings.WORKSPACE_MAX_FILE_BYTES),
        max_total_bytes=int(settings.WORKSPACE_MAX_TOTAL_BYTES),
    )
    batch = dict(files)
    await asyncio.to_thread(_sync_in_blocking, root, batch, limits)
    return sorted(batch)


async def apply_changes(
    *, session_id: str, write: Mapping[str, bytes], delete: Iterable[str]
) -> None:
    """Write ``write`` (path to bytes, atomically per file) and delete ``delete``.

    For content the server itself kept (undo); client content goes through
    :func:`sync_in` and its limits.
    """
    root = path_for(session_id)
    await asyncio.to_thread(_apply_blocking, root, dict(write), list(delete))


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
    root = path_for(session_id)
    conflicts = await asyncio.to_thread(_conflicts_blocking, root, dict(files), dict(base_hashes))
    skipped = {conflict.path for conflict in conflicts}
    await sync_in(session_id=session_id, files={p: c for p, c in files.items() if p not in skipped})
    return conflicts


async def snapshot(*, session_id: str) -> Snapshot:
    """The content and hash of every user file in the workspace."""
    root = path_for(session_id)
    return await asyncio.to_thread(_snapshot_blocking, root, session_id)


async def read_files(*, session_id: str, paths: Iterable[str]) -> dict[str, bytes]:
    """The content of each of ``paths``; :class:`InvalidPath` if one is not a file."""
    root = path_for(session_id)
    limit = int(settings.WORKSPACE_MAX_FILE_BYTES)
    return await asyncio.to_thread(_read_files_blocking, root, session_id, list(paths), limit)


async def read_file(*, session_id: str, path: str) -> bytes:
    """The content of one file in the workspace."""
    return (await read_files(session_id=session_id, paths=[path]))[path]
