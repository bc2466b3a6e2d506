"""``manage.py sessions``: the stored chat sessions, most recently used first."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from chat.models import ChatSession
from workspaces import storage


def age(moment: datetime, now: datetime) -> str:
    """How long ago ``moment`` was, in its largest unit: 45s, 12m, 3h, 9d."""
    seconds = max(0, int((now - moment) / timedelta(seconds=1)))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def size(count: int) -> str:
    """Bytes as B, KiB or MiB, one decimal above bytes."""
    if count < 1024:
        return f"{count} B"
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / 1024 / 1024:.1f} MiB"


def listed(limit: int) -> list[dict[str, Any]]:
    """The ``limit`` most recently used sessions, with their workspace's files and bytes."""
    records = list(ChatSession.objects.order_by("-last_active_at")[:limit])
    sizes = storage.current_sizes([record.session_id for record in records])
    return [
        {
            "sessionId": record.session_id,
            "createdAt": record.created_at.isoformat(),
            "lastActiveAt": record.last_active_at.isoformat(),
            "messageCount": record.message_count,
            "costUsd": round(record.cost_usd, 6),
            "files": sizes.get(record.session_id, (0, 0))[0],
            "bytes": sizes.get(record.session_id, (0, 0))[1],
        }
        for record in records
    ]


class Command(BaseCommand):
    """List sessions: age, last use, workspace size, messages and model cost."""

    help = (
        "List the stored chat sessions, most recently used first: how old each is, when it "
        "was last used, its workspace's files and size, its message count and its model "
        "cost in USD. --json prints the same as JSON lines."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--limit", type=int, default=50, help="how many (default 50)")
        parser.add_argument(
            "--json", action="store_true", dest="as_json", help="one JSON object a line"
        )

    def handle(self, *args: Any, limit: int = 50, as_json: bool = False, **options: Any) -> None:
        rows = listed(limit)
        if as_json:
            for row in rows:
                self.stdout.write(json.dumps(row, separators=(",", ":")))
            return
        now = timezone.now()
        self.stdout.write(
            f"{'session':<36} {'age':>5} {'used':>5} {'files':>6} {'size':>10} {'msgs':>5}"
            f" {'cost $':>9}"
        )
        for row in rows:
            self.stdout.write(
                f"{row['sessionId']:<36} "
                f"{age(datetime.fromisoformat(row['createdAt']), now):>5} "
                f"{age(datetime.fromisoformat(row['lastActiveAt']), now):>5} "
                f"{row['files']:>6} {size(row['bytes']):>10} {row['messageCount']:>5} "
                f"{row['costUsd']:>9.4f}"
            )
        total = ChatSession.objects.count()
        if total > len(rows):
            self.stdout.write(f"... {total - len(rows)} more (--limit)")
