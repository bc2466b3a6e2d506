"""What the server remembers about each chat session, across restarts."""

from __future__ import annotations

from django.db import models


class ChatSession(models.Model):
    """A client's session: its id, the SDK conversation it continues, and its totals."""

    # The id the server keys the session by: the client's own id when the server has no
    # users, else one derived from the owner and the client's id (chat/owners.py).
    session_id = models.CharField(max_length=64, unique=True)
    owner = models.CharField(max_length=255, blank=True, default="", db_index=True)
    public_id = models.CharField(max_length=64, blank=True, default="")  # the client's id
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
    # False from its start until its terminal frame is stored: a turn left unfinished
    # was running on a server that died, and the next owner ends it (TURN_INTERRUPTED).
    finished = models.BooleanField(default=True)
    cost_usd = models.FloatField(default=0.0)  # what the model cost, summed for spend quotas
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # How it ended, for operators (the admin): "complete", "stopped" or the terminal
    # error's code ("" until it ends), and its "turn ended" log line's figures; a turn
    # another owner left unfinished has no duration or tokens.
    outcome = models.CharField(max_length=40, blank=True, default="")
    duration_ms = models.IntegerField(null=True, blank=True)
    first_text_ms = models.IntegerField(null=True, blank=True)
    input_tokens = models.IntegerField(null=True, blank=True)
    output_tokens = models.IntegerField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.session_id}:{self.state_id}"


class Transcript(models.Model):
    """One transcript of the SDK's session store: a conversation, or a subagent's.

    Keyed as the SDK keys it (``claude_agent_sdk.SessionKey``): the project key (from
    the workspace's real path), the SDK session id and, for a subagent's transcript, a
    subpath ("" is the main transcript). ``mtime_ms`` is when it was last written;
    ``summary`` is the SDK's summary sidecar of a main transcript (opaque to us).
    """

    project_key = models.CharField(max_length=255)
    session_id = models.CharField(max_length=255)
    subpath = models.CharField(max_length=255, blank=True, default="")
    mtime_ms = models.BigIntegerField(default=0)
    # JSON as text, like the entries: PostgreSQL's jsonb refuses a NUL character.
    summary = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project_key", "session_id", "subpath"], name="one_transcript_per_key"
            )
        ]

    def __str__(self) -> str:
        return "/".join(p for p in (self.project_key, self.session_id, self.subpath) if p)


class TranscriptEntry(models.Model):
    """One line of a transcript, in the order it was appended (the row id's order).

    ``entry`` is the line's JSON as text, not jsonb: PostgreSQL's jsonb refuses a NUL
    character, which a file the agent read may hold, and nothing queries inside it.
    ``uuid`` is the entry's own, when it has one: a batch the SDK sends again is not
    stored twice.
    """

    transcript = models.ForeignKey(Transcript, on_delete=models.CASCADE, related_name="entries")
    uuid = models.CharField(max_length=255, null=True, blank=True)
    entry = models.TextField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["transcript", "uuid"],
                condition=models.Q(uuid__isnull=False),
                name="one_entry_per_uuid",
            )
        ]

    def __str__(self) -> str:
        return f"{self.transcript_id}:{self.uuid or self.pk}"
