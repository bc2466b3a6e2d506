"""What the server remembers about each chat session, across restarts."""

from __future__ import annotations

from django.db import models


class ChatSession(models.Model):
    """A client's session: its id, the SDK conversation it continues, and its totals."""

    session_id = models.CharField(max_length=64, unique=True)
    sdk_session_id = models.CharField(max_length=64, blank=True, default="")
    message_count = models.PositiveIntegerField(default=0)
    cost_usd = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)
    last_active_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.session_id
