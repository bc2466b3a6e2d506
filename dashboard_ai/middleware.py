"""HTTP request logging: one line per request with method, path, status, duration."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

logger = logging.getLogger("dashboard_ai.http")


class RequestLogMiddleware:
    """Log every HTTP request once, after the response is built."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], Awaitable[HttpResponseBase]]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.monotonic()
        response = await self.get_response(request)
        logger.info(
            "http request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "durationMs": round((time.monotonic() - started) * 1000, 1),
            },
        )
        return response
