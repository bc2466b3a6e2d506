"""Who is asking: the identity of a socket or an HTTP request, by ``AUTH_MODE``.

- ``none``: anyone; every session is everyone's (a laptop).
- ``token``: one shared ``CHAT_AUTH_TOKEN``; still no users.
- ``jwt``: a bearer JWT per user (:mod:`chat.jwt_auth`); the user is its ``sub``.
- ``django``: the user of a Django session cookie (Channels' ``AuthMiddlewareStack``
  on the socket, Django's own middleware over HTTP).

A token travels as ``?token=...`` or a ``Sec-WebSocket-Protocol`` entry
``auth.<token>`` on the socket, as ``Authorization: Bearer <token>`` or ``?token=``
over HTTP. It is never logged: a refusal's log line names the reason only.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from django.conf import settings
from django.http import HttpRequest

from chat.exceptions import Unauthorized

logger = logging.getLogger("dashboard_ai.security")

#: The subprotocol a browser offers beside ``auth.<token>``; the server selects it,
#: since a browser fails a handshake whose offered subprotocols all go unanswered.
SUBPROTOCOL = "dashboard-ai"
TOKEN_PREFIX = "auth."

#: The longest user id kept as a session's owner (the column holds 255).
MAX_USER_CHARS = 200


@dataclass(frozen=True)
class Identity:
    """The caller: ``user`` is ``""`` when the server has no users (modes none, token)."""

    user: str = ""
    expires_at: float | None = None  # when its credentials expire (epoch seconds)


NOBODY = Identity()


def socket_tokens(scope: dict[str, Any]) -> list[str]:
    """The tokens a handshake presents: ``?token=`` values, then ``auth.<token>`` entries."""
    query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
    tokens = list(query.get("token", []))
    tokens += [
        protocol[len(TOKEN_PREFIX) :]
        for protocol in scope.get("subprotocols") or []
        if protocol.startswith(TOKEN_PREFIX)
    ]
    return [token for token in tokens if token]


def bearer_token(request: HttpRequest) -> str | None:
    """The token of the request's ``Authorization: Bearer <token>`` header, if any."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def request_tokens(request: HttpRequest) -> list[str]:
    """The tokens a request presents: ``Authorization: Bearer``, then ``?token=`` values."""
    bearer = bearer_token(request)
    tokens = [bearer] if bearer else []
    return tokens + [token for token in request.GET.getlist("token") if token]


async def identify_socket(scope: dict[str, Any]) -> Identity:
    """The identity of a handshake; :class:`Unauthorized` when it has none valid."""
    if settings.AUTH_MODE == "django":
        return _django_identity(scope.get("user"))
    return await _identify(socket_tokens(scope))


async def identify_request(request: HttpRequest) -> Identity:
    """The identity of an HTTP request; :class:`Unauthorized` when it has none valid."""
    if settings.AUTH_MODE == "django":
        return _django_identity(await request.auser())
    return await _identify(request_tokens(request))


async def _identify(tokens: list[str]) -> Identity:
    mode = settings.AUTH_MODE
    if mode == "none":
        return NOBODY
    if mode == "token":
        expected = settings.CHAT_AUTH_TOKEN.encode()
        # Every candidate compared, in constant time: no early exit to time.
        matches = [hmac.compare_digest(token.encode(), expected) for token in tokens]
        if any(matches):
            return NOBODY
        raise _refused("no valid token")
    return await _jwt_identity(tokens)


async def _jwt_identity(tokens: list[str]) -> Identity:
    from chat import jwt_auth  # only a server in jwt mode loads PyJWT and its keys

    if not tokens:
        raise _refused("no token")
    try:
        claims = await jwt_auth.averify(tokens[0])
    except jwt_auth.InvalidToken as exc:
        raise _refused(exc.reason) from None
    if len(claims.subject) > MAX_USER_CHARS:
        raise _refused("subject too long")
    return Identity(user=f"jwt:{claims.subject}", expires_at=claims.expires_at)


def _django_identity(user: Any) -> Identity:
    if user is None or not user.is_authenticated:
        raise _refused("not logged in", "This server needs you to log in.")
    return Identity(user=f"django:{user.pk}")


def _refused(reason: str, message: str = "This server needs a valid token.") -> Unauthorized:
    logger.warning("credentials refused", extra={"mode": settings.AUTH_MODE, "reason": reason})
    return Unauthorized(message)
