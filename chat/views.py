"""HTTP views of the chat app, and the JSON answers of Django's error handlers.

Every answer of this server is JSON: the error handlers (wired in
``dashboard_ai.urls`` and ``CSRF_FAILURE_VIEW``) replace Django's HTML pages with
``{"code", "message"}`` bodies, as the sessions API sends (docs/protocol.md, "HTTP").
With ``DEBUG`` on, Django shows its own debug pages instead.
"""

from __future__ import annotations

import time

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

import dashboard_ai
from chat import agent
from chat.api import error_response, method_not_allowed
from chat.registry import registry
from workspaces.checks import check_workspace_root

STARTED = time.monotonic()
HEALTH_METHODS = ("GET", "HEAD")


@csrf_exempt  # it reads no cookie; other methods get the 405 below, not a CSRF 403
async def health(request: HttpRequest) -> JsonResponse:
    """Liveness and configuration facts for load balancers and operators (never secrets)."""
    if request.method not in HEALTH_METHODS:
        return method_not_allowed(HEALTH_METHODS)
    problems = await sync_to_async(check_workspace_root, thread_sensitive=False)(None)
    return JsonResponse(
        {
            "status": "ok",
            "version": dashboard_ai.__version__,
            "uptimeSeconds": round(time.monotonic() - STARTED, 1),
            "activeSessions": registry.active,
            "workspaceRootWritable": not problems,
            "modelConfigured": agent.model_configured(),
        }
    )


def bad_request(request: HttpRequest, exception: Exception) -> JsonResponse:
    """``handler400``: a malformed request, or a ``Host`` not in ``ALLOWED_HOSTS``."""
    return error_response(
        status=400,
        code="BAD_REQUEST",
        message="The server cannot answer this request (is its Host allowed?).",
    )


def permission_denied(request: HttpRequest, exception: Exception) -> JsonResponse:
    """``handler403``."""
    return error_response(status=403, code="FORBIDDEN", message="This request is not allowed.")


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    """``CSRF_FAILURE_VIEW``: a view that is not CSRF exempt refused a cross-site request."""
    return error_response(
        status=403, code="FORBIDDEN", message="This request failed the cross-site request check."
    )


def page_not_found(request: HttpRequest, exception: Exception) -> JsonResponse:
    """``handler404``: an address the server does not serve."""
    return error_response(
        status=404, code="NOT_FOUND", message="Nothing is served at this address."
    )


def server_error(request: HttpRequest) -> JsonResponse:
    """``handler500``: an unexpected failure (Django has logged the traceback)."""
    return error_response(
        status=500, code="INTERNAL", message="The server failed; details are in its log."
    )
