"""HTTP routes."""

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
