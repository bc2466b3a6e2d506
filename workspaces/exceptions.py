"""The workspace errors: one root, a stable ``code`` each, structured attributes.

Callers branch on the type or on ``code``; ``message`` is for humans and never
contains file contents.
"""

from __future__ import annotations

REPR_LIMIT = 200


def short_repr(value: object, limit: int = REPR_LIMIT) -> str:
    """``repr(value)`` cut to ``limit`` characters, safe to log or show."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class WorkspaceError(Exception):
    """Root of every error raised by the workspaces app."""

    code: str = "WORKSPACE_ERROR"
    #: Every workspace error is about the request, so the client can fix it and retry.
    recoverable = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidSessionId(WorkspaceError):
    """The session id is not 1-64 characters of letters, digits, ``_`` or ``-``."""

    code = "INVALID_SESSION_ID"

    def __init__(self, session_id: object) -> None:
        super().__init__(f"invalid session id {short_repr(session_id)}")
        self.session_id = session_id


class InvalidPath(WorkspaceError):
    """A path was refused: it could leave the workspace or is unusable."""

    code = "INVALID_PATH"

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"path {short_repr(path)} refused: {reason}")
        self.path = path
        self.reason = reason


class InvalidContent(WorkspaceError):
    """A file's content could not be decoded as declared."""

    code = "INVALID_CONTENT"

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"content of {short_repr(path)} refused: {reason}")
        self.path = path
        self.reason = reason


class PayloadTooLarge(WorkspaceError):
    """A sync or read exceeds a configured limit."""

    code = "PAYLOAD_TOO_LARGE"

    def __init__(self, what: str, limit: int, actual: int) -> None:
        super().__init__(f"{what} is {actual}, over the limit of {limit}")
        self.what = what
        self.limit = limit
        self.actual = actual


class WorkspaceNotFound(WorkspaceError):
    """No workspace exists for the session."""

    code = "WORKSPACE_NOT_FOUND"

    def __init__(self, session_id: str) -> None:
        super().__init__(f"no workspace for session {short_repr(session_id)}")
        self.session_id = session_id
