"""The sessions HTTP API (docs/protocol.md, "HTTP sessions API"): thin async views.

Each view checks the method and the caller's credentials (:mod:`chat.auth`), then
calls one service of :mod:`chat.api.transcripts` with the server's id of the caller's
session (:mod:`chat.owners`): another user's session is not found, as an unknown id.
Errors are JSON ``{"code", "message"}`` with a stable code; an unexpected failure is
``INTERNAL``, with its traceback in the server log only. CORS comes from the
``corsheaders`` middleware, as for ``/health``. The views are CSRF exempt: in every
mode but ``django`` they authenticate by token, never by cookie; in ``django`` mode
nothing they answer can be used cross-site (docs/security.md, "Access").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from chat import owners
from chat.api import transcripts
from chat.api.errors import error_response, method_not_allowed
from chat.auth import Identity, identify_request
from chat.exceptions import ChatError, Unauthorized
from chat.runtime import get_runtime
from workspaces.exceptions import InvalidSessionId, WorkspaceError
from workspaces.paths import validate_session_id

logger = logging.getLogger("dashboard_ai.http")

#: A view gets the caller and the server's id of the session the address names ("" for
#: an address that names none).
View = Callable[[HttpRequest, Identity, str], Coroutine[Any, Any, HttpResponse]]
Wrapped = Callable[..., Coroutine[Any, Any, HttpResponse]]

#: The HTTP status of each error a view may raise; anything else is a 500.
STATUS_BY_ERROR: dict[type[Exception], int] = {
    InvalidSessionId: 400,
}


def api_view(*methods: str) -> Callable[[View], Wrapped]:
    """Method check, credentials check, session id check and error mapping for a view."""

    def decorate(view: View) -> Wrapped:
        @wraps(view)
        async def wrapper(request: HttpRequest, session_id: str = "") -> HttpResponse:
            response = await _answer(view, methods, request, session_id)
            response["Cache-Control"] = "no-store"
            return response

        exempt: Wrapped = csrf_exempt(wrapper)
        return exempt

    return decorate


async def _answer(
    view: View, methods: tuple[str, ...], request: HttpRequest, session_id: str
) -> HttpResponse:
    if request.method not in methods:
        return method_not_allowed(methods)
    try:
        caller = await identify_request(request)
    except Unauthorized as exc:
        return error_response(status=401, code=exc.code, message=exc.message)
    try:
        if session_id:
            validate_session_id(session_id)
        return await view(request, caller, owners.server_id(caller, session_id))
    except transcripts.SessionNotFound:
        # Named by the caller's id: the server's id of it is the server's business.
        not_found = transcripts.SessionNotFound(session_id)
        return error_response(status=404, code=not_found.code, message=str(not_found))
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


@api_view("GET")
async def session_list(request: HttpRequest, caller: Identity, _: str) -> HttpResponse:
    """The caller's sessions (every session, when the server has no users)."""
    found = await transcripts.session_list(caller)
    return JsonResponse(found.model_dump(mode="json", by_alias=True))


@api_view("GET", "DELETE")
async def session(request: HttpRequest, caller: Identity, session_id: str) -> HttpResponse:
    """``GET``: the session's totals and files. ``DELETE``: remove everything of it."""
    if request.method == "DELETE":
        sessions = get_runtime().sessions
        if not await transcripts.delete_session(sessions=sessions, session_id=session_id):
            raise transcripts.SessionNotFound(session_id)
        return HttpResponse(status=204)
    summary = await transcripts.session_summary(session_id=session_id)
    return JsonResponse(summary.model_dump(mode="json", by_alias=True))


@api_view("GET")
async def session_messages(request: HttpRequest, caller: Identity, session_id: str) -> HttpResponse:
    """The session's conversation, for a reloaded page to draw."""
    found = await transcripts.session_history(session_id=session_id)
    return JsonResponse(found.model_dump(mode="json", by_alias=True))
