"""Per-socket and per-client limits: a frame rate, sockets per client address."""

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
    """Open sockets per client address: per process here, across a fleet in Redis."""

    async def open(self, client: str, limit: int) -> bool:
        """Count a new socket from ``client``; False (and not counted) past ``limit``."""

    async def close(self, client: str) -> None:
        """A socket from ``client`` closed."""


class SocketCounter:
    """Open sockets per client address, in this server process."""

    def __init__(self) -> None:
        self._open: Counter[str] = Counter()

    async def open(self, client: str, limit: int) -> bool:
        """Count a new socket from ``client``; False (and not counted) past ``limit``."""
        if self._open[client] >= limit:
            return False
        self._open[client] += 1
        return True

    async def close(self, client: str) -> None:
        """A socket from ``client`` closed."""
        self._open[client] -= 1
        if self._open[client] <= 0:
            del self._open[client]
