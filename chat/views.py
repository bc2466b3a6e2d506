"""HTTP views of the chat app."""

from __future__ import annotations

import time

from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe

import dashboard_ai
from chat import agent
from chat.registry import registry
from workspaces.checks import check_workspace_root

STARTED = time.monotonic()


@require_safe
async def health(request: HttpRequest) -> JsonResponse:
    """Liveness and configuration facts for load balancers and operators (never secrets)."""
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
