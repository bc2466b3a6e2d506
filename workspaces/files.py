"""Blocking file primitives of the workspaces app: create directories and files with our
modes whatever the umask, and read a regular file without following a final symlink.

They run in threads, called by the services (:mod:`workspaces.services`), the leases
and the undo states; nothing here checks a path (the callers resolve it first).
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from workspaces.exceptions import PayloadTooLarge
from workspaces.paths import TEMP_PREFIX, TEMP_SUFFIX

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_dirs(path: Path) -> list[Path]:
    """Create ``path`` and its missing parents with mode 0700; return those created."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    created: list[Path] = []
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:  # created concurrently: not ours to chmod or roll back
            continue
        directory.chmod(DIR_MODE)  # mkdir's mode is filtered through the umask
        created.append(directory)
    return created


def write_temp(directory: Path, data: bytes) -> Path:
    """Write ``data`` to a new 0600 temp file in ``directory`` and return its path."""
    fd, name = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=directory)
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), FILE_MODE)
            file.write(data)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def read_regular(path: Path | str, *, limit: int | None = None) -> bytes | None:
    """The bytes of the regular file at ``path`` (never via a final symlink).

    ``None`` if it is missing, a symlink or not a regular file. Above ``limit``
    bytes, raises :class:`PayloadTooLarge` before reading.
    """
    found = read_regular_stat(path, limit=limit)
    return None if found is None else found[0]


def read_regular_stat(
    path: Path | str, *, limit: int | None = None
) -> tuple[bytes, os.stat_result] | None:
    """:func:`read_regular`, with the file's status as it was opened, before the read
    (what :mod:`workspaces.stat_index` keys a hash by)."""
    try:  # O_NONBLOCK: opening a FIFO the agent left behind must not hang the thread
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the final component is a symlink
            return None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if limit is not None and info.st_size > limit:
            raise PayloadTooLarge("file size in bytes", limit, info.st_size)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks), info
    finally:
        os.close(fd)
