"""Optional shared-token auth for the socket and the HTTP API (``CHAT_AUTH_TOKEN``)."""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.http import HttpRequest

#: The subprotocol a browser offers beside ``auth.<token>``; the server selects it,
#: since a browser fails a handshake whose offered subprotocols all go unanswered.
SUBPROTOCOL = "dashboard-ai"
TOKEN_PREFIX = "auth."


def presents_token(scope: dict[str, Any]) -> bool:
    """Whether the handshake carries the configured token (always true when none is set).

    The token may come as ``?token=...`` or as a ``Sec-WebSocket-Protocol`` entry
    ``auth.<token>``; it is compared in constant time.
    """
    expected = settings.CHAT_AUTH_TOKEN
    if not expected:
        return True
    query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
    candidates = list(query.get("token", []))
    candidates += [
        protocol[len(TOKEN_PREFIX) :]
        for protocol in scope.get("subprotocols") or []
        if protocol.startswith(TOKEN_PREFIX)
    ]
    matches = [hmac.compare_digest(c.encode(), expected.encode()) for c in candidates]
    return any(matches)


def request_presents_token(request: HttpRequest) -> bool:
    """Whether an HTTP request carries the configured token (always true when none is set).

    The token may come as ``Authorization: Bearer <token>`` or as ``?token=...``; it is
    compared in constant time.
    """
    expected = settings.CHAT_AUTH_TOKEN
    if not expected:
        return True
    candidates = request.GET.getlist("token")
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        candidates.append(credentials.strip())
    matches = [hmac.compare_digest(c.encode(), expected.encode()) for c in candidates]
    return any(matches)
