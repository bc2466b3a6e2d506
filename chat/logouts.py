"""``AUTH_MODE=django``: logging out ends the sockets opened with that login, on every server.

A Django logout flushes the session behind the cookie, but a socket authenticated with
it at its handshake would go on working until it closes. So each such socket joins a
channel-layer group named for its login (:func:`group_for`), and Django's
``user_logged_out`` signal sends that group one message: through Redis in a fleet, so it
reaches the socket whichever server holds it. The socket then ends as one whose JWT
expired (:mod:`chat.credential_expiry`): no more frames, and once its running turns have
sent their terminal frames, ``TOKEN_EXPIRED`` and close 4401. Other logins of the same
user (another browser) are not touched.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings

logger = logging.getLogger("dashboard_ai.security")

#: The channel-layer message a login's sockets get when it ends (``login_ended``).
LOGIN_ENDED = "login.ended"


def group_for(session_key: str) -> str:
    """The group of the sockets of one Django login. The session key is a credential:
    only its hash is a group name (which Redis and the logs may see)."""
    return "login." + hashlib.sha256(session_key.encode()).hexdigest()[:40]


def on_logout(sender: object, request: Any = None, **kwargs: Any) -> None:
    """Django's ``user_logged_out`` receiver: end the login's sockets.

    The signal comes before the session is flushed, so its key is still known. A channel
    layer that cannot be reached is logged, never raised: the logout itself must work.
    """
    if settings.AUTH_MODE != "django":
        return
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    layer = get_channel_layer()
    if not session_key or layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group_for(session_key), {"type": LOGIN_ENDED})
    except Exception as exc:
        logger.warning("ending a login's sockets failed", extra={"error": type(exc).__name__})
