"""Errors of the chat app; each carries the stable ``code`` sent to the client."""

from __future__ import annotations


class ChatError(Exception):
    """Root of the chat errors: a protocol-level problem reported as an ``error`` frame."""

    code = "INTERNAL"
    recoverable = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidJson(ChatError):
    """The frame is not a JSON document."""

    code = "INVALID_JSON"


class InvalidMessage(ChatError):
    """The frame is JSON but does not match the schema of its type."""

    code = "INVALID_MESSAGE"


class UnknownType(ChatError):
    """The frame's ``type`` is not one the server knows."""

    code = "UNKNOWN_TYPE"


class FrameTooLarge(ChatError):
    """The frame is larger than ``CHAT_MAX_FRAME_BYTES``."""

    code = "PAYLOAD_TOO_LARGE"


class NotInitialized(ChatError):
    """A frame needs a session, but this socket sent no ``init`` for it yet."""

    code = "NOT_INITIALIZED"


class LastSeqAhead(ChatError):
    """An ``init``'s ``lastSeq`` is beyond the last event the session has sent."""

    code = "INVALID_LAST_SEQ"


class SessionBusy(ChatError):
    """A turn is already running in this session."""

    code = "SESSION_BUSY"


class TurnInterrupted(ChatError):
    """The server running the turn stopped before it ended (a crash, a lost lease)."""

    code = "TURN_INTERRUPTED"


class SessionUnavailable(ChatError):
    """The server that owns the session does not answer frames routed to it."""

    code = "SESSION_UNAVAILABLE"


class RateLimited(ChatError):
    """The socket sends frames faster than ``CHAT_RATE_PER_SECOND`` allows."""

    code = "RATE_LIMITED"


class ServerBusy(ChatError):
    """The server is at one of its capacity limits; try again later."""

    code = "SERVER_BUSY"


class Unauthorized(ChatError):
    """The socket did not present the configured ``CHAT_AUTH_TOKEN``."""

    code = "UNAUTHORIZED"
    recoverable = False


class NothingToUndo(ChatError):
    """An ``undo`` asked for more turns than the session can undo."""

    code = "NOTHING_TO_UNDO"


class ModelNotConfigured(ChatError):
    """No API key and no model base URL are configured on the server."""

    code = "MODEL_NOT_CONFIGURED"
    recoverable = False


class ModelUnavailable(ChatError):
    """The model API is overloaded, rate limited, unreachable or stalled."""

    code = "MODEL_UNAVAILABLE"


class ModelError(ChatError):
    """The model or the agent failed for another reason."""

    code = "MODEL_ERROR"


class InternalError(ChatError):
    """A bug on the server; details are in the server log only."""

    code = "INTERNAL"


class QuotaExceeded(ChatError):
    """A user is at one of their quotas: live sessions, turns at once, or spend a day."""

    code = "QUOTA_EXCEEDED"


class TokenExpired(ChatError):
    """The socket's credentials expired; connect again with fresh ones."""

    code = "TOKEN_EXPIRED"
