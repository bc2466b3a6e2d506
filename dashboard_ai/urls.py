"""HTTP routes, and the error handlers that answer JSON instead of Django's HTML pages."""

from __future__ import annotations

from django.urls import path

from chat.api import client_library, health, sessions

urlpatterns = [
    path("health", health.health, name="health"),
    *(
        path(f"client/{name}", client_library.client_file, {"name": name}, name=name)
        for name in client_library.CLIENT_FILES
    ),
    path("api/sessions", sessions.session_list, name="api-sessions"),
    path("api/sessions/<str:session_id>", sessions.session, name="api-session"),
    path(
        "api/sessions/<str:session_id>/messages",
        sessions.session_messages,
        name="api-session-messages",
    ),
]

handler400 = "chat.api.errors.bad_request"
handler403 = "chat.api.errors.permission_denied"
handler404 = "chat.api.errors.page_not_found"
handler500 = "chat.api.errors.server_error"
