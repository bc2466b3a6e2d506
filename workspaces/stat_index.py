"""The hashes of workspace files this process has read, keyed by each file's status.

A snapshot (:func:`workspaces.services.snapshot`) runs before and after every turn.
Reading and hashing every file each time made a turn's cost grow with the workspace
(500 files of 40 KiB: about 115 ms of a turn), although a turn changes a few files.
With this index, a snapshot stats every file and reads only those whose status
changed since it last hashed them.

A file's status is its size, modification and change times (nanoseconds) and inode.
Any write to a file moves its change time, and nobody can set that one back (the
agent has no shell, and a replaced file is a new inode). The file system's clock
ticks coarsely, though (milliseconds), so a file written in the tick in which it was
hashed could change again without its status changing: an entry is trusted only when
the file's times are older than the moment its hashing began, read off the file
system's own clock (:func:`fs_now_ns`: a network file system stamps files with the
server's clock, not ours). That is git's "racily clean" rule. A file written in the
very tick of a snapshot is read once more by the next one.

The index lives in memory, per process (each server has its own disk); it forgets
the least recently used workspaces beyond :data:`WORKSPACES`, and a workspace when
it is deleted. Forgetting costs one full read, never a wrong hash.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

#: How many workspaces' entries are kept (about 150 bytes a file).
WORKSPACES = 64

V = TypeVar("V")
_Key = tuple[int, int, int, int, int]  # size, mtime_ns, ctime_ns, inode, device


@dataclass(frozen=True, slots=True)
class Entry:
    """A file's hash as read when the file had status ``key``."""

    key: _Key
    sha256: str
    settled: bool  # the file's times were older than the moment its hashing began


def key_of(info: os.stat_result) -> _Key:
    """What must be unchanged for a file's hash to still hold."""
    return (info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino, info.st_dev)


def entry_of(info: os.stat_result, sha256: str, *, hashed_at_ns: int) -> Entry:
    """The entry for a file of status ``info`` read after ``hashed_at_ns`` (file system time)."""
    newest = max(info.st_mtime_ns, info.st_ctime_ns)
    return Entry(key_of(info), sha256, settled=newest < hashed_at_ns)


def fs_now_ns(directory: Path) -> int:
    """The file system's time now, as it would stamp a file written in ``directory``:
    the change time of a file created there for the purpose (and removed at once)."""
    fd, name = tempfile.mkstemp(prefix=".clock-", dir=directory)
    try:
        return os.fstat(fd).st_ctime_ns
    finally:
        os.close(fd)
        Path(name).unlink()


class Recent(Generic[V]):
    """Values kept for the :data:`WORKSPACES` most recently used keys (workspaces), the
    least recently used dropped first; safe from several threads (snapshots run in
    worker threads)."""

    def __init__(self) -> None:
        self._values: OrderedDict[str, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> V | None:
        """The value last put for ``key`` (as it was put: do not change it), if kept."""
        with self._lock:
            found = self._values.get(key)
            if found is not None:
                self._values.move_to_end(key)
            return found

    def put(self, key: str, value: V) -> None:
        """Keep ``value`` for ``key``, in place of any before it."""
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > WORKSPACES:
                self._values.popitem(last=False)

    def forget(self, key: str) -> None:
        """Drop what is kept for ``key`` (its workspace was deleted)."""
        with self._lock:
            self._values.pop(key, None)


def trusted(entry: Entry | None, info: os.stat_result) -> str | None:
    """``entry``'s hash if it still holds for a file now of status ``info``."""
    if entry is None or not entry.settled or entry.key != key_of(info):
        return None
    return entry.sha256


#: Path -> :class:`Entry` of each recently snapshotted workspace, by its directory.
INDEX: Recent[dict[str, Entry]] = Recent()
