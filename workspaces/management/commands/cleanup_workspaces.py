"""``manage.py cleanup_workspaces``: expire sessions nobody has used for a long time,
delete workspace copies nobody has touched for a while, and stored blobs no manifest
holds."""

from __future__ import annotations

import time
from argparse import ArgumentParser
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from workspaces import cleanup, expiry

#: A long run says how far it got at most this often (seconds), on stdout.
PROGRESS_SECONDS = 10.0


class Progress:
    """Writes ``<what>: <done> of <total>`` now and then while a long loop runs."""

    def __init__(self, write: Callable[[str], None], what: str, total: int) -> None:
        self._write, self._what, self._total = write, what, total
        self._last = time.monotonic()

    def step(self, done: int) -> None:
        """``done`` items are handled; say so if the last word is old enough."""
        now = time.monotonic()
        if now - self._last >= PROGRESS_SECONDS and 0 < done < self._total:
            self._write(f"{self._what}: {done} of {self._total}")
            self._last = now


class Command(BaseCommand):
    """Expire unused sessions, remove unleased old workspace copies, then unused blobs."""

    help = (
        "Expire the sessions nobody has used for --expire-after days (default "
        "SESSION_EXPIRY_DAYS; 0: never): everything stored for them goes, in the database "
        "and on this disk. Then delete this server's copies of workspaces whose newest file "
        "is older than --older-than hours (default WORKSPACE_CLEANUP_HOURS); the database "
        "keeps their files and undo states, and a copy is rebuilt when its session opens "
        "again. Sessions and workspaces leased by a live server process are kept. Then "
        "delete the stored blobs no manifest holds. A session or workspace that cannot be "
        "removed is reported and the others are still removed; the command then exits "
        "non-zero."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        """Declare ``--expire-after``, ``--older-than`` and ``--dry-run``."""
        parser.add_argument(
            "--expire-after",
            type=float,
            default=None,
            metavar="DAYS",
            help="Days without use after which a session expires; 0: never "
            "(default: SESSION_EXPIRY_DAYS).",
        )
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
        """Expire unused sessions, remove stale copies, then unreferenced blobs (unless dry
        run), and report what went and the bytes freed.

        Sessions expire first, so that the blobs only they held go in the same run. Each
        session and workspace is handled on its own: one that fails is named on stderr,
        the rest go on, and a :class:`CommandError` at the end makes the exit status
        non-zero.
        """
        days = _limit(
            options["expire_after"], settings.SESSION_EXPIRY_DAYS, "--expire-after", "days"
        )
        hours = _limit(
            options["older_than"], settings.WORKSPACE_CLEANUP_HOURS, "--older-than", "hours"
        )
        dry_run: bool = options["dry_run"]
        failures: list[str] = []
        expiring = self._expire_sessions(days, dry_run, failures)
        self._remove_copies(hours, dry_run, failures, skip=set(expiring))
        if dry_run:
            blobs, blob_bytes = cleanup.unreferenced_blobs(ignoring=expiring)
        else:
            blobs, blob_bytes = cleanup.remove_unreferenced_blobs()
        verb = "would remove" if dry_run else "removed"
        self.stdout.write(
            f"{verb} {blobs} unreferenced blob(s) from the database ({blob_bytes} bytes)"
        )
        if failures:
            raise CommandError("; ".join(failures))

    def _expire_sessions(self, days: float, dry_run: bool, failures: list[str]) -> list[str]:
        """Expire (or list) the sessions unused for ``days``; the ids of those found."""
        if days == 0:
            self.stdout.write("sessions never expire (SESSION_EXPIRY_DAYS or --expire-after 0)")
            return []
        before = timezone.now() - timedelta(days=days)
        found = expiry.expiring(before=before)
        verb = "would expire" if dry_run else "expired"
        failed: list[str] = []
        count = 0
        progress = Progress(self.stdout.write, "sessions checked", len(found))
        for done, session in enumerate(found):
            progress.step(done)
            try:
                if not dry_run and not expiry.expire(session_id=session.session_id, before=before):
                    continue
            # As for copies below: one session's failure must not keep the others.
            except Exception as exc:
                failed.append(session.session_id)
                self.stderr.write(
                    f"could not expire {session.session_id}: {type(exc).__name__}: {exc}"
                )
                continue
            last = session.last_active_at.isoformat()
            self.stdout.write(f"{verb} {session.session_id} (last active {last})")
            count += 1
        self.stdout.write(f"{verb} {count} session(s) unused for {days:g} days")
        if failed:
            what = "session" if len(failed) == 1 else "sessions"
            failures.append(f"could not expire {len(failed)} {what}: {', '.join(failed)}")
        return [session.session_id for session in found]

    def _remove_copies(
        self, hours: float, dry_run: bool, failures: list[str], *, skip: set[str]
    ) -> None:
        """Remove (or list) the unleased copies whose newest file is older than ``hours``.

        ``skip``: the sessions being expired, whose copies go (or would go) with them.
        """
        action = "inspect" if dry_run else "remove"
        freed = 0
        failed: list[str] = []
        copies = cleanup.session_ids()
        progress = Progress(self.stdout.write, "copies inspected", len(copies))
        for done, session_id in enumerate(copies):
            progress.step(done)
            if session_id in skip:
                continue
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
        if failed:
            what = "workspace" if len(failed) == 1 else "workspaces"
            failures.append(f"could not {action} {len(failed)} {what}: {', '.join(failed)}")


def _limit(given: float | None, default: float, option: str, unit: str) -> float:
    """``given``, or the setting ``default``; :class:`CommandError` unless zero or more."""
    value = float(default) if given is None else given
    if not value >= 0:  # also refuses NaN
        raise CommandError(f"{option} must be zero or more {unit}, got {value}")
    return value
