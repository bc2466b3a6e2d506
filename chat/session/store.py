"""Reads and writes of the chat's database rows, for the session runner."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import F
from django.utils import timezone

from chat.exceptions import NothingToUndo
from chat.models import ChatSession, TurnOutcome, TurnRecord

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
        resume_at="",
        message_count=F("message_count") + 1,
        cost_usd=F("cost_usd") + cost_usd,
        last_active_at=timezone.now(),
    )


async def record_outcome(
    session_id: str, seq: int, client_message_id: str | None, frame: dict[str, Any]
) -> None:
    """Remember the session's seq and, for a turn with a client id, its terminal frame."""
    record = await touch(session_id)
    await record_seq(session_id, seq)
    if not client_message_id:
        return
    await TurnOutcome.objects.aupdate_or_create(
        session=record, client_message_id=client_message_id, defaults={"frame": frame}
    )
    stale = TurnOutcome.objects.filter(session=record).order_by("-created_at", "-pk")
    keep = [pk async for pk in stale.values_list("pk", flat=True)[:REMEMBERED_OUTCOMES]]
    await TurnOutcome.objects.filter(session=record).exclude(pk__in=keep).adelete()


async def record_seq(session_id: str, seq: int) -> None:
    """Remember the seq of the session's latest event: numbering goes on from it on any
    server, also when the events themselves are gone."""
    await ChatSession.objects.filter(session_id=session_id).aupdate(last_seq=seq)


async def outcome(session_id: str, client_message_id: str) -> dict[str, Any] | None:
    """The terminal frame of the turn that ran for ``client_message_id``, if any."""
    found = await TurnOutcome.objects.filter(
        session__session_id=session_id, client_message_id=client_message_id
    ).afirst()
    return found.frame if found else None


async def start_turn(session_id: str, state_id: str, client_message_id: str | None) -> None:
    """A turn starts; ``state_id`` names the workspace state kept from before it."""
    record = await touch(session_id)
    await TurnRecord.objects.acreate(
        session=record,
        state_id=state_id,
        client_message_id=client_message_id or "",
        finished=False,
    )


async def unfinished_turns(session_id: str) -> list[TurnRecord]:
    """The session's turns that started and have no stored end (their server died)."""
    found = TurnRecord.objects.filter(session__session_id=session_id, finished=False)
    return [record async for record in found]


async def finish_turn(
    state_id: str,
    *,
    resume_at: str | None,
    client_message_id: str | None,
    counted: bool,
    cost_usd: float = 0.0,
    summary: dict[str, Any] | None = None,
) -> None:
    """What undoing the turn must know: where its conversation ends (its last assistant
    message), its client id, and whether it was counted in the message count; what it
    cost (the owner's spend per day); and how it ended, from ``summary`` (the fields of
    its ``turn ended`` log line, :meth:`chat.session.turn.Turn.summary`)."""
    ended = summary or {}
    await TurnRecord.objects.filter(state_id=state_id).aupdate(
        resume_at=resume_at or "",
        client_message_id=client_message_id or "",
        counted=counted,
        finished=True,
        cost_usd=cost_usd,
        outcome=str(ended.get("outcome", ""))[:40],
        duration_ms=ended.get("durationMs"),
        first_text_ms=ended.get("firstTextMs"),
        input_tokens=ended.get("inputTokens"),
        output_tokens=ended.get("outputTokens"),
    )


@dataclass(frozen=True)
class UndoPlan:
    """What undoing the last turns takes: the state to restore, where to resume."""

    turns: int
    state_id: str
    resume_at: str  # "" with no earlier turn to keep: the conversation starts afresh
    undone: tuple[int, ...]
    counted: int  # how many of the undone turns the message count holds
    client_message_ids: tuple[str, ...]


async def plan_undo(session_id: str, turns: int, kept_states: list[str]) -> UndoPlan:
    """How to undo the last ``turns`` turns; :class:`NothingToUndo` if they are not all kept."""
    records = [r async for r in TurnRecord.objects.filter(session__session_id=session_id)]
    undone, kept = records[len(records) - turns :], records[: len(records) - turns]
    if not records or len(undone) < turns or undone[0].state_id not in kept_states:
        available = sum(1 for r in records if r.state_id in kept_states)
        raise NothingToUndo(
            f"Cannot undo {turns} turn(s): {available} can be undone in this session."
        )
    resume_at = next((r.resume_at for r in reversed(kept) if r.resume_at), "")
    return UndoPlan(
        turns=turns,
        state_id=undone[0].state_id,
        resume_at=resume_at,
        undone=tuple(r.pk for r in undone),
        counted=sum(1 for r in undone if r.counted),
        client_message_ids=tuple(r.client_message_id for r in undone if r.client_message_id),
    )


async def apply_undo(session_id: str, plan: UndoPlan) -> int:
    """Forget the undone turns and point the conversation at the kept part; new count.

    Their remembered outcomes go too: resending an undone message runs it again.
    """
    await TurnRecord.objects.filter(pk__in=plan.undone).adelete()
    record = await touch(session_id)
    await TurnOutcome.objects.filter(
        session=record, client_message_id__in=plan.client_message_ids
    ).adelete()
    count = max(0, record.message_count - plan.counted)
    changes: dict[str, Any] = {"message_count": count, "resume_at": plan.resume_at}
    if not plan.resume_at:
        changes["sdk_session_id"] = ""  # nothing kept: the next turn starts a new conversation
    await ChatSession.objects.filter(pk=record.pk).aupdate(**changes)
    return count
