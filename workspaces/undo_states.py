"""Workspace states before each turn, kept in the database, for undo.

Each state is a manifest of the workspace (:mod:`workspaces.storage`): a file's bytes
are one blob however many states and sessions hold them, and a state equal to the
current files (the usual case: the state before a turn is the workspace as the last
change recorded it) costs one row. At most ``WORKSPACE_HISTORY_STATES`` states are
kept per session, oldest dropped first. Any server restores them, byte for byte,
whatever its disk holds.
"""

from __future__ import annotations

import asyncio

from asgiref.sync import sync_to_async
from django.conf import settings

from workspaces import storage
from workspaces.paths import validate_session_id
from workspaces.services import (
    HISTORY_DIR,
    apply_changes,
    ensure_current,
    listable,
    snapshot,
    workspace_root,
)
from workspaces.snapshots import ListingChanges, Snapshot, WorkspaceDiff, split_snapshot
from workspaces.trees import remove_tree


async def save_state(*, session_id: str, state_id: str, files: Snapshot) -> None:
    """Keep ``files`` (a snapshot of the workspace) as the newest state ``state_id``."""
    validate_session_id(session_id)
    keep = int(settings.WORKSPACE_HISTORY_STATES)
    listing, contents = split_snapshot(files)
    await sync_to_async(storage.save_state)(session_id, state_id, listing, contents, keep)


async def state_ids(*, session_id: str) -> list[str]:
    """The ids of the kept states, oldest first."""
    validate_session_id(session_id)
    return await sync_to_async(storage.state_ids)(session_id)


async def restore_state(*, session_id: str, state_id: str) -> WorkspaceDiff:
    """Put the workspace back as it was in ``state_id``; forget that state and later ones.

    Returns what the restore changed: files written back (with their content) and
    files deleted. :class:`LookupError` if the state is not kept.
    """
    validate_session_id(session_id)
    target = listable(await sync_to_async(storage.state_listing)(session_id, state_id))
    await ensure_current(session_id=session_id)
    paths = ListingChanges.between(await snapshot(session_id=session_id), target)
    written = {target[p] for p in paths.created + paths.changed}
    contents = await sync_to_async(storage.blob_contents)(written)
    change = WorkspaceDiff(
        created={path: contents[target[path]] for path in paths.created},
        changed={path: contents[target[path]] for path in paths.changed},
        deleted=paths.deleted,
    )
    await apply_changes(session_id=session_id, write=change.written, delete=change.deleted)
    await sync_to_async(storage.forget_states)(session_id, from_state=state_id)
    return change


async def delete_history(*, session_id: str) -> None:
    """Forget every kept state of the session (and any it kept on disk before)."""
    validate_session_id(session_id)
    await sync_to_async(storage.forget_states)(session_id)
    await asyncio.to_thread(remove_tree, workspace_root() / HISTORY_DIR / session_id)
