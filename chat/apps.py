from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.utils.autoreload import autoreload_started


class ChatConfig(AppConfig):
    """The chat app."""

    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        """Create the process's runtime; arrange for the graceful SIGTERM handler; tell
        the workspaces' cleanup which sessions are unused (``workspaces.expiry``); end a
        Django login's sockets when it logs out (``chat.logouts``)."""
        # Imported here: the runtime's modules need the app registry ready.
        from django.contrib.auth.signals import user_logged_out

        from chat import logouts
        from chat.expiry import ChatSessionKeeper
        from chat.runtime import get_runtime
        from workspaces import expiry

        get_runtime()
        expiry.register_keeper(ChatSessionKeeper())
        user_logged_out.connect(logouts.on_logout, dispatch_uid="chat.logouts")
        # Under runserver's autoreloader the server runs in a thread; the graceful
        # SIGTERM handler goes on the main thread when the reloader starts there.
        autoreload_started.connect(_install_shutdown, dispatch_uid="chat.shutdown")


def _install_shutdown(sender: object, **kwargs: Any) -> None:
    from chat.runtime import get_runtime
    from chat.session import shutdown

    shutdown.install(get_runtime())
