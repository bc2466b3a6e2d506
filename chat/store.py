"""Reads and writes of the chat's database rows, for the session runner."""

from __future__ import annotations

from typing import Any

from django.db.models import F
from django.utils import timezone

from chat.models import ChatSession, TurnOutcome

REMEMBERED_OUTCOMES = 100


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


async def record_outcome(
    session_id: str, seq: int, client_message_id: str | None, frame: dict[str, Any]
) -> None:
    """Remember the session's seq and, for a turn with a client id, its terminal frame."""
    record = await touch(session_id)
    await ChatSession.objects.filter(pk=record.pk).aupdate(last_seq=seq)
    if not client_message_id:
        return
    await TurnOutcome.objects.aupdate_or_create(
        session=record, client_message_id=client_message_id, defaults={"frame": frame}
    )
    stale = TurnOutcome.objects.filter(session=record).order_by("-created_at", "-pk")
    keep = [pk async for pk in stale.values_list("pk", flat=True)[:REMEMBERED_OUTCOMES]]
    await TurnOutcome.objects.filter(session=record).exclude(pk__in=keep).adelete()


async def outcome(session_id: str, client_message_id: str) -> dict[str, Any] | None:
    """The terminal frame of the turn that ran for ``client_message_id``, if any."""
    found = await TurnOutcome.objects.filter(
        session__session_id=session_id, client_message_id=client_message_id
    ).afirst()
    return found.frame if found else None
