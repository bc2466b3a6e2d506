"""The last step of a stop: kill a CLI's whole process group."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

logger = logging.getLogger("dashboard_ai.chat")


def kill_process_group(pidfile: Path) -> bool:
    """SIGKILL the process group whose leader's pid is in ``pidfile``; True if one was.

    The launcher makes the CLI a process-group leader and writes its pid here, so
    the group holds the CLI and anything it started, and nothing of ours.
    """
    try:
        pgid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return False
    finally:
        pidfile.unlink(missing_ok=True)
    if pgid <= 1 or pgid == os.getpgrp() or not _is_claude_or_gone(pgid):
        return False
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    logger.info("killed agent process group", extra={"pgid": pgid})
    return True


def _is_claude_or_gone(pid: int) -> bool:
    """Guard against a reused pid: the leader must be the CLI, or have exited already."""
    try:
        return b"claude" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return True
    except OSError:
        return False
