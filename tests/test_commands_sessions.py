"""``manage.py sessions``: stored sessions with their age, size, messages and cost."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from chat.management.commands.sessions import age, size
from chat.models import ChatSession
from workspaces import storage
from workspaces.snapshots import FileState

pytestmark = [pytest.mark.django_db, pytest.mark.database]


def stored(session_id: str, files: dict[str, bytes]) -> None:
    listing = {path: FileState.of(data).sha256 for path, data in files.items()}
    storage.record(session_id, listing, {FileState.of(d).sha256: d for d in files.values()})


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("sessions", *args, stdout=out)
    return out.getvalue()


def test_sessions_are_listed_most_recent_first_with_their_totals() -> None:
    old = ChatSession.objects.create(session_id="old", message_count=3, cost_usd=0.25)
    ChatSession.objects.filter(pk=old.pk).update(last_active_at=timezone.now() - timedelta(days=2))
    ChatSession.objects.create(session_id="new", message_count=1, cost_usd=0.01)
    stored("old", {"a.txt": b"x" * 2000, "b.txt": b"yy"})
    stored("new", {"a.txt": b"x" * 2000})  # the same blob: counted for each session

    rows = [json.loads(line) for line in run("--json").splitlines()]

    assert [r["sessionId"] for r in rows] == ["new", "old"]
    assert (rows[1]["files"], rows[1]["bytes"]) == (2, 2002)
    assert (rows[0]["files"], rows[0]["bytes"]) == (1, 2000)
    assert (rows[1]["messageCount"], rows[1]["costUsd"]) == (3, 0.25)
    table = run().splitlines()
    assert table[0].split()[:3] == ["session", "age", "used"]
    assert table[1].split()[0] == "new" and table[2].split()[0] == "old"
    assert "2.0 KiB" in table[2] and " 2d " in f" {table[2]} "


def test_a_session_without_stored_files_and_the_limit() -> None:
    for number in range(3):
        ChatSession.objects.create(session_id=f"s{number}")
    lines = run("--limit", "2").splitlines()
    assert len(lines) == 4 and lines[-1] == "... 1 more (--limit)"
    assert all(json.loads(line)["files"] == 0 for line in run("--json").splitlines())


def test_ages_and_sizes_read_at_a_glance() -> None:
    now = timezone.now()
    assert [age(now - timedelta(seconds=s), now) for s in (5, 90, 7200, 3 * 86400)] == [
        "5s",
        "1m",
        "2h",
        "3d",
    ]
    assert [size(n) for n in (10, 2048, 3 * 1024 * 1024)] == ["10 B", "2.0 KiB", "3.0 MiB"]
