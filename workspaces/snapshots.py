"""What a workspace holds at one moment, and what changed between two moments (pure).

A :data:`Snapshot` maps POSIX relative paths to :class:`FileState`. It holds every
file the path gate accepts (:mod:`workspaces.paths` owns the one rule for what a
workspace may hold), so nothing a client or the agent created is left out of it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class FileState:
    """One file's content and its SHA-256 hex digest."""

    sha256: str
    size: int
    content: bytes

    @classmethod
    def of(cls, content: bytes) -> FileState:
        """The state of a file holding ``content``."""
        return cls(sha256=hashlib.sha256(content).hexdigest(), size=len(content), content=content)


Snapshot = dict[str, FileState]


@dataclass(slots=True)
class WorkspaceDiff:
    """Files created, changed (with their new content) and deleted between two snapshots."""

    created: dict[str, bytes] = field(default_factory=dict)
    changed: dict[str, bytes] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)

    @property
    def written(self) -> dict[str, bytes]:
        """Every file created or changed, with its new content, by path."""
        return dict(sorted({**self.created, **self.changed}.items()))

    @property
    def is_empty(self) -> bool:
        """Whether nothing changed."""
        return not (self.created or self.changed or self.deleted)


def split_snapshot(files: Snapshot) -> tuple[dict[str, str], dict[str, bytes]]:
    """``files`` as stored: a listing (path -> SHA-256) and the contents by hash."""
    listing = {path: state.sha256 for path, state in files.items()}
    contents = {state.sha256: state.content for state in files.values()}
    return listing, contents


@dataclass(frozen=True, slots=True)
class ListingChanges:
    """What turns a snapshot into a listing (path -> SHA-256): paths to write, to delete."""

    created: list[str]
    changed: list[str]
    deleted: list[str]

    @classmethod
    def between(cls, current: Snapshot, target: dict[str, str]) -> ListingChanges:
        """The paths of ``target`` missing from ``current`` or different there, and the
        paths of ``current`` that ``target`` does not hold; comparing hashes only."""
        return cls(
            created=sorted(target.keys() - current.keys()),
            changed=sorted(
                p for p in target.keys() & current.keys() if target[p] != current[p].sha256
            ),
            deleted=sorted(current.keys() - target.keys()),
        )


def diff_snapshots(before: Snapshot, after: Snapshot) -> WorkspaceDiff:
    """What happened between ``before`` and ``after``, comparing hashes only."""
    return WorkspaceDiff(
        created={p: after[p].content for p in sorted(after.keys() - before.keys())},
        changed={
            p: after[p].content
            for p in sorted(after.keys() & before.keys())
            if after[p].sha256 != before[p].sha256
        },
        deleted=sorted(before.keys() - after.keys()),
    )
