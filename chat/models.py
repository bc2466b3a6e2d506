"""What the server remembers about each chat session, across restarts."""

from __future__ import annotations

from django.db import models


class ChatSession(models.Model):
    """A client's session: its id, the SDK conversation it continues, and its totals."""

    session_id = models.CharField(max_length=64, unique=True)
    sdk_session_id = models.CharField(max_length=64, blank=True, default="")
    message_count = models.PositiveIntegerField(default=0)
    cost_usd = models.FloatField(default=0.0)
    last_seq = models.PositiveBigIntegerField(default=0)
    # After an undo: resume the SDK conversation only up to this message (forked).
    resume_at = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    last_active_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.session_id


class TurnOutcome(models.Model):
    """The terminal frame of a turn that carried a ``clientMessageId``.

    A client that resends a message after a reconnect (or a server restart) gets
    this frame back instead of a second run of the turn.
    """

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="outcomes")
    client_message_id = models.CharField(max_length=128)
    frame = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["session", "client_message_id"], name="one_outcome_per_client_message"
            )
        ]

    def __str__(self) -> str:
        return f"{self.session_id}:{self.client_message_id}"


class TurnRecord(models.Model):
    """A turn the agent ran: the workspace state before it, and where its conversation ends."""

    session = models.ForeignKey(ChatSession, on_delete=models.CASCADE, related_name="turns")
    state_id = models.CharField(max_length=64, unique=True)
    resume_at = models.CharField(max_length=64, blank=True, default="")
    client_message_id = models.CharField(max_length=128, blank=True, default="")
    counted = models.BooleanField(default=False)  # in ChatSession.message_count
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.session_id}:{self.state_id}"
