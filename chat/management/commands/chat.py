"""``manage.py chat --session ID "message"``: one turn of a session from a terminal."""

from __future__ import annotations

import asyncio
import signal
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from chat.terminal_client import (
    DEFAULT_URL,
    TurnFailed,
    UnsafePath,
    folder_files,
    run_turn,
    write_changes,
)


class Command(BaseCommand):
    """Send one message to a running server, show its turn, write the changed files."""

    help = (
        "Connect to a running server, open --session (with the files of --files), send the "
        "message and show the turn as it streams: text, tool activity, a last line with the "
        "time and tokens. At the end the changed files are written into --out (default: the "
        "--files folder, else ./dashboard-ai-<session>). Ctrl-C stops the turn. Exits "
        "non-zero with the error's code when the turn fails."
    )
    # A client of a server, maybe on another machine: this machine's own database,
    # workspaces and checks are not its concern.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("message", help="the message to send")
        parser.add_argument("--session", required=True, help="the session id")
        parser.add_argument(
            "--url", default=DEFAULT_URL, help=f"the socket (default {DEFAULT_URL})"
        )
        parser.add_argument(
            "--token",
            default=None,
            help="the server's token (default: CHAT_AUTH_TOKEN; prefer it, an argument "
            "shows in the process list)",
        )
        parser.add_argument("--files", type=Path, default=None, help="a folder to send with init")
        parser.add_argument("--out", type=Path, default=None, help="where changed files go")

    def handle(self, *args: Any, **options: Any) -> None:
        session_id: str = options["session"]
        source: Path | None = options["files"]
        if source is not None and not source.is_dir():
            raise CommandError(f"--files {source} is not a folder")
        out: Path = options["out"] or source or Path(f"dashboard-ai-{session_id}")
        token: str = settings.CHAT_AUTH_TOKEN if options["token"] is None else options["token"]
        try:
            files = folder_files(source) if source is not None else None
        except OSError as exc:
            raise CommandError(f"cannot read --files {source}: {exc}") from None
        try:
            complete = asyncio.run(
                self._turn(
                    url=options["url"],
                    token=token,
                    session_id=session_id,
                    message=options["message"],
                    files=files,
                )
            )
        except TurnFailed as exc:
            raise CommandError(str(exc)) from None
        except asyncio.CancelledError:
            raise CommandError("interrupted; the turn's end was not awaited") from None
        try:
            write_changes(out, complete["files"], complete["deleted"])
        except (UnsafePath, OSError) as exc:
            raise CommandError(
                f"the turn completed but its files were not written: {exc}"
            ) from None
        for path in complete["files"]:
            self.stdout.write(f"wrote {out / path}")
        for path in complete["deleted"]:
            self.stdout.write(f"deleted {out / path}")

    async def _turn(self, **arguments: Any) -> dict[str, Any]:
        """The turn, with Ctrl-C asking for a stop and a second Ctrl-C giving up."""
        stop_requested = asyncio.Event()
        task = asyncio.current_task()
        assert task is not None

        def interrupted() -> None:
            if stop_requested.is_set():
                task.cancel()
            stop_requested.set()

        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, interrupted)
        try:
            return await run_turn(**arguments, write=self._write, stop_requested=stop_requested)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    def _write(self, text: str) -> None:
        self.stdout.write(text, ending="")
        self.stdout.flush()
