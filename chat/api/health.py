"""``GET /health``: liveness and configuration facts for load balancers and operators."""

from __future__ import annotations

import time

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

import dashboard_ai
from chat.agent import options
from chat.api.errors import method_not_allowed
from chat.runtime import get_runtime
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
            "activeSessions": get_runtime().sessions.active,
            "workspaceRootWritable": not problems,
            "modelConfigured": options.model_configured(),
        }
    )
