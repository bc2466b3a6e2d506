"""HTTP routes, and the error handlers that answer JSON instead of Django's HTML pages."""

from __future__ import annotations

from django.conf import settings
from django.urls import URLPattern, URLResolver, path

from chat.api import client_library, console, health, sessions
from chat.api.metrics import metrics_view

urlpatterns: list[URLPattern | URLResolver] = [
    path("health", health.health, name="health"),
    path("metrics", metrics_view, name="metrics"),  # 404 unless METRICS_MODE=token
    *(
        path(f"client/{name}", client_library.client_file, {"name": name}, name=name)
        for name in client_library.CLIENT_FILES.names
    ),
    *(
        path(
            f"console/{name}",
            console.console_file,
            {"name": name},
            name=f"console-{name or 'page'}",
        )
        for name in console.CONSOLE_FILES.names
    ),
    path("api/sessions", sessions.session_list, name="api-sessions"),
    path("api/sessions/<str:session_id>", sessions.session, name="api-session"),
    path(
        "api/sessions/<str:session_id>/messages",
        sessions.session_messages,
        name="api-session-messages",
    ),
]

if settings.ADMIN_ENABLED:
    # Imported only when installed: with ADMIN_ENABLED off there is no admin app at all.
    from django.contrib import admin

    urlpatterns.append(path("admin/", admin.site.urls))

handler400 = "chat.api.errors.bad_request"
handler403 = "chat.api.errors.permission_denied"
handler404 = "chat.api.errors.page_not_found"
handler500 = "chat.api.errors.server_error"
