"""The chat's side of session expiry: the :class:`workspaces.expiry.SessionKeeper`.

When a session was last used is ``ChatSession.last_active_at``, which a socket's
``init``, every turn and every undo renew (:func:`chat.session.store.touch`); reading a
session over the HTTP API does not. An expired session is removed exactly as
``DELETE /api/sessions/<id>`` removes one (:func:`chat.api.transcripts.delete_session`:
its workspace and undo states, its CLI config directory, every transcript stored for
it and its rows), except that a session a server runs is kept, not ended: this process,
or, with ``REDIS_URL``, any server of the cluster that holds the session's lease.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import redis
from asgiref.sync import async_to_sync
from django.conf import settings

from chat.api.transcripts import delete_session
from chat.cluster.keys import lease_key
from chat.models import ChatSession
from chat.runtime import get_runtime
from workspaces.expiry import UnusedSession


class ChatSessionKeeper:
    """Chat sessions as the cleanup command sees them (its calls are synchronous)."""

    def unused(self, *, before: datetime) -> list[UnusedSession]:
        """The sessions last active before ``before``, least recently active first."""
        rows = ChatSession.objects.filter(last_active_at__lt=before).order_by("last_active_at")
        return [
            UnusedSession(session_id, last_active_at)
            for session_id, last_active_at in rows.values_list("session_id", "last_active_at")
        ]

    def is_live(self, session_id: str) -> bool:
        """Whether this process has a runner for the session, or a server of the
        cluster holds its lease."""
        return get_runtime().sessions.is_live(session_id) or _leased_in_cluster(session_id)

    def expire(self, *, session_id: str, before: datetime) -> bool:
        """Remove the session as ``DELETE`` does, unless it is live here or was active
        since ``before``; whether there was anything to remove."""
        return async_to_sync(_expire)(session_id, before)


def _leased_in_cluster(session_id: str) -> bool:
    """Whether a server sharing ``REDIS_URL`` holds the session's lease (it runs it).

    A plain client of its own: the command is synchronous, and the runtime's asyncio
    client belongs to one event loop. Redis unreachable raises: the session is kept.
    """
    if not settings.REDIS_URL:
        return False
    with redis.Redis.from_url(settings.REDIS_URL, socket_timeout=5) as client:
        return bool(client.exists(lease_key(session_id)))


async def _expire(session_id: str, before: datetime) -> bool:
    sessions = get_runtime().sessions
    # Looked at again just before: it may have been opened since it was listed.
    active = ChatSession.objects.filter(session_id=session_id, last_active_at__gte=before)
    if sessions.is_live(session_id) or await active.aexists():
        return False
    if await asyncio.to_thread(_leased_in_cluster, session_id):
        return False
    return await delete_session(sessions=sessions, session_id=session_id)
