"""Finding and removing workspaces nobody has used for a while (``cleanup_workspaces``).

Synchronous: its only caller is the management command.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path

from workspaces.leases import _lease_path, is_leased
from workspaces.paths import is_valid_session_id
from workspaces.services import HISTORY_DIR, remove_tree, workspace_root


@dataclass(frozen=True, slots=True)
class StaleWorkspace:
    """A workspace nobody has touched since ``newest_mtime`` and no live process leases."""

    session_id: str
    path: Path
    newest_mtime: float
    bytes: int


def _usage(directory: Path) -> tuple[float, int]:
    """The newest mtime of ``directory`` or anything in it, and its files' total size."""
    newest = directory.lstat().st_mtime
    total = 0
    for parent, dirnames, filenames in os.walk(directory):
        for name in (*dirnames, *filenames):
            try:
                info = (Path(parent) / name).lstat()
            except FileNotFoundError:
                continue
            newest = max(newest, info.st_mtime)
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return newest, total


def find_stale(*, older_than_hours: float) -> list[StaleWorkspace]:
    """Unleased workspaces whose newest entry is older than ``older_than_hours``."""
    root = workspace_root()
    if not root.is_dir():
        return []
    cutoff = time.time() - older_than_hours * 3600
    stale: list[StaleWorkspace] = []
    with os.scandir(root) as scan:
        entries = sorted(scan, key=lambda entry: entry.name)
    for entry in entries:
        if not is_valid_session_id(entry.name) or not entry.is_dir(follow_symlinks=False):
            continue
        newest, size = _usage(Path(entry.path))
        if newest < cutoff and not is_leased(session_id=entry.name):
            stale.append(StaleWorkspace(entry.name, Path(entry.path), newest, size))
    return stale


def remove_stale(*, workspace: StaleWorkspace) -> bool:
    """Delete a workspace from :func:`find_stale` unless leased since; whether removed."""
    if is_leased(session_id=workspace.session_id):
        return False
    removed = remove_tree(workspace.path)
    _lease_path(workspace.session_id).unlink(missing_ok=True)
    remove_tree(workspace_root() / HISTORY_DIR / workspace.session_id)
    return removed
