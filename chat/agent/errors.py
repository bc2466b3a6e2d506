"""How a failed turn is reported: which error code, and whether to retry."""

from __future__ import annotations

from chat.events import TurnEnded
from chat.exceptions import ChatError, ModelError, ModelUnavailable

# HTTP statuses that mean "the model API is busy or away; try again later".
UNAVAILABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})


def error_for_result(ended: TurnEnded) -> ChatError:
    """The error for a turn whose result says it failed."""
    if ended.subtype == "error_max_turns":
        return ModelError("Claude used all the steps allowed for one message; ask again.")
    if ended.subtype == "error_max_budget_usd":
        return ModelError("This message reached its spending limit.")
    status = ended.api_error_status
    if status in UNAVAILABLE_STATUSES:
        return ModelUnavailable(f"The model API is unavailable (HTTP {status}); try again.")
    if status is not None:
        return ModelError(f"The model API refused the request (HTTP {status}).")
    return ModelError("Claude could not finish this message; try again.")


def model_error_for_exception(exc: BaseException) -> ChatError:
    """The error for a turn that raised instead of returning a result."""
    if isinstance(exc, TimeoutError):
        return ModelUnavailable("The model stopped responding; try again.")
    return ModelError("The agent process failed; try again.")
