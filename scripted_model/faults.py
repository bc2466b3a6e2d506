"""Faults a scripted turn can inject, shaped like the failures the real API shows.

A fault with ``times=None`` fires on every request for its turn. With
``times=N`` it fires on the first N requests of one conversation step and the
turn is then answered normally; see :mod:`scripted_model.conversation` for the
key that identifies "the same conversation step" across the client's retries.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The error ``type`` the API puts in the body for each status it sends.
ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class HttpError:
    """Answer with an HTTP error status, the API's error body and ``retry-after``.

    ``should_retry`` sets the ``x-should-retry`` header (the CLI gives up at once
    on ``false``); None leaves it out.
    """

    status: int = 529
    message: str = "Overloaded"
    retry_after: int | None = 1
    should_retry: bool | None = None
    times: int | None = None

    @property
    def error_type(self) -> str:
        """The error ``type`` the API uses for this status."""
        return ERROR_TYPES.get(self.status, "api_error")


@dataclass(frozen=True)
class Stall:
    """Send the headers (and ``message_start`` unless told not to), then nothing.

    The connection stays silent until the client goes away or the server stops.
    """

    after_message_start: bool = True
    times: int | None = None


@dataclass(frozen=True)
class DropConnection:
    """Close the socket abruptly after ``after_events`` SSE events of the stream."""

    after_events: int = 4
    times: int | None = None


Fault = HttpError | Stall | DropConnection
