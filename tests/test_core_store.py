"""Undo planning and the remembered outcomes, on the test database."""

from __future__ import annotations

import pytest

from chat.exceptions import NothingToUndo
from chat.models import ChatSession, TurnOutcome, TurnRecord
from chat.session import store

# Transactional: the async ORM runs on a thread of its own, outside a test transaction.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.database]

SESSION = "s1"


async def run_turn(state_id: str, *, resume_at: str = "", client_id: str = "", counted=True):
    """A finished turn as the runner records it (counted: it reached a result)."""
    await store.start_turn(SESSION, state_id, client_id)
    if counted:
        await store.record_turn(SESSION, "sdk-conversation", 0.01)
    await store.finish_turn(
        state_id, resume_at=resume_at, client_message_id=client_id, counted=counted
    )
    if client_id:
        await store.record_outcome(SESSION, 1, client_id, {"type": "complete", "id": client_id})


async def session() -> ChatSession:
    return await ChatSession.objects.aget(session_id=SESSION)


async def test_undoing_the_last_turn_restores_its_state_and_resumes_at_the_one_before() -> None:
    await run_turn("a", resume_at="uuid-a", client_id="m1")
    await run_turn("b", resume_at="uuid-b", client_id="m2")

    plan = await store.plan_undo(SESSION, 1, ["a", "b"])

    assert plan.turns == 1 and plan.state_id == "b" and plan.resume_at == "uuid-a"
    assert plan.counted == 1 and plan.client_message_ids == ("m2",)


async def test_undoing_several_turns_restores_the_state_before_the_first_of_them() -> None:
    await run_turn("a", resume_at="uuid-a")
    await run_turn("b", resume_at="uuid-b")
    await run_turn("c", resume_at="uuid-c")

    plan = await store.plan_undo(SESSION, 2, ["a", "b", "c"])

    assert plan.state_id == "b" and plan.resume_at == "uuid-a" and len(plan.undone) == 2


async def test_the_resume_point_skips_kept_turns_that_ended_without_one() -> None:
    await run_turn("a", resume_at="uuid-a")
    await run_turn("b", resume_at="", counted=False)  # stopped before any text
    await run_turn("c", resume_at="uuid-c")

    plan = await store.plan_undo(SESSION, 1, ["a", "b", "c"])

    assert plan.resume_at == "uuid-a"


async def test_undoing_every_turn_starts_the_conversation_afresh() -> None:
    await run_turn("a", resume_at="uuid-a")

    plan = await store.plan_undo(SESSION, 1, ["a"])

    assert plan.resume_at == ""


async def test_only_turns_that_reached_a_result_are_taken_off_the_count() -> None:
    await run_turn("a", resume_at="uuid-a")
    await run_turn("b", counted=False)
    await run_turn("c", resume_at="uuid-c")

    plan = await store.plan_undo(SESSION, 2, ["a", "b", "c"])

    assert plan.counted == 1


@pytest.mark.parametrize(
    ("turns", "kept", "available"),
    [
        (1, [], 0),  # no state kept
        (3, ["a", "b"], 2),  # more turns than the session ran
        (2, ["b"], 1),  # the state before the first undone turn is gone
    ],
)
async def test_an_undo_that_cannot_be_done_says_how_many_can(turns, kept, available) -> None:
    await run_turn("a", resume_at="uuid-a")
    await run_turn("b", resume_at="uuid-b")

    with pytest.raises(NothingToUndo, match=f"{available} can be undone"):
        await store.plan_undo(SESSION, turns, kept)


async def test_a_session_with_no_turn_has_nothing_to_undo() -> None:
    await store.touch(SESSION)

    with pytest.raises(NothingToUndo, match="0 can be undone"):
        await store.plan_undo(SESSION, 1, [])


async def test_applying_an_undo_forgets_the_turns_their_outcomes_and_their_count() -> None:
    await run_turn("a", resume_at="uuid-a", client_id="m1")
    await run_turn("b", resume_at="uuid-b", client_id="m2")
    plan = await store.plan_undo(SESSION, 1, ["a", "b"])

    count = await store.apply_undo(SESSION, plan)

    record = await session()
    assert count == 1 == record.message_count
    assert record.resume_at == "uuid-a" and record.sdk_session_id == "sdk-conversation"
    assert [r.state_id async for r in TurnRecord.objects.all()] == ["a"]
    assert await store.outcome(SESSION, "m2") is None  # resending m2 runs it again
    assert await store.outcome(SESSION, "m1") == {"type": "complete", "id": "m1"}


async def test_applying_an_undo_of_every_turn_drops_the_conversation() -> None:
    await run_turn("a", resume_at="uuid-a")
    plan = await store.plan_undo(SESSION, 1, ["a"])

    assert await store.apply_undo(SESSION, plan) == 0

    record = await session()
    assert record.sdk_session_id == "" and record.resume_at == ""


async def test_the_count_never_goes_below_zero() -> None:
    await run_turn("a", resume_at="uuid-a")
    plan = await store.plan_undo(SESSION, 1, ["a"])
    await ChatSession.objects.filter(session_id=SESSION).aupdate(message_count=0)

    assert await store.apply_undo(SESSION, plan) == 0


async def test_a_new_turn_after_a_recorded_one_resumes_at_its_end() -> None:
    await run_turn("a", resume_at="uuid-a")
    plan = await store.plan_undo(SESSION, 1, ["a"])
    await store.apply_undo(SESSION, plan)
    await ChatSession.objects.filter(session_id=SESSION).aupdate(resume_at="uuid-old")

    await store.record_turn(SESSION, "sdk-2", 0.0)

    record = await session()
    assert record.resume_at == "" and record.sdk_session_id == "sdk-2"


async def test_only_the_latest_outcomes_are_remembered(monkeypatch) -> None:
    monkeypatch.setattr(store, "REMEMBERED_OUTCOMES", 2)
    for number in range(4):
        await store.record_outcome(SESSION, number, f"m{number}", {"n": number})

    assert [await store.outcome(SESSION, f"m{n}") for n in range(4)] == [
        None,
        None,
        {"n": 2},
        {"n": 3},
    ]
    assert (await session()).last_seq == 3


async def test_an_outcome_without_a_client_id_only_moves_the_seq() -> None:
    await store.record_outcome(SESSION, 7, None, {"n": 1})

    assert (await session()).last_seq == 7
    assert await TurnOutcome.objects.acount() == 0


async def test_outcomes_belong_to_their_session() -> None:
    await store.record_outcome(SESSION, 1, "m1", {"n": 1})

    assert await store.outcome("other", "m1") is None
