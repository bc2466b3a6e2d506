"""ASGI entry point: HTTP to Django, ``/ws/chat`` to the chat consumer."""

from __future__ import annotations

import logging
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard_ai.settings")
# Build the Django app first: it sets up the app registry, which the chat routing
# (models, consumers) needs before it can be imported.
django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from chat.agent.options import model_configured  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from chat.runtime import get_runtime  # noqa: E402
from chat.session import shutdown  # noqa: E402
from dashboard_ai.handshake import AllowedHostValidator, BrowserOriginValidator  # noqa: E402
from dashboard_ai.migrations_lock import migrate  # noqa: E402

if settings.AUTO_MIGRATE:
    # A plain `daphne dashboard_ai.asgi:application` must work on a fresh machine with
    # no other step; deployments that migrate separately set AUTO_MIGRATE=0. Servers
    # started together on one PostgreSQL database migrate one at a time.
    migrate()

if not model_configured():
    logging.getLogger("dashboard_ai").warning(
        "no model configured: set ANTHROPIC_API_KEY (or ANTHROPIC_BASE_URL for a local "
        "model server); chat messages will get MODEL_NOT_CONFIGURED"
    )

chat_sockets = URLRouter(websocket_urlpatterns)
if settings.AUTH_MODE == "django":
    # The user of the handshake's session cookie, in scope["user"] (chat.auth); the
    # other modes never look a cookie up.
    chat_sockets = AuthMiddlewareStack(chat_sockets)

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": AllowedHostValidator(
            BrowserOriginValidator(chat_sockets, settings.CORS_ALLOWED_ORIGINS)
        ),
    }
)

if settings.METRICS_MODE == "port":
    # The metrics on a port of their own (prometheus_client's server, on a thread).
    from chat.metrics import serve_on_port

    serve_on_port()

# Where a server process starts: the graceful SIGTERM handler (a no-op off the main
# thread, as under runserver's autoreloader; chat.apps covers that case).
shutdown.install(get_runtime())
