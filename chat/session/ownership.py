"""Which server owns a session: the one that runs its CLI, under a lease.

:class:`Ownership` is the seam. :class:`LocalOwnership` is the one-process
implementation: this process owns every session it opens. A fleet's
(:class:`chat.cluster.leases.RedisOwnership`) keeps each lease in Redis with an expiry
the owner renews while it lives and a fencing token that grows with every new owner,
so a stale owner (paused, partitioned) is refused once another holds the session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Lease:
    """This server's ownership of a session, under fencing token ``token``."""

    session_id: str
    server_id: str
    token: int


class LeaseLost(Exception):
    """The lease is no longer this server's: another owner holds, or may hold, the session."""


#: Called with a lease this server found it no longer holds (a renewal failed).
LossCallback = Callable[[Lease], None]


class Ownership(Protocol):
    """The leases of this server, and who owns the sessions it does not."""

    @property
    def server_id(self) -> str:
        """This server's id (``SERVER_ID``)."""

    async def acquire(self, session_id: str) -> Lease | None:
        """This server's lease on the session: the one it holds, or a new one with a
        higher fencing token when nobody holds it; ``None`` when another server does."""

    async def owner(self, session_id: str) -> str | None:
        """The id of the server that holds the session's lease, if any."""

    async def release(self, lease: Lease) -> None:
        """Give the lease up now (only while it is still this server's)."""

    def holds(self, lease: Lease) -> bool:
        """Whether the lease is still this server's, as far as its renewals know."""

    def on_lost(self, callback: LossCallback) -> None:
        """Call ``callback`` with each lease a renewal finds taken or expired."""

    async def start(self) -> None:
        """Begin renewing the leases this server holds."""

    async def close(self) -> None:
        """Stop renewing and release every lease at once (a graceful leave)."""

    @property
    def owned(self) -> int:
        """How many sessions this server owns."""


class LocalOwnership:
    """One process owns every session it opens; nothing expires or is taken over."""

    def __init__(self, server_id: str) -> None:
        self._server_id = server_id
        self._leases: dict[str, Lease] = {}
        self._tokens: dict[str, int] = {}

    @property
    def server_id(self) -> str:
        return self._server_id

    async def acquire(self, session_id: str) -> Lease | None:
        lease = self._leases.get(session_id)
        if lease is None:
            token = self._tokens[session_id] = self._tokens.get(session_id, 0) + 1
            lease = self._leases[session_id] = Lease(session_id, self._server_id, token)
        return lease

    async def owner(self, session_id: str) -> str | None:
        return self._server_id if session_id in self._leases else None

    async def release(self, lease: Lease) -> None:
        if self._leases.get(lease.session_id) == lease:
            del self._leases[lease.session_id]

    def holds(self, lease: Lease) -> bool:
        return self._leases.get(lease.session_id) == lease

    def on_lost(self, callback: LossCallback) -> None:
        """Nothing is ever lost in one process."""

    async def start(self) -> None:
        """Nothing to renew."""

    async def close(self) -> None:
        self._leases.clear()

    @property
    def owned(self) -> int:
        return len(self._leases)
