"""HTTP routes."""

from __future__ import annotations

from django.urls import path

from chat import views

urlpatterns = [
    path("health", views.health, name="health"),
]
