"""Directory trees nested deeper than Python's recursion limit, made and always removed.

A tree is made one level at a time through directory file descriptors, so its depth is
not bounded by ``PATH_MAX``. Whatever the test does, the tree is removed at the end
(with the depth-independent :func:`workspaces.trees.remove_tree`): a leftover would make
pytest's own ``shutil.rmtree`` of old temporary directories die with ``RecursionError``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from workspaces.trees import remove_tree

#: Deeper than the recursion limit (1,000); ``"d/" * 2000 + "f.txt"`` is under PATH_MAX.
DEPTH = 2000


def make_deep_tree(top: Path, *, depth: int = DEPTH, name: str = "d") -> None:
    """``top/name/name/.../name/f.txt``: ``depth`` directories below ``top`` (created)."""
    top.mkdir(parents=True, exist_ok=True)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        leaf = os.open("f.txt", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd)
        os.write(leaf, b"deep")
        os.close(leaf)
    finally:
        os.close(fd)


@contextmanager
def deep_tree(top: Path, *, depth: int = DEPTH, name: str = "d") -> Iterator[Path]:
    """:func:`make_deep_tree` under ``top``, removed on exit whatever happened; yields ``top``."""
    try:
        make_deep_tree(top, depth=depth, name=name)
        yield top
    finally:
        remove_tree(top / name)
