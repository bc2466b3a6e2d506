"""Finding and removing workspaces nobody has used for a while (``cleanup_workspaces``).

What is removed is this server's copy: the database keeps the session's files and
undo states, and a copy is rebuilt from them when the session opens again. Blobs no
manifest holds any more are removed from the database.

Synchronous: its only caller is the management command.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from workspaces import stamps, storage
from workspaces.leases import is_leased, lease_path
from workspaces.paths import is_valid_session_id
from workspaces.services import HISTORY_DIR, workspace_root
from workspaces.trees import remove_tree, walk


@dataclass(frozen=True, slots=True)
class StaleWorkspace:
    """A workspace nobody has touched since ``newest_mtime`` and no live process leases."""

    session_id: str
    path: Path
    newest_mtime: float
    bytes: int


def _usage(directory: Path) -> tuple[float, int] | None:
    """The newest mtime of ``directory`` or anything in it, and its files' total size.

    ``None`` if it is gone. Any depth: see :mod:`workspaces.trees`.
    """
    newest: float | None = None
    total = 0
    for info in walk(directory):
        newest = info.st_mtime if newest is None else max(newest, info.st_mtime)
        if stat.S_ISREG(info.st_mode):
            total += info.st_size
    return None if newest is None else (newest, total)


def session_ids() -> list[str]:
    """The ids of the workspace directories under the root, sorted (symlinks left out)."""
    root = workspace_root()
    if not root.is_dir():
        return []
    with os.scandir(root) as scan:
        return sorted(
            entry.name
            for entry in scan
            if is_valid_session_id(entry.name) and entry.is_dir(follow_symlinks=False)
        )


def find_stale(*, session_id: str, older_than_hours: float) -> StaleWorkspace | None:
    """The workspace if unleased and its newest entry is older than ``older_than_hours``."""
    path = workspace_root() / session_id
    usage = _usage(path)
    cutoff = time.time() - older_than_hours * 3600
    if usage is None or usage[0] >= cutoff or is_leased(session_id=session_id):
        return None
    return StaleWorkspace(session_id, path, *usage)


def remove_stale(*, workspace: StaleWorkspace) -> bool:
    """Delete a workspace from :func:`find_stale` unless leased since; whether removed.

    Its lease and stamp go with it (and undo states it kept on disk before the
    database held them); what the database holds stays. Raises :class:`OSError` if
    it cannot be removed; the lease and stamp then stay for the next run.
    """
    if is_leased(session_id=workspace.session_id):
        return False
    removed = remove_tree(workspace.path)
    lease_path(workspace.session_id).unlink(missing_ok=True)
    stamps.remove(workspace.session_id)
    remove_tree(workspace_root() / HISTORY_DIR / workspace.session_id)
    return removed


def unreferenced_blobs(*, ignoring: Collection[str] = ()) -> tuple[int, int]:
    """How many stored blobs no manifest holds, and their bytes (for a dry run); with
    ``ignoring``, once the workspaces of those sessions are gone (expired)."""
    return storage.unreferenced_blobs(ignoring)


def remove_unreferenced_blobs() -> tuple[int, int]:
    """Remove the stored blobs no manifest holds; how many, and their bytes."""
    return storage.remove_unreferenced_blobs()
