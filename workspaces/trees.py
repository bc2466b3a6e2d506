"""Walking and removing directory trees at any depth, never following a symlink (blocking).

On Python 3.11, ``os.walk`` and ``shutil.rmtree`` recurse once per directory level, so a
tree nested deeper than the recursion limit (about 1,000 levels; one uploaded file under
``PATH_MAX`` reaches 2,000) raises ``RecursionError``, and ``rmtree`` also holds one
descriptor open per level. Here the pending work is an explicit stack, and every call
is relative to a directory descriptor: one is open at a time (plus the top's parent)
whatever the depth, the kernel is never handed a path longer than one name, so
``PATH_MAX`` does not matter either, and directories are opened with ``O_NOFOLLOW``, so
a symlink is reported or removed as itself, never followed. Going back up, ``..`` is
checked to be the directory we came down from; if the tree was moved meanwhile, the
walk stops with an :class:`OSError` rather than go on somewhere else.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

_OPEN_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class _Step:
    """One entry of a walk, named relative to ``dir_fd``, which stays open until the next."""

    dir_fd: int
    name: str
    info: os.stat_result  # its lstat
    leaving: bool = False  # a directory, yielded again after everything below it


@dataclass(slots=True)
class _Level:
    """A directory on the way down: its name and lstat, and its subdirectories to visit."""

    name: str
    info: os.stat_result
    identity: tuple[int, int]  # (st_dev, st_ino) of the open directory
    subdirs: list[tuple[str, os.stat_result]] = field(default_factory=list)


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino


def _enter(fd: int, level: _Level) -> Iterator[_Step]:
    """The entries of the directory open as ``fd`` that are not directories.

    Its subdirectories are kept in ``level`` for later. The listing is read whole
    first, so a caller may remove what it is given.
    """
    with os.scandir(fd) as scan:
        entries = list(scan)
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # removed since the listing
            continue
        if stat.S_ISDIR(info.st_mode):
            level.subdirs.append((entry.name, info))
        else:
            yield _Step(fd, entry.name, info)


def _steps_below(parent: int, name: str) -> Iterator[_Step]:
    """Every entry of the tree ``name`` in the directory ``parent``, depth first.

    ``name`` comes first; a directory is yielded when entered and again, ``leaving``,
    after everything below it; anything else once. Nothing if ``name`` is missing.
    """
    try:
        info = os.lstat(name, dir_fd=parent)
    except FileNotFoundError:
        return
    yield _Step(parent, name, info)
    if not stat.S_ISDIR(info.st_mode):
        return
    fd = os.open(name, _OPEN_DIRECTORY, dir_fd=parent)
    try:
        levels = [_Level(name, info, _identity(fd))]
        yield from _enter(fd, levels[-1])
        while levels:
            level = levels[-1]
            if level.subdirs:
                child, child_info = level.subdirs.pop()
                yield _Step(fd, child, child_info)
                try:
                    child_fd = os.open(child, _OPEN_DIRECTORY, dir_fd=fd)
                except FileNotFoundError:  # removed since the listing
                    continue
                os.close(fd)
                fd = child_fd
                levels.append(_Level(child, child_info, _identity(fd)))
                yield from _enter(fd, levels[-1])
                continue
            levels.pop()
            if not levels:
                yield _Step(parent, level.name, level.info, leaving=True)
                break
            up = os.open("..", _OPEN_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = up
            if _identity(fd) != levels[-1].identity:
                raise OSError(f"{name!r} was moved while its tree was walked")
            yield _Step(fd, level.name, level.info, leaving=True)
    finally:
        os.close(fd)


def _steps(path: Path) -> Generator[_Step, None, None]:
    """:func:`_steps_below` for ``path`` (whose parent directories may be symlinks)."""
    try:
        parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        yield from _steps_below(parent, path.name)
    finally:
        os.close(parent)


def walk(path: Path) -> Iterator[os.stat_result]:
    """The lstat of ``path`` and of every entry below it, at any depth; none if missing.

    Symlinks are reported as links, never followed; entries removed during the walk
    are left out.
    """
    with contextlib.closing(_steps(path)) as steps:
        for step in steps:
            if not step.leaving:
                yield step.info


def remove_tree(path: Path) -> bool:
    """Remove ``path`` and everything below it, at any depth; whether it existed.

    A symlink, at ``path`` or below it, is removed itself and never followed. On a
    failure (an :class:`OSError`), what was not removed yet stays.
    """
    existed = False
    with contextlib.closing(_steps(path)) as steps:
        for step in steps:
            existed = True
            if not stat.S_ISDIR(step.info.st_mode):
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                    os.unlink(step.name, dir_fd=step.dir_fd)
            elif step.leaving:
                os.rmdir(step.name, dir_fd=step.dir_fd)
    return existed
