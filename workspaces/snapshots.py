"""What a workspace holds at one moment, and what changed between two moments (pure).

A :data:`Snapshot` maps POSIX relative paths to :class:`FileState`; system files
(OS litter, VCS and dependency trees, editor swap files, our own temp files) are
never part of one, so they never reach the client.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

# Directories never descended into nor reported, at any depth.
SKIPPED_DIRS = frozenset({".git", "node_modules"})
# Prefix and suffix of the temp files an atomic write leaves for an instant.
TEMP_PREFIX = ".wstmp-"
TEMP_SUFFIX = ".tmp"

_SYSTEM_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
_SYSTEM_PATTERNS = ("*.swp", "*.swo", "*~", ".#*", "#*#", f"{TEMP_PREFIX}*{TEMP_SUFFIX}")


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


def is_system_file(rel_path: str) -> bool:
    """Whether ``rel_path`` is OS, VCS, dependency, editor or temp litter, not user work."""
    *parents, name = rel_path.split("/")
    if any(parent in SKIPPED_DIRS for parent in parents):
        return True
    return name in _SYSTEM_NAMES or any(fnmatchcase(name, p) for p in _SYSTEM_PATTERNS)


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
