"""Leases: which workspaces a live server process is using, for the cleanup command.

A lease is ``WORKSPACE_ROOT/.leases/<session_id>`` holding the PID of the server
process that uses the workspace. A dot-name cannot collide with a session id. PIDs
only mean something within one PID namespace: servers in other containers sharing
the root look dead to each other.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from workspaces.files import make_dirs, write_temp
from workspaces.paths import validate_session_id
from workspaces.services import LEASES_DIR, workspace_root


def lease_path(session_id: str) -> Path:
    """Where the lease of ``session_id`` is kept (validated id)."""
    return workspace_root() / LEASES_DIR / validate_session_id(session_id)


def _lease_holder(lease: Path) -> int | None:
    """The PID recorded in ``lease``, or ``None`` if there is none."""
    try:
        return int(lease.read_text(encoding="ascii"))
    except (FileNotFoundError, ValueError):
        return None


def _is_alive(pid: int) -> bool:
    if pid <= 0:  # 0 and negatives address process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists but belongs to another user
        return True
    return True


def _acquire_lease_blocking(lease: Path) -> None:
    make_dirs(lease.parent)
    write_temp(lease.parent, str(os.getpid()).encode("ascii")).replace(lease)


def _release_lease_blocking(lease: Path) -> None:
    if _lease_holder(lease) == os.getpid():
        lease.unlink(missing_ok=True)


async def acquire_lease(*, session_id: str) -> None:
    """Mark the workspace as in use by this process, so cleanup leaves it alone."""
    await asyncio.to_thread(_acquire_lease_blocking, lease_path(session_id))


async def release_lease(*, session_id: str) -> None:
    """Drop this process's lease on the workspace (another process's lease is kept)."""
    await asyncio.to_thread(_release_lease_blocking, lease_path(session_id))


def is_leased(*, session_id: str) -> bool:
    """Whether a live process holds a lease on the workspace (synchronous)."""
    holder = _lease_holder(lease_path(session_id))
    return holder is not None and _is_alive(holder)
