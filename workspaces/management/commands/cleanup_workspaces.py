"""``manage.py cleanup_workspaces``: delete workspace copies nobody has touched for a while,
and stored blobs no manifest holds."""

from __future__ import annotations

from argparse import ArgumentParser
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from workspaces import cleanup


class Command(BaseCommand):
    """Remove unleased workspaces whose newest file is older than a limit, and unused blobs."""

    help = (
        "Delete this server's copies of workspaces whose newest file is older than "
        "--older-than hours (default WORKSPACE_CLEANUP_HOURS); the database keeps their "
        "files and undo states, and a copy is rebuilt when its session opens again. "
        "Workspaces leased by a live server process are kept. Then delete the stored "
        "blobs no manifest holds. A workspace that cannot be removed is reported and the "
        "others are still removed; the command then exits non-zero."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Declare ``--older-than`` and ``--dry-run``."""
        parser.add_argument(
            "--older-than",
            type=float,
            default=None,
            metavar="HOURS",
            help="Age in hours of the newest file (default: WORKSPACE_CLEANUP_HOURS).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="List what would be removed without removing anything.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        """Find stale workspaces and unreferenced blobs, remove them (unless dry run) and
        report bytes freed.

        Each workspace is handled on its own: one that fails is named on stderr, the
        rest go on, and a :class:`CommandError` at the end makes the exit status non-zero.
        """
        hours = options["older_than"]
        if hours is None:
            hours = float(settings.WORKSPACE_CLEANUP_HOURS)
        if not hours >= 0:  # also refuses NaN
            raise CommandError(f"--older-than must be zero or more hours, got {hours}")
        dry_run: bool = options["dry_run"]
        action = "inspect" if dry_run else "remove"
        freed = 0
        failed: list[str] = []
        for session_id in cleanup.session_ids():
            try:
                workspace = cleanup.find_stale(session_id=session_id, older_than_hours=hours)
                if workspace is None or (
                    not dry_run and not cleanup.remove_stale(workspace=workspace)
                ):
                    continue
            # Whatever went wrong with one workspace (a disk error, or a bug like the
            # RecursionError of a deep tree this once was) must not stop the others.
            except Exception as exc:
                failed.append(session_id)
                self.stderr.write(f"could not {action} {session_id}: {type(exc).__name__}: {exc}")
                continue
            newest = datetime.fromtimestamp(workspace.newest_mtime, UTC).isoformat()
            verb = "would remove" if dry_run else "removed"
            self.stdout.write(
                f"{verb} {workspace.session_id} ({workspace.bytes} bytes, newest file {newest})"
            )
            freed += workspace.bytes
        verb = "would free" if dry_run else "freed"
        self.stdout.write(f"{verb} {freed} bytes")
        if dry_run:
            blobs, blob_bytes = cleanup.unreferenced_blobs()
        else:
            blobs, blob_bytes = cleanup.remove_unreferenced_blobs()
        verb = "would remove" if dry_run else "removed"
        self.stdout.write(
            f"{verb} {blobs} unreferenced blob(s) from the database ({blob_bytes} bytes)"
        )
        if failed:
            what = "workspace" if len(failed) == 1 else "workspaces"
            raise CommandError(f"could not {action} {len(failed)} {what}: {', '.join(failed)}")
