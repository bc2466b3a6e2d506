"""The agent's transcripts in the database: the SDK's own conformance suite and more."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from typing import Any

import pytest
from claude_agent_sdk import (
    ClaudeSDKClient,
    SessionKey,
    SessionStore,
    fork_session_via_store,
    get_session_messages_from_store,
    list_sessions_from_store,
    project_key_for_directory,
)
from claude_agent_sdk.testing import run_session_store_conformance

from chat.agent.options import build_options
from chat.agent.transcript_store import TranscriptStore
from chat.models import Transcript, TranscriptEntry

# Transactional: the async ORM runs on a thread of its own, outside a test transaction.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.database]

OPTIONAL_METHODS = ("list_sessions", "list_session_summaries", "delete", "list_subkeys")
KEY: SessionKey = {"project_key": "-srv-workspaces-s1", "session_id": str(uuid.uuid4())}


async def empty_store() -> TranscriptStore:
    """A store on an empty database: each contract of the suite starts from nothing."""
    await Transcript.objects.all().adelete()
    return TranscriptStore()


def line(kind: str = "user", **fields: Any) -> Any:
    return {"type": kind, "uuid": str(uuid.uuid4()), **fields}


def prompt(text: str, parent: str | None = None) -> Any:
    return line(
        "user",
        parentUuid=parent,
        sessionId=KEY["session_id"],
        timestamp="2026-12-01T10:00:00.000Z",
        message={"role": "user", "content": text},
    )


def answer(text: str, parent: str) -> Any:
    return line(
        "assistant",
        parentUuid=parent,
        sessionId=KEY["session_id"],
        timestamp="2026-12-01T10:00:01.000Z",
        message={"role": "assistant", "content": [{"type": "text", "text": text}]},
    )


async def test_the_store_passes_the_sdk_conformance_suite_with_every_optional_method() -> None:
    store = TranscriptStore()
    # The suite skips the contracts of a method the store does not override.
    assert all(
        getattr(type(store), name) is not getattr(SessionStore, name) for name in OPTIONAL_METHODS
    )

    await run_session_store_conformance(empty_store)


async def test_entries_come_back_equal_whatever_their_characters() -> None:
    store = TranscriptStore()
    odd = [
        line(text="NUL \x00 in a file the agent read"),
        line(text="été 数据 🍍", nested={"list": [1, 2.5, None, True], "empty": {}}),
        line(text="a lone surrogate \ud800"),
        {"type": "custom-title", "customTitle": "no uuid"},
    ]

    await store.append(KEY, odd)

    assert await store.load(KEY) == odd


async def test_a_resent_batch_is_not_stored_twice_but_lines_without_uuid_are() -> None:
    store = TranscriptStore()
    first, second = line(n=1), line(n=2)
    untagged = {"type": "tag", "tag": "x"}

    await store.append(KEY, [first, untagged])
    await store.append(KEY, [first, untagged, second])  # a retry that partly landed before

    assert await store.load(KEY) == [first, untagged, untagged, second]
    assert await TranscriptEntry.objects.acount() == 4


async def test_every_append_is_newer_than_the_last() -> None:
    store = TranscriptStore()
    times = []
    for n in range(5):
        await store.append(KEY, [line(n=n)])
        times.append((await store.list_sessions(KEY["project_key"]))[0]["mtime"])

    assert times == sorted(set(times))


async def test_appends_at_once_keep_each_batch_whole_and_in_call_order() -> None:
    store = TranscriptStore()
    batches = [[line(batch=b, n=n) for n in range(20)] for b in range(8)]

    await asyncio.gather(*(store.append(KEY, batch) for batch in batches))

    loaded = await store.load(KEY)
    assert loaded is not None
    assert loaded == [entry for batch in batches for entry in batch]


async def test_the_sdk_reads_a_conversation_back_from_the_store(tmp_path) -> None:
    store = TranscriptStore()
    workspace = tmp_path / "workspaces" / "s1"
    workspace.mkdir(parents=True)
    key: SessionKey = {
        "project_key": project_key_for_directory(workspace),
        "session_id": KEY["session_id"],
    }
    question = prompt("remember pineapple")
    reply = answer("Noted: pineapple.", question["uuid"])
    await store.append(key, [question, reply])

    messages = await get_session_messages_from_store(
        store, KEY["session_id"], directory=str(workspace)
    )
    listed = await list_sessions_from_store(store, directory=str(workspace))
    fork = await fork_session_via_store(
        store, KEY["session_id"], directory=str(workspace), up_to_message_id=question["uuid"]
    )
    forked = await get_session_messages_from_store(store, fork.session_id, directory=str(workspace))

    assert [(m.type, m.uuid) for m in messages] == [
        ("user", question["uuid"]),
        ("assistant", reply["uuid"]),
    ]
    assert [(s.session_id, s.first_prompt) for s in listed] == [
        (KEY["session_id"], "remember pineapple")
    ]
    assert [m.message for m in forked] == [question["message"]]
    assert sorted(s["session_id"] for s in await store.list_sessions(key["project_key"])) == (
        sorted([KEY["session_id"], fork.session_id])
    )


async def test_deleting_a_session_leaves_no_rows_and_other_sessions_alone() -> None:
    store = TranscriptStore()
    other: SessionKey = {**KEY, "session_id": str(uuid.uuid4())}
    await store.append(KEY, [line(), line()])
    await store.append({**KEY, "subpath": "subagents/agent-1"}, [line()])
    await store.append(other, [line()])

    await store.delete(KEY)

    assert await store.load(KEY) is None
    assert await store.load(other) is not None
    assert await Transcript.objects.acount() == 1
    assert await TranscriptEntry.objects.acount() == 1


async def test_the_agent_mirrors_eagerly_and_the_sdk_refuses_file_checkpointing_beside_it(
    tmp_path, settings
) -> None:
    settings.DATA_DIR = tmp_path / "var"
    options = build_options(session_id="s1", workspace=tmp_path / "workspaces" / "s1")
    checkpointing = dataclasses.replace(options, enable_file_checkpointing=True)

    assert isinstance(options.session_store, TranscriptStore)
    assert options.session_store_flush == "eager"
    assert options.enable_file_checkpointing is False
    with pytest.raises(ValueError, match="enable_file_checkpointing"):
        await ClaudeSDKClient(checkpointing).connect()  # refused before any CLI starts
