"""Tree walks and removals: any depth, any path length, a few descriptors, no symlink followed."""

from __future__ import annotations

import os
import resource
import stat
from pathlib import Path

import pytest

from tests.support.deep_trees import deep_tree, make_deep_tree
from workspaces.trees import remove_tree, walk


def test_a_tree_deeper_than_the_recursion_limit_is_removed(tmp_path):
    with deep_tree(tmp_path / "top") as top:
        with pytest.raises(RecursionError):  # what os.walk and shutil.rmtree do with it
            list(os.walk(top))

        assert remove_tree(top) is True

    assert not top.exists()


def test_a_tree_longer_than_path_max_is_walked_and_removed(tmp_path):
    name = "n" * 200  # 1,000 levels: about 200 KB of path, fifty times PATH_MAX
    with deep_tree(tmp_path / "top", depth=1000, name=name) as top:
        entries = list(walk(top))

        assert len(entries) == 1 + 1000 + 1  # the top, every level, the file
        assert sum(stat.S_ISREG(info.st_mode) for info in entries) == 1
        assert remove_tree(top) is True

    assert not top.exists()


def test_removal_holds_a_few_descriptors_whatever_the_depth(tmp_path):
    """Python 3.11's rmtree keeps one open per level; here 2,000 levels run under 64."""
    with deep_tree(tmp_path / "top") as top:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        highest = max(int(fd.name) for fd in Path("/proc/self/fd").iterdir())
        resource.setrlimit(resource.RLIMIT_NOFILE, (highest + 64, hard))
        try:
            assert remove_tree(top) is True
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    assert not top.exists()


def test_walk_yields_the_top_and_every_entry_once(tmp_path):
    top = tmp_path / "top"
    (top / "a" / "b").mkdir(parents=True)
    (top / "a" / "b" / "f").write_bytes(b"12345")
    (top / "g").write_bytes(b"1")
    (top / "a" / "link").symlink_to(tmp_path)

    entries = list(walk(top))

    assert len(entries) == 6
    assert entries[0].st_ino == top.lstat().st_ino
    assert sorted(info.st_size for info in entries if stat.S_ISREG(info.st_mode)) == [1, 5]
    assert sum(stat.S_ISLNK(info.st_mode) for info in entries) == 1


def test_walk_of_a_missing_tree_yields_nothing(tmp_path):
    assert list(walk(tmp_path / "missing")) == []
    assert list(walk(tmp_path / "missing" / "below")) == []


def test_removal_never_follows_a_symlink(tmp_path):
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "keep").write_text("x")
    top = tmp_path / "top"
    make_deep_tree(top, depth=5)
    (top / "d" / "d" / "out").symlink_to(outside)
    (top / "d" / "file-link").symlink_to(outside / "sub" / "keep")
    (tmp_path / "top-link").symlink_to(outside)

    assert remove_tree(top) is True
    assert remove_tree(tmp_path / "top-link") is True

    assert not top.exists() and not (tmp_path / "top-link").exists()
    assert (outside / "sub" / "keep").read_text() == "x"


def test_removal_of_a_file_removes_just_it(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "other").write_text("y")

    assert remove_tree(tmp_path / "f") is True

    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]


def test_removal_of_a_missing_tree_is_false(tmp_path):
    assert remove_tree(tmp_path / "missing") is False
    assert remove_tree(tmp_path / "missing" / "below") is False


def test_removal_takes_a_fifo_without_opening_it(tmp_path):
    top = tmp_path / "top"
    top.mkdir()
    os.mkfifo(top / "fifo")  # opening it for reading would block

    assert remove_tree(top) is True

    assert not top.exists()
