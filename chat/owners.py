"""Sessions belong to the user who first opened them.

A client names a session by its own id; the server keys it by :func:`server_id`, which
for a user is derived from the user and the client's id. So two users' ``demo1`` are
two sessions, and for anyone but its owner a session does not exist: no answer can
tell another user's session from a free id, because nothing ever looks it up. Without
users (``AUTH_MODE`` none or token) the two ids are the same, as they always were.

Everything behind the socket and the HTTP views works with the server's id; the
client's id is put back into what they send (:class:`Names`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from chat.auth import Identity
from chat.models import ChatSession

#: ``u`` and 47 hex digits of SHA-256: a valid session id (1-64 of ``A-Za-z0-9_-``).
_DIGITS = 47


def server_id(identity: Identity, session_id: str) -> str:
    """The id the server keys ``identity``'s session ``session_id`` by."""
    if not identity.user:
        return session_id
    digest = hashlib.sha256(f"{identity.user}\n{session_id}".encode()).hexdigest()
    return f"u{digest[:_DIGITS]}"


async def claim(identity: Identity, session_id: str) -> str:
    """The server's id of ``identity``'s session ``session_id``, its row made if new, with
    its owner and client id (what :func:`owned` lists and the quotas count)."""
    key = server_id(identity, session_id)
    if identity.user:
        await ChatSession.objects.aget_or_create(
            session_id=key, defaults={"owner": identity.user, "public_id": session_id}
        )
    return key


async def owned(identity: Identity) -> list[ChatSession]:
    """The caller's sessions, most recently active first (without users: every one)."""
    rows = ChatSession.objects.filter(owner=identity.user).order_by("-last_active_at", "-pk")
    return [row async for row in rows]


def client_id(row: ChatSession) -> str:
    """The id the session's owner knows it by."""
    return row.public_id or row.session_id


class Names:
    """One socket's sessions: the client's id of each server id, to put back in frames."""

    def __init__(self) -> None:
        self._client_ids: dict[str, str] = {}

    def add(self, key: str, session_id: str) -> None:
        if key != session_id:
            self._client_ids[key] = session_id

    def outgoing(self, frame: dict[str, Any]) -> dict[str, Any]:
        """``frame`` with the client's session id where it carries the server's."""
        session_id = self._client_ids.get(frame.get("sessionId"))  # type: ignore[arg-type]
        return frame if session_id is None else {**frame, "sessionId": session_id}
