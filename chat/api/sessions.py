"""The sessions HTTP API (docs/protocol.md, "HTTP sessions API"): thin async views.

Each view checks the method and the token, then calls one service of
:mod:`chat.api.transcripts`. Errors are JSON ``{"code", "message"}`` with a stable code;
an unexpected failure is ``INTERNAL``, with its traceback in the server log only.
CORS comes from the ``corsheaders`` middleware, as for ``/health``. The views are
CSRF exempt: they authenticate by token, never by cookie.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from chat.api import transcripts
from chat.api.errors import error_response, method_not_allowed
from chat.auth import request_presents_token
from chat.exceptions import ChatError, Unauthorized
from chat.runtime import get_runtime
from workspaces.exceptions import InvalidSessionId, WorkspaceError
from workspaces.paths import validate_session_id

logger = logging.getLogger("dashboard_ai.http")

View = Callable[[HttpRequest, str], Coroutine[Any, Any, HttpResponse]]

#: The HTTP status of each error a view may raise; anything else is a 500.
STATUS_BY_ERROR: dict[type[Exception], int] = {
    InvalidSessionId: 400,
    transcripts.SessionNotFound: 404,
}


def api_view(*methods: str) -> Callable[[View], View]:
    """Method check, token check, session id check and error mapping for a view."""

    def decorate(view: View) -> View:
        @wraps(view)
        async def wrapper(request: HttpRequest, session_id: str) -> HttpResponse:
            response = await _answer(view, methods, request, session_id)
            response["Cache-Control"] = "no-store"
            return response

        exempt: View = csrf_exempt(wrapper)
        return exempt

    return decorate


async def _answer(
    view: View, methods: tuple[str, ...], request: HttpRequest, session_id: str
) -> HttpResponse:
    if request.method not in methods:
        return method_not_allowed(methods)
    if not request_presents_token(request):
        return error_response(
            status=401, code=Unauthorized.code, message="This server needs a valid token."
        )
    try:
        validate_session_id(session_id)
        return await view(request, session_id)
    except (ChatError, WorkspaceError) as exc:
        status = STATUS_BY_ERROR.get(type(exc))
        if status is not None:
            return error_response(status=status, code=exc.code, message=str(exc))
        logger.exception("api request failed", extra={"sessionId": session_id})
    except Exception:
        logger.exception("api request failed", extra={"sessionId": session_id})
    return error_response(
        status=500, code="INTERNAL", message="The server failed; details are in its log."
    )


@api_view("GET", "DELETE")
async def session(request: HttpRequest, session_id: str) -> HttpResponse:
    """``GET``: the session's totals and files. ``DELETE``: remove everything of it."""
    if request.method == "DELETE":
        sessions = get_runtime().sessions
        if not await transcripts.delete_session(sessions=sessions, session_id=session_id):
            raise transcripts.SessionNotFound(session_id)
        return HttpResponse(status=204)
    summary = await transcripts.session_summary(session_id=session_id)
    return JsonResponse(summary.model_dump(mode="json", by_alias=True))


@api_view("GET")
async def session_messages(request: HttpRequest, session_id: str) -> HttpResponse:
    """The session's conversation, for a reloaded page to draw."""
    found = await transcripts.session_history(session_id=session_id)
    return JsonResponse(found.model_dump(mode="json", by_alias=True))
