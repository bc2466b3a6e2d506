"""Stamps: which stored state this server's copy of a workspace holds (blocking).

A workspace directory is a cache of the database's current manifest
(:mod:`workspaces.storage`). ``WORKSPACE_ROOT/.stamps/<session_id>`` says which
stored state the copy was last made equal to: the workspace row, its generation and
the manifest's hash, so that opening a session compares two small values instead of
hashing the tree. ``writing`` marks a copy that someone may be changing without the
services (the agent during a turn) or that a service is changing: until the change
is recorded and the stamp rewritten, the copy may differ from what it is stamped
with. The stamp is outside the workspace, so the agent cannot reach it and it is
not user work; a dot-name never collides with a session id.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings

from workspaces.files import make_dirs, write_temp
from workspaces.paths import validate_session_id
from workspaces.storage import Current

STAMPS_DIR = ".stamps"


@dataclass(frozen=True, slots=True)
class Stamp:
    """The stored state a copy was made equal to, and whether it may have changed since."""

    workspace: int
    generation: int
    manifest: str
    writing: bool = False

    @classmethod
    def of(cls, state: Current, *, writing: bool = False) -> Stamp:
        """The stamp of a copy equal to ``state``."""
        return cls(state.workspace, state.generation, state.manifest, writing)

    def holds(self, state: Current) -> bool:
        """Whether the copy holds exactly the files of ``state`` (same row, same listing)."""
        return not self.writing and (self.workspace, self.manifest) == (
            state.workspace,
            state.manifest,
        )

    def changed_since(self, state: Current) -> bool:
        """Whether the copy is ``state`` plus changes not recorded yet on this disk.

        Only when nothing was recorded since (same generation): otherwise another
        server has moved the session on, and the changes here are out of date.
        """
        return self.writing and (self.workspace, self.generation, self.manifest) == (
            state.workspace,
            state.generation,
            state.manifest,
        )


def stamp_path(session_id: str) -> Path:
    """Where the stamp of ``session_id``'s copy is kept (validated id)."""
    return Path(settings.WORKSPACE_ROOT) / STAMPS_DIR / validate_session_id(session_id)


def read(session_id: str) -> Stamp | None:
    """The stamp of the copy, or ``None`` if there is none (or it cannot be read)."""
    try:
        raw = json.loads(stamp_path(session_id).read_text(encoding="utf-8"))
        return Stamp(
            workspace=int(raw["workspace"]),
            generation=int(raw["generation"]),
            manifest=str(raw["manifest"]),
            writing=bool(raw["writing"]),
        )
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def write(session_id: str, stamp: Stamp) -> None:
    """Replace the copy's stamp atomically."""
    path = stamp_path(session_id)
    make_dirs(path.parent)
    write_temp(path.parent, json.dumps(asdict(stamp)).encode()).replace(path)


def remove(session_id: str) -> None:
    """Remove the copy's stamp, if any."""
    stamp_path(session_id).unlink(missing_ok=True)
