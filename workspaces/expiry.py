"""Expiring whole sessions nobody has used for a long time (``cleanup_workspaces``).

Unlike a workspace copy (a cache, :mod:`workspaces.cleanup`), an expired session is gone
for good: its files and undo states in the database, this server's copy, its stamp and
lease, and whatever else the server kept of it (its records, its conversation). The
blobs only it held are then removed by the command's blob sweep, which runs after.

This app knows nothing of chat, yet when a session was last used, and what else is
stored for it, belong to the app that runs sessions. That app registers a
:class:`SessionKeeper` here (chat does, in ``ChatConfig.ready``) and the command asks
it. A registered keeper, not a Django signal: a signal announces to whoever listens
that something happened, and its sender has no say over the answers; here the command
has to ask (which sessions are unused, whether one is live, whether it was removed)
and act on the answers, so the hook is a typed interface with one implementation.
Without a keeper no session is known to be unused, and nothing expires.

A session is never expired while a server may be using it: while the keeper says this
process runs it, or while a live server process holds its lease on this disk
(:mod:`workspaces.leases`). A running server writes into a live session's rows,
workspace and transcripts at any moment (a turn records its files and conversation as
they are made), and removing them under it would make its next write fail or bring
back half a session. A server on another machine leaves no lease on this disk: there,
only the session's recent activity protects it, which every open, turn and undo
renews (docs/deploy.md, "What is not there yet").

Synchronous: its only caller is the management command.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from workspaces.leases import is_leased, lease_path


@dataclass(frozen=True, slots=True)
class UnusedSession:
    """A session nobody has used since ``last_active_at``."""

    session_id: str
    last_active_at: datetime


class SessionKeeper(Protocol):
    """The app that runs sessions: it knows when each was last used, and removes them."""

    def unused(self, *, before: datetime) -> list[UnusedSession]:
        """The sessions last used before ``before``, least recently used first."""

    def is_live(self, session_id: str) -> bool:
        """Whether this process is running the session now."""

    def expire(self, *, session_id: str, before: datetime) -> bool:
        """Remove everything stored for the session, its workspace included, unless this
        process runs it or it was used since ``before``; whether it was removed."""


_keeper: SessionKeeper | None = None


def register_keeper(keeper: SessionKeeper) -> None:
    """Make ``keeper`` the one the command asks (the app's ``ready`` calls it)."""
    global _keeper
    _keeper = keeper


def _in_use(keeper: SessionKeeper, session_id: str) -> bool:
    return keeper.is_live(session_id) or is_leased(session_id=session_id)


def expiring(*, before: datetime) -> list[UnusedSession]:
    """The sessions to expire: last used before ``before``, not live here, not leased."""
    if _keeper is None:
        return []
    return [s for s in _keeper.unused(before=before) if not _in_use(_keeper, s.session_id)]


def expire(*, session_id: str, before: datetime) -> bool:
    """Remove everything stored for a session from :func:`expiring`, unless it has come
    into use since; whether it was removed.

    A lease a dead server left goes too. Raises what the removal raises (the keeper's
    errors, :class:`OSError`); what was not removed yet stays for the next run.
    """
    keeper = _keeper
    if keeper is None or _in_use(keeper, session_id):
        return False
    if not keeper.expire(session_id=session_id, before=before):
        return False
    if not is_leased(session_id=session_id):
        lease_path(session_id).unlink(missing_ok=True)
    return True
