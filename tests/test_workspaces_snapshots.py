"""Pure pieces: snapshot diff and file contents on the wire."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workspaces.content import decode_from_wire, encode_for_wire
from workspaces.exceptions import InvalidContent
from workspaces.snapshots import FileState, Snapshot, WorkspaceDiff, diff_snapshots


def test_diff_of_equal_snapshots_is_empty():
    snapshot = {"a": FileState.of(b"1")}
    diff = diff_snapshots(snapshot, Snapshot(snapshot))
    assert diff == WorkspaceDiff()
    assert diff.is_empty


def test_diff_compares_hashes_and_sorts():
    before = {"keep": FileState.of(b"k"), "edit": FileState.of(b"1"), "b": FileState.of(b""),
              "a": FileState.of(b"")}  # fmt: skip
    after = Snapshot({"keep": FileState.of(b"k"), "edit": FileState.of(b"2"),
                      "z": FileState.of(b"z"), "y": FileState.of(b"y")})  # fmt: skip
    diff = diff_snapshots(before, after)
    assert list(diff.created.items()) == [("y", b"y"), ("z", b"z")]
    assert diff.changed == {"edit": b"2"}
    assert diff.deleted == ["a", "b"]


def test_utf8_text_goes_on_the_wire_as_a_string():
    assert encode_for_wire("h\u00e9".encode()) == "h\u00e9"


def test_binary_goes_on_the_wire_as_base64():
    assert encode_for_wire(b"\xff\x00") == {"content": "/wA=", "encoding": "base64"}


@given(st.binary())
def test_wire_encoding_round_trips_bytes(content):
    assert decode_from_wire("f", encode_for_wire(content)) == content


@pytest.mark.parametrize(
    "content",
    [
        {"content": "a b", "encoding": "base64"},
        {"content": "YQ", "encoding": "base64"},  # missing padding
        {"content": "\u00e9\u00e9==", "encoding": "base64"},
        {"content": "x", "encoding": "latin-1"},
        {"encoding": "utf-8"},
        {"content": None},
        ["not", "a", "mapping"],
        "\ud800",
    ],
)
def test_undecodable_content_is_refused(content):
    with pytest.raises(InvalidContent) as caught:
        decode_from_wire("f.txt", content)
    assert caught.value.code == "INVALID_CONTENT"
    assert caught.value.path == "f.txt"
