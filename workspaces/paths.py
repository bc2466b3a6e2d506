"""The one gate for session ids and paths inside a workspace (synchronous).

Every path that reaches the disk, whether a client sync or an agent tool call, goes
through :func:`resolve_inside`. It refuses rather than repairs: a path is accepted
only if it is a plain relative POSIX path in Unicode NFC, nested at most
``settings.WORKSPACE_MAX_DEPTH`` directories deep, with no name that is not user work
(:data:`NOT_USER_WORK_DIRS`, :data:`NOT_USER_WORK_NAMES`, :data:`NOT_USER_WORK_PATTERNS`),
whose resolved form (symlinks followed) stays inside the workspace root, and that does
not differ from a name already on disk only by Unicode normalisation.

This is also the one rule for what a workspace holds: whatever the gate accepts is
listed, reported and undone (``services._walk`` lists exactly what
:func:`path_problem` accepts), and whatever it refuses cannot be created by a client
or by the agent. Only the atomic writer's temp files (``TEMP_PREFIX…TEMP_SUFFIX``),
which it creates without the gate and renames at once, are refused and exist.
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from fnmatch import translate
from pathlib import Path

from django.conf import settings

from workspaces.exceptions import InvalidPath, InvalidSessionId, short_repr

security_log = logging.getLogger("dashboard_ai.security")

SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
NAME_MAX = 255
PATH_MAX = 4096

_DRIVE_RE = re.compile(r"[A-Za-z]:")
# Unicode categories refused anywhere in a path: controls, lone surrogates, and the
# line/paragraph separators that would split a log line.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
# Slash look-alikes that NFKC leaves alone (NFKC already maps the fullwidth and small
# forms of '/', '\\' and '.' to ASCII, which the normalisation check catches).
_SLASH_LOOKALIKES = frozenset("\u2044\u2215\u2216\u29f8\u29f9")
_STRUCTURAL = "/\\."

# Prefix and suffix of the temp files an atomic write leaves for an instant.
TEMP_PREFIX = ".wstmp-"
TEMP_SUFFIX = ".tmp"
# Names that are not user work, refused as any segment of a path: version-control and
# dependency trees, OS litter, editor swap, backup and lock files, and our temp files.
NOT_USER_WORK_DIRS = frozenset({".git", "node_modules"})
NOT_USER_WORK_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
NOT_USER_WORK_PATTERNS = ("*.swp", "*.swo", "*~", ".#*", "#*#", f"{TEMP_PREFIX}*{TEMP_SUFFIX}")
_NOT_USER_WORK_RE = re.compile("|".join(translate(pattern) for pattern in NOT_USER_WORK_PATTERNS))
# The refused categories' only ASCII members (Cc).
_ASCII_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def is_valid_session_id(session_id: object) -> bool:
    """Whether ``session_id`` is 1-64 ASCII letters, digits, ``_`` or ``-``."""
    return isinstance(session_id, str) and SESSION_ID_RE.fullmatch(session_id) is not None


def validate_session_id(session_id: str) -> str:
    """Return ``session_id`` unchanged, or log and raise :class:`InvalidSessionId`."""
    if not is_valid_session_id(session_id):
        security_log.warning(
            "session id refused",
            extra={"session_id": short_repr(session_id), "reason": "invalid session id"},
        )
        raise InvalidSessionId(session_id)
    return session_id


def _refuse(path: object, reason: str) -> InvalidPath:
    """Log one security line for a refused path and build the error to raise."""
    security_log.warning("path refused", extra={"path": short_repr(path), "reason": reason})
    return InvalidPath(path, reason)


def path_problem(path: str) -> str | None:
    """Why ``path`` is not a plain relative POSIX path, or ``None`` if it is one.

    Silent and without disk access (it reads ``settings.WORKSPACE_MAX_DEPTH``):
    :func:`resolve_inside` applies it first, and workspace listings list exactly the
    names it accepts.
    """
    if not path:
        return "empty path"
    if "\x00" in path:
        return "contains a NUL byte"
    ascii_only = path.isascii()  # the usual case, and checked much faster (a walk asks it)
    if (
        _ASCII_CONTROLS.search(path)
        if ascii_only
        else any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in path)
    ):
        return "contains a control character"
    if "\\" in path:
        return "contains a backslash"
    if path.startswith("/"):
        return "absolute path"
    if _DRIVE_RE.match(path):
        return "starts with a drive letter"
    if not ascii_only and (problem := _unicode_problem(path)):  # ASCII is NFKC and NFC
        return problem
    encoded_length = len(path.encode("utf-8"))
    if encoded_length >= PATH_MAX:
        return f"longer than {PATH_MAX - 1} bytes"
    segments = path.split("/")
    max_depth = int(settings.WORKSPACE_MAX_DEPTH)
    if len(segments) - 1 > max_depth:
        return f"nested deeper than {max_depth} directories"
    for segment in segments:
        if not segment:
            return "empty segment"
        if segment.startswith("..") or segment == ".":
            return "'.' or '..' segment"
        if segment.endswith((".", " ")):
            return "segment ends with a dot or space"
        if len(segment.encode("utf-8")) > NAME_MAX:
            return f"segment longer than {NAME_MAX} bytes"
        if segment in NOT_USER_WORK_DIRS:
            return "names a .git or node_modules directory (not user work)"
        if segment in NOT_USER_WORK_NAMES or _NOT_USER_WORK_RE.match(segment):
            return "an OS, editor or temp file name (not user work)"
    return None


def _unicode_problem(path: str) -> str | None:
    """Why a non-ASCII ``path`` is refused for what Unicode normalisation does to it."""
    normalised = unicodedata.normalize("NFKC", path)
    if any(normalised.count(ch) != path.count(ch) for ch in _STRUCTURAL) or any(
        ch in _SLASH_LOOKALIKES for ch in path
    ):
        return "contains a look-alike of '/', '\\' or '.'"
    # One spelling per name: café.txt composed and decomposed would be two files that
    # look the same. NFC is what browsers and most editors send.
    if not unicodedata.is_normalized("NFC", path):
        return "not in Unicode NFC form"
    return None


def resolve_inside(root: Path, path: str) -> Path:
    """The absolute, resolved location of ``path`` inside ``root``.

    Raises :class:`InvalidPath` (after one ``dashboard_ai.security`` log line) unless
    ``path`` is a plain relative POSIX path and, with symlinks followed, it lands
    strictly inside ``root``. The returned path is resolved, so a caller acting on
    it does not follow a symlink that was checked here. Nothing is decoded: a
    literal ``%2e%2e`` is an ordinary file name.
    """
    if not isinstance(path, str):
        raise _refuse(path, "not a string")
    problem = path_problem(path)
    if problem is not None:
        raise _refuse(path, problem)
    real_root = root.resolve()
    if len(str(real_root).encode("utf-8")) + 1 + len(path.encode("utf-8")) >= PATH_MAX:
        raise _refuse(path, f"longer than {PATH_MAX - 1} bytes with the workspace root")
    try:
        candidate = (real_root / path).resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop on Python < 3.13
        raise _refuse(path, "cannot be resolved") from None
    if candidate == real_root or not candidate.is_relative_to(real_root):
        raise _refuse(path, "resolves outside the workspace")
    if _has_normalised_twin(real_root, candidate):
        raise _refuse(path, "same name as an existing file once normalised")
    return candidate


def _has_normalised_twin(real_root: Path, candidate: Path) -> bool:
    """Whether ``candidate`` would create a name that an entry on disk has once in NFC.

    Such entries predate the NFC rule (the gate now refuses every other spelling).
    Only the first missing part of ``candidate`` can be new, so only its directory
    is listed, and only when something is about to be created.
    """
    if os.path.lexists(candidate):
        return False
    directory = real_root
    for part in candidate.relative_to(real_root).parts:
        if not os.path.lexists(directory / part):
            break
        directory = directory / part
    else:
        return False
    try:
        with os.scandir(directory) as entries:
            # An ASCII name is its own NFC form, and it is not this missing part.
            return any(
                not entry.name.isascii() and unicodedata.normalize("NFC", entry.name) == part
                for entry in entries
            )
    except (FileNotFoundError, NotADirectoryError):  # the root does not exist yet
        return False


def relative_to_root(root: Path, absolute: Path) -> str:
    """``absolute`` as a POSIX path relative to ``root`` (which is resolved first)."""
    return absolute.relative_to(root.resolve()).as_posix()
