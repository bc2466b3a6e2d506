"""Per-socket and per-client limits: a frame rate; sockets and live sessions per client address."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol


@dataclass
class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; one token per frame."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    updated: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self) -> bool:
        """Spend a token; False when there is none (the frame is refused)."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class ClientCounter(Protocol):
    """What a client address holds (its sockets, or its live sessions), counted against a
    limit: per process here, across every server sharing ``REDIS_URL`` in
    :class:`chat.cluster.counters.RedisClientCounter`.

    :meth:`start` and :meth:`stop` begin and end what keeps a shared count true (they are
    not :meth:`close`, which is one thing of a client ending).
    """

    async def open(self, client: str, limit: int) -> bool:
        """Count one more for ``client``; False (and not counted) at ``limit`` already."""

    async def close(self, client: str) -> None:
        """One thing counted for ``client`` ended."""

    async def holders(self, client: str) -> list[str]:
        """The other servers that hold something of ``client`` (their ids)."""

    async def start(self) -> None:
        """Begin keeping this server's counts known (once, on the server's loop)."""

    async def stop(self) -> None:
        """This server leaves: its counts no longer count anywhere."""


class SocketCounter:
    """What each client address holds, in this server process (a :class:`ClientCounter`).

    The runtime counts sockets with one, and the registry live sessions with another.
    """

    def __init__(self) -> None:
        self._open: Counter[str] = Counter()

    async def open(self, client: str, limit: int) -> bool:
        """Count one more for ``client``; False (and not counted) at ``limit`` already."""
        if self._open[client] >= limit:
            return False
        self._open[client] += 1
        return True

    async def close(self, client: str) -> None:
        """One thing counted for ``client`` ended."""
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]

    async def holders(self, client: str) -> list[str]:
        """There are no other servers."""
        return []

    async def start(self) -> None:
        """Nothing to keep: the counts live and die with the process."""

    async def stop(self) -> None:
        """Nothing to hand back: the counts live and die with the process."""
