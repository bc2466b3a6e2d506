"""Reads and writes of :class:`ChatSession` rows, for the session runner."""

from __future__ import annotations

from django.db.models import F
from django.utils import timezone

from chat.models import ChatSession


async def touch(session_id: str) -> ChatSession:
    """The session's row, created on first use, marked active now."""
    record, created = await ChatSession.objects.aget_or_create(session_id=session_id)
    if not created:
        await ChatSession.objects.filter(pk=record.pk).aupdate(last_active_at=timezone.now())
    return record


async def record_turn(session_id: str, sdk_session_id: str, cost_usd: float) -> None:
    """Count a finished turn and remember which SDK conversation to resume."""
    await ChatSession.objects.filter(session_id=session_id).aupdate(
        sdk_session_id=sdk_session_id,
        message_count=F("message_count") + 1,
        cost_usd=F("cost_usd") + cost_usd,
        last_active_at=timezone.now(),
    )
