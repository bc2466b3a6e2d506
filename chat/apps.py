from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.utils.autoreload import autoreload_started


class ChatConfig(AppConfig):
    """The chat app."""

    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Under runserver's autoreloader the server runs in a thread; the graceful
        # SIGTERM handler goes on the main thread when the reloader starts there.
        autoreload_started.connect(_install_shutdown, dispatch_uid="chat.shutdown")


def _install_shutdown(sender: object, **kwargs: Any) -> None:
    from chat.session import shutdown  # the registry it imports needs the app registry ready

    shutdown.install()
