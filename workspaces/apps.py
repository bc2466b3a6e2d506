from __future__ import annotations

from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    """The workspaces app; registers its system checks."""

    name = "workspaces"

    def ready(self) -> None:
        from workspaces import checks  # noqa: F401  (registers the checks)
