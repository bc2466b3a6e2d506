"""Workspace states before each turn, kept content-addressed, for undo.

``WORKSPACE_ROOT/.history/<session_id>/`` holds ``blobs/<sha256>`` (a file's bytes,
stored once however many states hold it) and ``states.json``: the states, oldest
first, each ``{"id": ..., "files": {path: sha256}}``. At most
``WORKSPACE_HISTORY_STATES`` are kept; blobs no state refers to are removed. The
directory is outside the workspace, so the agent cannot reach it, and a dot-name
never collides with a session id.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from workspaces.files import FILE_MODE
from workspaces.services import (
    HISTORY_DIR,
    apply_changes,
    path_for,
    snapshot,
    workspace_root,
)
from workspaces.snapshots import FileState, Snapshot, WorkspaceDiff, diff_snapshots
from workspaces.trees import remove_tree


@dataclass(frozen=True)
class State:
    """One kept workspace state: its id and the hash of each file."""

    id: str
    files: dict[str, str]


def _history_dir(session_id: str) -> Path:
    path_for(session_id)  # validates the id
    return workspace_root() / HISTORY_DIR / session_id


def _load(directory: Path) -> list[State]:
    try:
        raw = json.loads((directory / "states.json").read_text())
    except FileNotFoundError:
        return []
    return [State(id=entry["id"], files=dict(entry["files"])) for entry in raw]


def _store(directory: Path, states: list[State]) -> None:
    """Write ``states.json`` atomically and drop the blobs no state refers to."""
    data = json.dumps([{"id": state.id, "files": state.files} for state in states])
    fd, name = tempfile.mkstemp(dir=directory, prefix=".states-")
    with os.fdopen(fd, "w") as file:
        file.write(data)
    Path(name).replace(directory / "states.json")
    used = {sha for state in states for sha in state.files.values()}
    for blob in (directory / "blobs").iterdir():
        if blob.name not in used:
            blob.unlink(missing_ok=True)


def _save_blocking(directory: Path, state_id: str, files: Snapshot, keep: int) -> None:
    blobs = directory / "blobs"
    blobs.mkdir(mode=0o700, parents=True, exist_ok=True)
    for state in files.values():
        blob = blobs / state.sha256
        if not blob.exists():
            fd, name = tempfile.mkstemp(dir=blobs, prefix=".blob-")
            with os.fdopen(fd, "wb") as file:
                os.fchmod(file.fileno(), FILE_MODE)
                file.write(state.content)
            Path(name).replace(blob)
    states = [s for s in _load(directory) if s.id != state_id]
    states.append(State(id=state_id, files={path: f.sha256 for path, f in files.items()}))
    _store(directory, states[-keep:])


async def save_state(*, session_id: str, state_id: str, files: Snapshot) -> None:
    """Keep ``files`` (a snapshot of the workspace) as state ``state_id``."""
    keep = int(settings.WORKSPACE_HISTORY_STATES)
    await asyncio.to_thread(_save_blocking, _history_dir(session_id), state_id, files, keep)


async def state_ids(*, session_id: str) -> list[str]:
    """The ids of the kept states, oldest first."""
    directory = _history_dir(session_id)
    return [state.id for state in await asyncio.to_thread(_load, directory)]


def _read_state(directory: Path, state_id: str) -> tuple[Snapshot, list[State]]:
    states = _load(directory)
    index = next(i for i, state in enumerate(states) if state.id == state_id)
    files = {
        path: FileState.of((directory / "blobs" / sha).read_bytes())
        for path, sha in states[index].files.items()
    }
    return files, states[:index]


async def restore_state(*, session_id: str, state_id: str) -> WorkspaceDiff:
    """Put the workspace back as it was in ``state_id``; forget that state and later ones.

    Returns what the restore changed: files written back (with their content) and
    files deleted.
    """
    directory = _history_dir(session_id)
    target, earlier = await asyncio.to_thread(_read_state, directory, state_id)
    current = await snapshot(session_id=session_id)
    change = diff_snapshots(current, target)
    await apply_changes(session_id=session_id, write=change.written, delete=change.deleted)
    await asyncio.to_thread(_store, directory, earlier)
    return change


async def delete_history(*, session_id: str) -> None:
    """Forget every kept state of the session (see :func:`workspaces.trees.remove_tree`)."""
    await asyncio.to_thread(remove_tree, _history_dir(session_id))
