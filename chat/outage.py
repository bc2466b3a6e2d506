"""A loop's outage: the failures of something it retries, logged once, with backoff.

The loops that follow Redis for as long as the server runs (a session's event reader,
the router's listener and watcher) must neither stop nor flood the log while Redis is
away: the first failure is logged, attempts then wait 0.1 s, doubling to 2 s, and the
first success after is logged too.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

logger = logging.getLogger("dashboard_ai.chat")

FIRST_PAUSE_SECONDS = 0.1
MAX_PAUSE_SECONDS = 2.0


class Outage:
    """The failures of one loop since its last success."""

    def __init__(self, what: str, **extra: Any) -> None:
        self.what = what  # what fails, for the log: "reading session events from Redis"
        self.extra = extra
        self.pause = 0.0

    async def wait(self, exc: BaseException) -> None:
        """Log the first failure of an outage; wait before the next attempt."""
        if not self.pause:
            logger.warning(
                f"{self.what} failed; retrying", extra={**self.extra, "error": type(exc).__name__}
            )
        self.pause = min(MAX_PAUSE_SECONDS, self.pause * 2 or FIRST_PAUSE_SECONDS)
        await asyncio.sleep(self.pause)

    def over(self) -> None:
        """An attempt worked: the outage, if any, is over."""
        if self.pause:
            logger.info(f"{self.what} works again", extra=self.extra)
            self.pause = 0.0
