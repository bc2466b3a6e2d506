"""Fencing: once a session has a new owner, the old one cannot write its stored files.

The server that owns a session (see :mod:`chat.session.ownership`) claims the session's
stored workspace with its lease's fencing token as it starts (:func:`claim`), and runs
everything it does for the session "as" that token (:func:`writing_as`). Every write of
files or undo states checks, in the transaction that writes, that the workspace is still
claimed by the token it runs as, and raises :class:`StaleWriter` when a newer owner has
claimed it since: a server that was paused or cut off past its lease finds its writes
refused even if it has not noticed yet that the session moved.

The token travels in a context variable, not in every service's signature: it must
follow each write an owner makes, from its tasks into the threads the ORM runs in
(``asyncio.to_thread`` and ``sync_to_async`` copy the context). Code that runs as no
token (the cleanup command, the HTTP API) is not fenced.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_writer: ContextVar[int | None] = ContextVar("workspace_writer", default=None)


class StaleWriter(Exception):
    """A newer owner has claimed the session's workspace: this one may not write."""


def run_as(token: int) -> None:
    """Write as ``token`` for the rest of the current task (a session's owner task)."""
    _writer.set(token)


@contextmanager
def writing_as(token: int) -> Iterator[None]:
    """Write as ``token`` within the block (a frame handled for the owner)."""
    reset = _writer.set(token)
    try:
        yield
    finally:
        _writer.reset(reset)


def writer() -> int | None:
    """The token the current task writes as, if any."""
    return _writer.get()
