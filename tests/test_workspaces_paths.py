"""The path gate: hostile paths are refused, ordinary ones resolve inside the root."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from workspaces import services
from workspaces.exceptions import InvalidPath, InvalidSessionId, WorkspaceError
from workspaces.paths import path_problem, relative_to_root, resolve_inside, validate_session_id


@pytest.fixture
def layout(tmp_path):
    """sessions/s1 (the root) with symlinks out of it, a sibling s2, and an outside dir."""
    sessions = tmp_path / "sessions"
    root = sessions / "s1"
    (root / "src").mkdir(parents=True)
    (sessions / "s2").mkdir()
    (sessions / "s2" / "secret.txt").write_text("s2 secret")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel.txt").write_text("do not touch")
    (root / "link").symlink_to("/")
    (root / "sib").symlink_to(sessions / "s2")
    (root / "out").symlink_to(outside)
    (root / "up").symlink_to("..")
    (root / "loop").symlink_to(root / "loop")
    (root / "inside").symlink_to(root / "src")
    return root


def tree(directory: Path) -> dict[str, bytes | None]:
    """Every entry under ``directory`` with file contents, to detect any change."""
    result: dict[str, bytes | None] = {}
    for parent, dirnames, filenames in os.walk(directory):
        for name in dirnames:
            result[os.path.relpath(Path(parent) / name, directory)] = None
        for name in filenames:
            path = Path(parent) / name
            result[os.path.relpath(path, directory)] = path.read_bytes()
    return result


HOSTILE = {
    "parent": "..",
    "parent-slash": "../",
    "parent-file": "../x",
    "etc-passwd-relative": "../../etc/passwd",
    "etc-passwd-absolute": "/etc/passwd",
    "absolute-root": "/",
    "climb-through-subdir": "a/../../b",
    "dotdot-that-stays-inside": "a/../b",
    "dot": ".",
    "dot-prefix": "./a",
    "dot-middle": "a/./b",
    "trailing-slash": "a/",
    "double-slash": "a//b",
    "empty": "",
    "four-dots-double-slash": "....//",
    "four-dots-segment": "..../x",
    "three-dots": "...",
    "dotdot-semicolon": "..;/",
    "dotdot-semicolon-etc": "..;/etc/passwd",
    "dotdot-encoded-slash": "..%2fetc%2fpasswd",
    "dotdot-double-encoded-slash": "..%252f..%252fetc",
    "encoded-then-real-dotdot": "%2e%2e/../x",
    "nul": "a\x00b",
    "nul-extension": "a.txt\x00.png",
    "backslash": "a\\b",
    "backslash-traversal": "..\\..\\etc\\passwd",
    "windows-device-path": "\\\\?\\C:\\x",
    "windows-win-ini": "c:\\windows\\win.ini",
    "drive-forward-slash": "C:/x",
    "drive-only": "c:",
    "fullwidth-dots": "\uff0e\uff0e/x",
    "fullwidth-solidus": "a\uff0f..\uff0fb",
    "fullwidth-reverse-solidus": "a\uff3cb",
    "small-full-stops": "\ufe52\ufe52/x",
    "one-dot-leaders": "\u2024\u2024/x",
    "two-dot-leader": "\u2025/x",
    "horizontal-ellipsis": "\u2026",
    "division-slash": "a\u2215..\u2215b",
    "fraction-slash": "a\u2044b",
    "segment-256-bytes": "x" * 256,
    "segment-256-utf8-bytes": "\u00e9" * 128,
    "path-over-4095-bytes": "/".join(["d" * 200] * 21),
    "trailing-dot": "a.",
    "trailing-dot-dir": "src./x",
    "trailing-space": "a /b",
    "space-only": " ",
    "newline": "a\nb",
    "tab": "a\tb",
    "escape": "a\x1b[31mb",
    "delete-char": "a\x7fb",
    "c1-next-line": "a\x85b",
    "line-separator": "a\u2028b",
    "lone-surrogate": "a\udc80b",
    "symlink-to-root": "link",
    "symlink-escape": "link/etc/passwd",
    "symlink-to-sibling-session": "sib/secret.txt",
    "symlink-to-outside-new-file": "out/new.txt",
    "symlink-to-parent": "up/s2/secret.txt",
    "symlink-loop": "loop/x",
}


def refusal(layout: Path, path: str) -> str:
    """Why ``resolve_inside`` refuses ``path`` (the test fails if it does not)."""
    with pytest.raises(InvalidPath) as caught:
        resolve_inside(layout, path)
    return caught.value.reason


def test_hostile_table_is_long_enough():
    assert len(HOSTILE) >= 35


@pytest.mark.parametrize("path", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_path_is_refused(layout, path):
    with pytest.raises(InvalidPath) as caught:
        resolve_inside(layout, path)
    assert caught.value.path == path
    assert caught.value.code == "INVALID_PATH"


@pytest.mark.parametrize("path", [None, b"a.txt", 1, Path("a.txt")])
def test_non_string_path_is_refused(layout, path):
    with pytest.raises(InvalidPath, match="not a string"):
        resolve_inside(layout, path)


def test_path_too_long_with_the_root_is_refused(layout):
    length = 4095 - len(str(layout.resolve()).encode())  # root + "/" + path = 4096 bytes
    path = (("d" * 200 + "/") * 30)[: length - 1] + "d"
    assert len(path.encode()) == length
    with pytest.raises(InvalidPath, match="with the workspace root"):
        resolve_inside(layout, path)


GOOD = {
    "tsx": ("src/App.tsx", "src/App.tsx"),
    "csv": ("data/sales.csv", "data/sales.csv"),
    "space-in-dir": ("a b/c.tsx", "a b/c.tsx"),
    "accented": ("donn\u00e9es.csv", "donn\u00e9es.csv"),
    "japanese": (
        "\u65e5\u672c/\u30d5\u30a1\u30a4\u30eb.ts",
        "\u65e5\u672c/\u30d5\u30a1\u30a4\u30eb.ts",
    ),
    "dotfile": (".env", ".env"),
    "nested-dotfile": ("src/.eslintrc.json", "src/.eslintrc.json"),
    "dots-inside-name": ("a..b.test.ts", "a..b.test.ts"),
    # Nothing is percent-decoded: these are literal, odd, harmless file names.
    "percent-encoded-traversal-literal": ("%2e%2e%2f", "%2e%2e%2f"),
    "double-encoded-traversal-literal": ("%252e%252e%252f", "%252e%252e%252f"),
    "segment-255-bytes": ("x" * 255, "x" * 255),
    "vulgar-fraction": ("\u00bd.txt", "\u00bd.txt"),
    "tilde-name": ("~notes", "~notes"),
    "symlink-inside-workspace": ("inside/target.ts", "src/target.ts"),
}


@pytest.mark.parametrize(("path", "expected"), GOOD.values(), ids=GOOD.keys())
def test_ordinary_path_resolves_inside(layout, path, expected):
    resolved = resolve_inside(layout, path)
    assert resolved == layout.resolve() / expected
    assert relative_to_root(layout, resolved) == expected


# --- One rule for what a workspace holds: the gate refuses what is not user work ---------

NOT_USER_WORK = {
    "node-modules-file": "node_modules/x.js",
    "node-modules-deep": "node_modules/x/index.js",
    "nested-node-modules": "pkg/node_modules/react/index.js",
    "node-modules-itself": "node_modules",
    "git-config": ".git/config",
    "nested-git": "a/.git/objects/ab/cd",
    "git-itself": ".git",
    "ds-store": ".DS_Store",
    "nested-ds-store": "src/.DS_Store",
    "thumbs-db": "Thumbs.db",
    "desktop-ini": "src/desktop.ini",
    "vim-swap": "App.tsx.swp",
    "vim-swap-2": "App.tsx.swo",
    "backup-tilde": "notes.txt~",
    "backup-tilde-dir": "old~/notes.txt",
    "emacs-lock": ".#App.tsx",
    "emacs-autosave": "#App.tsx#",
    "our-temp-file": "src/.wstmp-k2j3h4.tmp",
}


@pytest.mark.parametrize("path", NOT_USER_WORK.values(), ids=NOT_USER_WORK.keys())
def test_name_that_is_not_user_work_is_refused(layout, path):
    reason = refusal(layout, path)
    assert "not user work" in reason
    assert path_problem(path) == reason


USER_WORK = [
    ".gitignore", ".github/workflows/ci.yml", ".gitkeep", "node_modules.md", "my_node_modules/x",
    "a#b", "#a", "~notes", "notes~.txt", ".env", "src/DS_Store", "x.swp.txt", ".wstmp-x",
]  # fmt: skip


@pytest.mark.parametrize("path", USER_WORK)
def test_user_work_that_looks_like_litter_is_accepted(layout, path):
    assert resolve_inside(layout, path) == layout.resolve() / path


# --- Depth ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("depth", "path", "refused"),
    [
        (3, "a/b/c/f.txt", False),
        (3, "a/b/c/d/f.txt", True),
        (1, "f.txt", False),
        (1, "a/f.txt", False),
        (1, "a/b/f.txt", True),
        (32, "d/" * 32 + "f", False),
        (32, "d/" * 33 + "f", True),
        (32, "d/" * 2000 + "f", True),  # the tree, under PATH_MAX
    ],
)
def test_path_nested_deeper_than_the_setting_is_refused(layout, settings, depth, path, refused):
    settings.WORKSPACE_MAX_DEPTH = depth
    if not refused:
        assert resolve_inside(layout, path) == layout.resolve() / path
        return
    assert refusal(layout, path) == f"nested deeper than {depth} directories"


# --- Unicode: one normal form (NFC) -------------------------------------------------

NOT_NFC = {
    "nfd-e-acute": "cafe\u0301.txt",
    "nfd-directory": "donne\u0301es/sales.csv",
    "kelvin-sign": "\u212a.txt",  # NFC turns it into an ASCII K
    "ohm-sign": "\u2126.txt",
    "angstrom-sign": "\u212b.txt",
    "hangul-jamo": "\u1100\u1161.txt",
    "combining-marks-out-of-order": "a\u0307\u0323.txt",
}


@pytest.mark.parametrize("path", NOT_NFC.values(), ids=NOT_NFC.keys())
def test_path_not_in_nfc_is_refused(layout, path):
    assert refusal(layout, path) == "not in Unicode NFC form"


def test_nfc_twin_of_a_name_on_disk_is_refused(layout):
    (layout / "cafe\u0301.txt").write_text("written before NFC was required")
    assert refusal(layout, "caf\u00e9.txt") == "same name as an existing file once normalised"


def test_nfc_twin_of_a_directory_on_disk_is_refused(layout):
    (layout / "src" / "donne\u0301es").mkdir()
    reason = refusal(layout, "src/donn\u00e9es/new.csv")
    assert reason == "same name as an existing file once normalised"


def test_existing_nfc_name_and_new_names_beside_an_nfd_one_resolve(layout):
    (layout / "cafe\u0301.txt").write_text("nfd")
    (layout / "caf\u00e9s.txt").write_text("nfc")
    assert resolve_inside(layout, "caf\u00e9s.txt") == layout.resolve() / "caf\u00e9s.txt"
    assert resolve_inside(layout, "caf\u00e9/x") == layout.resolve() / "caf\u00e9/x"


def test_refusal_logs_one_truncated_security_line(layout, caplog):
    path = "../" + "x" * 1000
    with (
        caplog.at_level(logging.WARNING, logger="dashboard_ai.security"),
        pytest.raises(InvalidPath),
    ):
        resolve_inside(layout, path)
    [record] = caplog.records
    assert record.name == "dashboard_ai.security"
    assert record.getMessage() == "path refused"
    assert record.reason == "'.' or '..' segment"
    assert len(record.path) <= 200
    assert record.path.startswith("'../xxx")


def test_refusal_message_names_path_and_reason(layout):
    with pytest.raises(InvalidPath) as caught:
        resolve_inside(layout, "a\\b")
    assert caught.value.message == "path 'a\\\\b' refused: contains a backslash"
    assert caught.value.reason == "contains a backslash"


@pytest.mark.parametrize("session_id", ["abc", "A-b_9", "x" * 64, "0"])
def test_valid_session_id_is_returned(session_id):
    assert validate_session_id(session_id) == session_id


@pytest.mark.parametrize(
    "session_id",
    ["", "x" * 65, "../x", "a/b", ".leases", "a b", "caf\u00e9", "abc\n", "a.b", None, 7],
)
def test_invalid_session_id_is_refused_and_logged(session_id, caplog):
    with (
        caplog.at_level(logging.WARNING, logger="dashboard_ai.security"),
        pytest.raises(InvalidSessionId) as caught,
    ):
        validate_session_id(session_id)
    assert caught.value.code == "INVALID_SESSION_ID"
    [record] = caplog.records
    assert record.getMessage() == "session id refused"


# --- Property: whatever the path, nothing escapes -------------------------------------

PIECES = [
    "..",
    ".",
    "/",
    "\\",
    "\x00",
    "a",
    "b",
    "src",
    "link",
    "out",
    "sib",
    "up",
    "loop",
    "inside",
    "%2e",
    "%2f",
    "\uff0e",
    "\uff0f",
    "\u2215",
    "\u2024",
    "C:",
    " ",
    "...",
    "~",
    "\u00e9",
    "\n",
]
paths = st.one_of(
    st.text(max_size=40),
    st.lists(st.sampled_from(PIECES), max_size=12).map("".join),
    st.lists(st.sampled_from(PIECES), min_size=1, max_size=8).map("/".join),
)
property_settings = hypothesis_settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@property_settings
@given(path=paths)
def test_resolved_path_is_always_strictly_inside(layout, path):
    try:
        resolved = resolve_inside(layout, path)
    except InvalidPath:
        return
    real_root = layout.resolve()
    assert resolved.is_relative_to(real_root)
    assert resolved != real_root


@pytest.mark.django_db(transaction=True)  # a sync is recorded in the database
@property_settings
@given(path=paths)
def test_syncing_any_path_touches_nothing_outside(layout, settings, path):
    settings.WORKSPACE_ROOT = layout.parent
    outside = layout.parent.parent / "outside"
    sibling = layout.parent / "s2"
    before = (tree(outside), tree(sibling))
    try:
        written = asyncio.run(services.sync_in(session_id="s1", files={path: "x"}))
    except WorkspaceError:
        written = []
    assert (tree(outside), tree(sibling)) == before
    for rel in written:
        assert resolve_inside(layout, rel).read_text() == "x"
