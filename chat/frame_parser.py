"""Parsing client frames without stalling the event loop.

``json.loads`` and pydantic hold the GIL for as long as they run, and what they cost
grows with a frame's structure, not its size: a 30 MiB frame of 2.2 million empty
``files`` entries took seconds to parse and validate, during which no other socket or
HTTP request of the process was served (a thread would not help, for the GIL). So a
frame larger than :data:`INLINE_MAX_CHARS` is parsed in a worker process, and gets
there through a private temp file written by a thread (the kernel copies it, without
the GIL): pickled into the pool's pipe, 30 MiB held the GIL for about 200 ms. The loop
gets back the validated frame, or the error to send. Small frames, nearly all of them,
are parsed inline: the round trip would cost more.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import tempfile
from concurrent.futures import BrokenExecutor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from chat.exceptions import ChatError, InternalError
from chat.protocol import ClientFrame, FrameLimits, parse_client_frame
from workspaces.exceptions import WorkspaceError

logger = logging.getLogger("dashboard_ai.ws")

#: Frames up to this many characters are parsed on the event loop (well under 10 ms,
#: whatever their structure).
INLINE_MAX_CHARS = 64 * 1024


class FrameRefused(ChatError):
    """A frame refused in the worker process, with the code the refusal had there."""

    def __init__(self, code: str, message: str, recoverable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.recoverable = recoverable


@dataclass(frozen=True, slots=True)
class _Refusal:
    """What the worker sends back instead of raising (exceptions do not all pickle)."""

    code: str
    message: str
    recoverable: bool


def _parse_in_worker(path: str, limits: FrameLimits) -> ClientFrame | _Refusal:
    text = Path(path).read_text(encoding="utf-8", errors="surrogatepass")
    try:
        return parse_client_frame(text, limits)
    except (ChatError, WorkspaceError) as exc:
        return _Refusal(exc.code, exc.message, exc.recoverable)


def _write_frame(text: str) -> str:
    """``text`` in a new 0600 temp file; its path."""
    fd, path = tempfile.mkstemp(prefix="dashboard-ai-frame-")
    with os.fdopen(fd, "w", encoding="utf-8", errors="surrogatepass") as file:
        file.write(text)
    return path


def _start_worker() -> None:
    """The worker logs nothing (it has no log configuration, nor redaction, of ours), and
    yields the CPU to the server: on a small machine, a hostile parse must not take the
    core the event loop needs."""
    logging.disable(logging.CRITICAL)
    os.nice(10)


class FrameParser:
    """Parses frames inline or, when large, in one worker process started on first use."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    async def parse(self, text: str, limits: FrameLimits) -> ClientFrame:
        """The validated frame, or the :class:`ChatError`/``WorkspaceError`` to answer."""
        if len(text) <= INLINE_MAX_CHARS:
            return parse_client_frame(text, limits)
        loop = asyncio.get_running_loop()
        path = await asyncio.to_thread(_write_frame, text)
        try:
            parsed = await loop.run_in_executor(self._worker(), _parse_in_worker, path, limits)
        except BrokenExecutor:  # the worker died (killed, out of memory): start another next time
            logger.exception("the frame parser's worker process failed")
            self.close()
            raise InternalError("The frame could not be parsed; send it again.") from None
        finally:
            Path(path).unlink(missing_ok=True)
        if isinstance(parsed, _Refusal):
            logger.info("large frame refused", extra={"code": parsed.code, "chars": len(text)})
            raise FrameRefused(parsed.code, parsed.message, parsed.recoverable)
        return parsed

    def _worker(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: a fork of a server with threads and CLI pipes is unsafe.
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
            )
        return self._pool

    def close(self) -> None:
        """Stop the worker process, if one was started."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
