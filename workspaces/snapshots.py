"""What a workspace holds at one moment, and what changed between two moments.

A :class:`Snapshot` maps POSIX relative paths to :class:`FileState`. It holds every
file the path gate accepts (:mod:`workspaces.paths` owns the one rule for what a
workspace may hold), so nothing a client or the agent created is left out of it.

A snapshot holds the bytes of the files it read, not of those whose hash it took
from the stat index (:mod:`workspaces.stat_index`): most of a workspace, most of the
time. :meth:`Snapshot.content` reads those when asked (a file a turn wrote, a blob the
database lacks), and checks that they still have the hash the snapshot says.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field


class SnapshotOutOfDate(LookupError):
    """A file's bytes were asked of a snapshot that did not read them, and the file no
    longer has the hash the snapshot took: it changed (or went) since."""


@dataclass(frozen=True, slots=True)
class FileState:
    """One file's SHA-256 hex digest and size, and its bytes if they were read."""

    sha256: str
    size: int
    content: bytes | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, content: bytes) -> FileState:
        """The state of a file holding ``content``."""
        return cls(sha256=hashlib.sha256(content).hexdigest(), size=len(content), content=content)


class Snapshot(dict[str, FileState]):
    """Path -> :class:`FileState`; ``read`` gives a path's bytes now (``None``: gone)."""

    __slots__ = ("_read",)

    def __init__(
        self,
        files: Mapping[str, FileState] | None = None,
        *,
        read: Callable[[str], bytes | None] | None = None,
    ) -> None:
        super().__init__(files or {})
        self._read = read

    def content(self, path: str) -> bytes:
        """The bytes of ``path`` as of this snapshot (blocking: it may read the file).

        :class:`SnapshotOutOfDate` when they were not read and the file changed since.
        """
        state = self[path]
        if state.content is not None:
            return state.content
        data = None if self._read is None else self._read(path)
        if data is None or hashlib.sha256(data).hexdigest() != state.sha256:
            raise SnapshotOutOfDate(path)
        return data

    def without_bytes(self) -> Snapshot:
        """The same snapshot holding no bytes (each read on demand, and checked)."""
        return Snapshot(
            {path: FileState(state.sha256, state.size) for path, state in self.items()},
            read=self._read,
        )


class SnapshotContents(Mapping[str, bytes]):
    """A snapshot's contents by SHA-256, each read only when asked for."""

    def __init__(self, files: Snapshot) -> None:
        self._files = files
        self._paths = {state.sha256: path for path, state in files.items()}

    def __getitem__(self, sha256: str) -> bytes:
        return self._files.content(self._paths[sha256])

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def __contains__(self, sha256: object) -> bool:
        return sha256 in self._paths


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


def split_snapshot(files: Snapshot) -> tuple[dict[str, str], SnapshotContents]:
    """``files`` as stored: a listing (path -> SHA-256) and the contents by hash (read
    as the database asks for them: only blobs it lacks are)."""
    listing = {path: state.sha256 for path, state in files.items()}
    return listing, SnapshotContents(files)


@dataclass(frozen=True, slots=True)
class ListingChanges:
    """What turns a snapshot into a listing (path -> SHA-256): paths to write, to delete."""

    created: list[str]
    changed: list[str]
    deleted: list[str]

    @classmethod
    def between(cls, current: Mapping[str, FileState], target: dict[str, str]) -> ListingChanges:
        """The paths of ``target`` missing from ``current`` or different there, and the
        paths of ``current`` that ``target`` does not hold; comparing hashes only."""
        return cls(
            created=sorted(target.keys() - current.keys()),
            changed=sorted(
                p for p in target.keys() & current.keys() if target[p] != current[p].sha256
            ),
            deleted=sorted(current.keys() - target.keys()),
        )


def diff_snapshots(before: Mapping[str, FileState], after: Snapshot) -> WorkspaceDiff:
    """What happened between ``before`` and ``after``, comparing hashes only
    (blocking: the bytes of a written file may be read, see :meth:`Snapshot.content`)."""
    return WorkspaceDiff(
        created={p: after.content(p) for p in sorted(after.keys() - before.keys())},
        changed={
            p: after.content(p)
            for p in sorted(after.keys() & before.keys())
            if after[p].sha256 != before[p].sha256
        },
        deleted=sorted(before.keys() - after.keys()),
    )
