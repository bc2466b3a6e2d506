"""HTTP views of the chat app."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse


async def health(request: HttpRequest) -> JsonResponse:
    """Liveness and configuration facts for load balancers and operators."""
    return JsonResponse({"status": "ok"})
