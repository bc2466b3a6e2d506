"""System checks for the workspace settings, so a bad root or limit fails at startup."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, register


def _root_problem(root: Path) -> str | None:
    """Why ``root`` cannot hold workspaces, or ``None``; creates nothing."""
    if not root.is_absolute():
        return "is not an absolute path"
    existing = root
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return f"cannot be created: {existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        verb = "written" if existing == root else "created"
        return f"cannot be {verb}: {existing} is not writable"
    return None


@register()
def check_workspace_root(
    app_configs: Sequence[AppConfig] | None, **kwargs: Any
) -> list[CheckMessage]:
    """``workspaces.E001``: WORKSPACE_ROOT must be a directory the server can write."""
    problem = _root_problem(Path(settings.WORKSPACE_ROOT))
    if problem is None:
        return []
    return [
        Error(
            f"WORKSPACE_ROOT {settings.WORKSPACE_ROOT} {problem}.",
            hint="Set WORKSPACE_ROOT to a writable absolute directory.",
            id="workspaces.E001",
        )
    ]


@register()
def check_workspace_limits(
    app_configs: Sequence[AppConfig] | None, **kwargs: Any
) -> list[CheckMessage]:
    """``workspaces.E002``: one file may not be allowed more bytes than a whole sync."""
    per_file = settings.WORKSPACE_MAX_FILE_BYTES
    total = settings.WORKSPACE_MAX_TOTAL_BYTES
    if per_file <= total:
        return []
    return [
        Error(
            f"WORKSPACE_MAX_FILE_BYTES ({per_file}) exceeds WORKSPACE_MAX_TOTAL_BYTES ({total}).",
            hint="Lower WORKSPACE_MAX_FILE_BYTES or raise WORKSPACE_MAX_TOTAL_BYTES.",
            id="workspaces.E002",
        )
    ]
