"""Checks on WebSocket handshakes, before any consumer runs."""

from __future__ import annotations

import logging
from typing import Any

from channels.security.websocket import OriginValidator, WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

from chat import metrics

logger = logging.getLogger("dashboard_ai.security")


class BrowserOriginValidator(OriginValidator):  # type: ignore[misc]
    """Refuse handshakes whose ``Origin`` is not one of the frontend's origins.

    The check defends against cross-site WebSocket hijacking, which only a browser
    can be tricked into; browsers always send ``Origin``. A handshake without one
    comes from a non-browser client (a CLI, a test), which could forge any origin
    anyway, so it is let through.
    """

    def valid_origin(self, parsed_origin: Any) -> bool:
        if parsed_origin is None:
            return True
        valid = bool(self.validate_origin(parsed_origin))
        if not valid:
            metrics.refused("origin")
            logger.warning(
                "websocket origin refused", extra={"origin": parsed_origin.geturl()[:200]}
            )
        return valid


class AllowedHostValidator:
    """Refuse handshakes whose ``Host`` is not in ``ALLOWED_HOSTS`` (as Django does for HTTP)."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        domain, _port = split_domain_port(host)
        if domain and validate_host(domain, settings.ALLOWED_HOSTS):
            return await self.application(scope, receive, send)
        metrics.refused("host")
        logger.warning("websocket host refused", extra={"host": host[:200]})
        return await WebsocketDenier()(scope, receive, send)
