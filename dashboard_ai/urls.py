"""HTTP routes, and the error handlers that answer JSON instead of Django's HTML pages."""

from __future__ import annotations

from django.urls import path

from chat import api, views

urlpatterns = [
    path("health", views.health, name="health"),
    path("api/sessions/<str:session_id>", api.session, name="api-session"),
    path(
        "api/sessions/<str:session_id>/messages",
        api.session_messages,
        name="api-session-messages",
    ),
]

handler400 = "chat.views.bad_request"
handler403 = "chat.views.permission_denied"
handler404 = "chat.views.page_not_found"
handler500 = "chat.views.server_error"
