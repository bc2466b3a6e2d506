"""``GET /health``: liveness and configuration facts for load balancers and operators."""

from __future__ import annotations

import asyncio
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

import dashboard_ai
from chat.agent import options
from chat.api.dependencies import NOT_CONFIGURED, database_status, redis_status
from chat.api.errors import method_not_allowed
from chat.runtime import get_runtime
from workspaces.checks import check_workspace_root

STARTED = time.monotonic()
HEALTH_METHODS = ("GET", "HEAD")


@csrf_exempt  # it reads no cookie; other methods get the 405 below, not a CSRF 403
async def health(request: HttpRequest) -> JsonResponse:
    """Liveness and configuration facts for load balancers and operators (never secrets).

    503 (``degraded``) when Redis or the database does not answer: such a server
    cannot serve sessions, so a load balancer should send sockets elsewhere.
    """
    if request.method not in HEALTH_METHODS:
        return method_not_allowed(HEALTH_METHODS)
    runtime = get_runtime()
    problems = await sync_to_async(check_workspace_root, thread_sensitive=False)(None)
    redis, database = await asyncio.gather(redis_status(runtime.redis), database_status())
    reachable = redis in ("ok", NOT_CONFIGURED) and database == "ok"
    return JsonResponse(
        {
            "status": "ok" if reachable else "degraded",
            "version": dashboard_ai.__version__,
            "uptimeSeconds": round(time.monotonic() - STARTED, 1),
            "serverId": settings.SERVER_ID,
            "activeSessions": runtime.sessions.active,
            "ownedSessions": runtime.sessions.ownership.owned,
            "redis": redis,
            "database": database,
            "workspaceRootWritable": not problems,
            "modelConfigured": options.model_configured(),
        },
        status=200 if reachable else 503,
    )
