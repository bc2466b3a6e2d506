"""The agent's conversations in the database: the SDK's ``SessionStore`` on the ORM.

The CLI still writes its transcript under its config directory; with
``session_store=`` the SDK also hands every line it writes to :meth:`TranscriptStore.append`,
and a ``resume`` loads the conversation back with :meth:`TranscriptStore.load` (into a
temporary transcript the CLI resumes from). So any server on the same database can
continue a conversation, whatever its own disk holds. The HTTP history reads and
removes conversations through the same store, with the SDK's store helpers.

Rows: one :class:`chat.models.Transcript` per key (its write time and, for a main
transcript, the SDK's summary sidecar) and one :class:`chat.models.TranscriptEntry` per
line. An append is one transaction; every call runs on the ORM's thread
(``sync_to_async``), never on the event loop.
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

from asgiref.sync import sync_to_async
from claude_agent_sdk import (
    SessionKey,
    SessionListSubkeysKey,
    SessionStore,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
    fold_session_summary,
)
from django.db import transaction

from chat.models import Transcript, TranscriptEntry

#: The ``subpath`` of a main transcript (the SDK omits it; "" is never a valid subpath).
MAIN = ""


class TranscriptStore(SessionStore):
    """The SDK's :class:`~claude_agent_sdk.SessionStore`, every method included, on the ORM.

    It holds no state of its own: any number of them, in any process, see the same
    transcripts. Passes ``claude_agent_sdk.testing.run_session_store_conformance``.
    """

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        """Add ``entries`` to the transcript, in order, in one transaction.

        An entry whose ``uuid`` the transcript already holds is skipped (the SDK resends
        a batch whose append failed); entries without one are always added.
        """
        if entries:
            await sync_to_async(_append)(key=key, entries=entries)

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        """The transcript's entries in append order; ``None`` if it was never written."""
        return await sync_to_async(_load)(key=key)

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        """The main transcripts of ``project_key``, with their write times (epoch ms)."""
        rows = Transcript.objects.filter(project_key=project_key, subpath=MAIN)
        return [
            {"session_id": session_id, "mtime": mtime}
            async for session_id, mtime in rows.values_list("session_id", "mtime_ms")
        ]

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        """The summary sidecars of ``project_key``'s main transcripts, as the SDK folded them."""
        rows = Transcript.objects.filter(project_key=project_key, subpath=MAIN).exclude(summary="")
        return [
            {"session_id": session_id, "mtime": mtime, "data": json.loads(summary)}
            async for session_id, mtime, summary in rows.values_list(
                "session_id", "mtime_ms", "summary"
            )
        ]

    async def delete(self, key: SessionKey) -> None:
        """Remove a transcript; a main transcript's key removes its subagents' too."""
        rows = Transcript.objects.filter(
            project_key=key["project_key"], session_id=key["session_id"]
        )
        subpath = key.get("subpath")
        if subpath:
            rows = rows.filter(subpath=subpath)
        await rows.adelete()

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        """The subpaths (subagent transcripts) under a session, the main one left out."""
        rows = Transcript.objects.filter(
            project_key=key["project_key"], session_id=key["session_id"]
        ).exclude(subpath=MAIN)
        return [subpath async for subpath in rows.values_list("subpath", flat=True)]


def _lookup(key: SessionKey) -> dict[str, str]:
    return {
        "project_key": key["project_key"],
        "session_id": key["session_id"],
        "subpath": key.get("subpath") or MAIN,
    }


def _append(*, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
    rows = [TranscriptEntry(uuid=_uuid_of(entry), entry=_dumps(entry)) for entry in entries]
    with transaction.atomic():
        transcript = _locked_transcript(key)
        for row in rows:
            row.transcript = transcript
        TranscriptEntry.objects.bulk_create(rows, ignore_conflicts=True)
        # Strictly later than the last write, so that every append shows as newer.
        changes: dict[str, Any] = {"mtime_ms": max(_now_ms(), transcript.mtime_ms + 1)}
        if transcript.subpath == MAIN:  # a subagent's lines are not the session's summary
            changes["summary"] = _dumps(_folded(transcript, key, entries)["data"])
        Transcript.objects.filter(pk=transcript.pk).update(**changes)


def _locked_transcript(key: SessionKey) -> Transcript:
    """The key's row, created if new, locked until the transaction ends.

    The lock serialises the read-fold-write of the summary between servers appending
    to one transcript at once (PostgreSQL; SQLite writes one transaction at a time).
    """
    lookup = _lookup(key)
    found = Transcript.objects.select_for_update().filter(**lookup).first()
    if found is None:
        # Two first appends at once: one inserts, the other's insert does nothing.
        Transcript.objects.bulk_create([Transcript(**lookup)], ignore_conflicts=True)
        found = Transcript.objects.select_for_update().get(**lookup)
    return found


def _folded(
    transcript: Transcript, key: SessionKey, entries: list[SessionStoreEntry]
) -> SessionSummaryEntry:
    previous: SessionSummaryEntry | None = None
    if transcript.summary:
        previous = {
            "session_id": transcript.session_id,
            "mtime": transcript.mtime_ms,
            "data": json.loads(transcript.summary),
        }
    return fold_session_summary(previous, key, entries)


def _load(*, key: SessionKey) -> list[SessionStoreEntry] | None:
    texts = (
        TranscriptEntry.objects.filter(**{f"transcript__{k}": v for k, v in _lookup(key).items()})
        .order_by("pk")
        .values_list("entry", flat=True)
    )
    # A transcript row exists only once an append added lines, so no lines: never written.
    return [cast(SessionStoreEntry, json.loads(text)) for text in texts] or None


def _uuid_of(entry: SessionStoreEntry) -> str | None:
    uuid = entry.get("uuid")
    return uuid if isinstance(uuid, str) and uuid else None


def _dumps(value: object) -> str:
    # ASCII escapes keep any string storable, a lone surrogate included.
    return json.dumps(value, separators=(",", ":"))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
