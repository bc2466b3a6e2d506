"""Each user's quotas: live sessions, turns running at once, and model spend a day.

They apply only when the server has users (``AUTH_MODE`` jwt or django); a limit of 0
is none. The counts are :class:`chat.limits.ClientCounter` keyed by user, so in a
fleet (Redis-backed counters) a quota means the same on one server and on ten. Spend
is summed from the turns' recorded costs (``TurnRecord.cost_usd``) since midnight UTC;
a turn that would start at or over the day's limit is refused, and
``CLAUDE_MAX_BUDGET_USD`` still caps what one turn may cost.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.db.models import Sum

from chat.exceptions import QuotaExceeded
from chat.limits import ClientCounter, SocketCounter
from chat.models import TurnRecord


async def spent_today(user: str) -> float:
    """What ``user``'s turns have cost since midnight UTC, in USD."""
    midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    found = await TurnRecord.objects.filter(
        session__owner=user, created_at__gte=midnight
    ).aaggregate(total=Sum("cost_usd"))
    return float(found["total"] or 0.0)


class UserQuotas:
    """Counts each user's live sessions and running turns against their limits."""

    def __init__(
        self, sessions: ClientCounter | None = None, turns: ClientCounter | None = None
    ) -> None:
        self.sessions = sessions or SocketCounter()
        self.turns = turns or SocketCounter()

    async def open_session(self, user: str) -> bool:
        """Count a new live session of ``user``; False at ``MAX_SESSIONS_PER_USER``."""
        limit = settings.MAX_SESSIONS_PER_USER
        if not user or not limit:
            return True
        return await self.sessions.open(user, limit)

    async def close_session(self, user: str) -> None:
        if user and settings.MAX_SESSIONS_PER_USER:
            await self.sessions.close(user)

    async def start_turn(self, user: str) -> None:
        """Count a new turn of ``user``, or raise :class:`QuotaExceeded`."""
        if not user:
            return
        daily = settings.MAX_USD_PER_USER_PER_DAY
        if daily and await spent_today(user) >= daily:
            raise QuotaExceeded(
                f"You have used today's model budget (${daily:g}); it renews at midnight UTC."
            )
        limit = settings.MAX_TURNS_PER_USER
        if limit and not await self.turns.open(user, limit):
            raise QuotaExceeded(
                f"You have {limit} turns running, the most at once; wait for one to end."
            )

    async def end_turn(self, user: str) -> None:
        if user and settings.MAX_TURNS_PER_USER:
            await self.turns.close(user)

    async def start(self) -> None:
        await self.sessions.start()
        await self.turns.start()

    async def stop(self) -> None:
        await self.sessions.stop()
        await self.turns.stop()
