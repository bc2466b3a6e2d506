"""The Django admin of the session records (ADMIN_ENABLED): read-only, for operators.

Loaded by the admin's autodiscovery, so only when ``django.contrib.admin`` is installed.
Nobody may add, change or delete here, superusers included: the records are the
server's, and a hand edit (a cost, a message count) would corrupt quotas and resumes.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Sum
from django.db.models.functions import TruncDate
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from redis import Redis as SyncRedis

from chat.cluster.connection import UNREACHABLE
from chat.cluster.leases import lease_holders
from chat.management.commands.sessions import size
from chat.models import ChatSession, TurnRecord
from chat.runtime import get_runtime
from workspaces import storage


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Viewing only: no add, change or delete, whoever asks."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


#: What the "live on" column shows when Redis does not answer.
UNKNOWN_SERVER = "unknown: Redis does not answer"


def live_on(session_ids: list[str]) -> dict[str, str] | None:
    """The server each session is live on (sessions live nowhere are left out): in a
    fleet the holders of their leases in Redis, one round trip for the page; on one
    server this process's registry. ``None`` when Redis cannot be reached."""
    if not settings.REDIS_URL:
        registry = get_runtime().sessions
        return {key: settings.SERVER_ID for key in session_ids if registry.is_live(key)}
    redis = SyncRedis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        return lease_holders(redis, session_ids)
    except UNREACHABLE:
        return None
    finally:
        redis.close()


class SessionChangeList(ChangeList):
    """The sessions' page, with each one's workspace files and bytes from one query and
    the server it is live on from one Redis round trip."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        keys = [record.session_id for record in self.result_list]
        # As `manage.py sessions` does: one query for the page's sessions.
        sizes = storage.current_sizes(keys)
        servers = live_on(keys)
        for record in self.result_list:
            record.workspace = sizes.get(record.session_id, (0, 0))
            record.server = UNKNOWN_SERVER if servers is None else servers.get(record.session_id)


@admin.register(ChatSession)
class ChatSessionAdmin(ReadOnlyAdmin):
    """The sessions, most recently used first, with their workspace size and the server
    each is live on."""

    list_display = (
        "session_id",
        "owner",
        "public_id",
        "created_at",
        "last_active_at",
        "message_count",
        "cost",
        "workspace_size",
        "live_on",
    )
    search_fields = ("session_id", "public_id", "owner")
    ordering = ("-last_active_at",)
    date_hierarchy = "last_active_at"
    list_per_page = 50

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return SessionChangeList

    @admin.display(description="cost $", ordering="cost_usd")
    def cost(self, record: ChatSession) -> str:
        return f"{record.cost_usd:.4f}"

    @admin.display(description="workspace")
    def workspace_size(self, record: ChatSession) -> str:
        files, count = getattr(record, "workspace", (0, 0))
        return f"{files} files, {size(count)}"

    @admin.display(description="live on (server id)")
    def live_on(self, record: ChatSession) -> str:
        return getattr(record, "server", None) or "-"


@admin.register(TurnRecord)
class TurnRecordAdmin(ReadOnlyAdmin):
    """The turns, newest first, with how each ended (recorded as it ended; turns older
    than migration 0008 show "-")."""

    list_display = (
        "created_at",
        "session",
        "outcome_shown",
        "cost",
        "duration",
        "first_text",
        "tokens",
    )
    list_select_related = ("session",)
    list_filter = ("finished", "outcome")
    search_fields = ("session__session_id", "session__owner", "session__public_id")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-pk")
    list_per_page = 100

    @admin.display(description="cost $", ordering="cost_usd")
    def cost(self, turn: TurnRecord) -> str:
        return f"{turn.cost_usd:.4f}"

    @admin.display(description="outcome", ordering="outcome")
    def outcome_shown(self, turn: TurnRecord) -> str:
        if not turn.finished:
            return "running"
        return turn.outcome or "-"

    @admin.display(description="duration s", ordering="duration_ms")
    def duration(self, turn: TurnRecord) -> str:
        return "-" if turn.duration_ms is None else f"{turn.duration_ms / 1000:.1f}"

    @admin.display(description="first text s", ordering="first_text_ms")
    def first_text(self, turn: TurnRecord) -> str:
        return "-" if turn.first_text_ms is None else f"{turn.first_text_ms / 1000:.2f}"

    @admin.display(description="tokens in / out")
    def tokens(self, turn: TurnRecord) -> str:
        if turn.input_tokens is None and turn.output_tokens is None:
            return "-"
        return f"{turn.input_tokens or 0} / {turn.output_tokens or 0}"

    def get_urls(self) -> list[URLPattern]:
        per_day = path(
            "per-day/",
            self.admin_site.admin_view(self.per_day_view),
            name="chat_turnrecord_per_day",
        )
        return [per_day, *super().get_urls()]

    def per_day_view(self, request: HttpRequest) -> HttpResponse:
        """Turns, sessions and model cost per UTC day, newest first."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        days = (
            TurnRecord.objects.annotate(day=TruncDate("created_at"))
            .values("day")
            .annotate(
                turns=Count("pk"),
                sessions=Count("session", distinct=True),
                cost=Sum("cost_usd"),
            )
            .order_by(F("day").desc())[:90]
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Model cost per day (UTC)",
            "days": list(days),
        }
        return TemplateResponse(request, "admin/chat/turnrecord/per_day.html", context)
