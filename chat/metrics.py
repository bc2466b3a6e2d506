"""Prometheus metrics of this server process (``GET /metrics``, ``METRICS_MODE``).

One registry of our own (:data:`REGISTRY`), not prometheus_client's global default:
importing this module twice, or in tests, never registers a metric twice, and nothing
of the library's process or platform collectors is mixed in unasked.

Labels are low-cardinality only, each from a fixed set: an outcome (``complete``,
``stopped`` or a protocol error code), a frame type of the protocol, a refusal reason,
a direction. Never a session id, a user, a path, an address or a secret.

The code calls the few functions below at its choke points: the consumer's send and
receive, the runner's turn end (where ``turn ended`` is logged), the gates. What is
live (sockets, sessions, CLIs and their memory) is read from the runtime when scraped.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry()

#: Seconds, for the first text and a whole turn: a fast first token to a long agent turn.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120)

#: Why something was refused (``dashboard_ai_refusals_total{reason}``).
REFUSAL_REASONS = (
    "path_gate",  # a client's file path the workspace path rules refuse (INVALID_PATH)
    "tool_gate",  # an agent tool call the PreToolUse gate denies
    "origin",  # a WebSocket handshake from an Origin not in CORS_ORIGIN
    "host",  # a WebSocket handshake with a Host not in ALLOWED_HOSTS
    "rate_limit",  # RATE_LIMITED
    "busy",  # SESSION_BUSY, SERVER_BUSY answered to a frame or a connect
    "unauthorized",  # UNAUTHORIZED, TOKEN_EXPIRED
    "quota",  # QUOTA_EXCEEDED
)
#: The refusal reason of an ``error`` code answered to a client's frame or connect.
REFUSAL_FOR_CODE = {
    "INVALID_PATH": "path_gate",
    "RATE_LIMITED": "rate_limit",
    "SESSION_BUSY": "busy",
    "SERVER_BUSY": "busy",
    "UNAUTHORIZED": "unauthorized",
    "TOKEN_EXPIRED": "unauthorized",
    "QUOTA_EXCEEDED": "quota",
}

CLIENT_FRAME_TYPES = ("init", "message", "stop", "undo")
SERVER_FRAME_TYPES = (
    "ready",
    "stream",
    "tool_start",
    "tool_result",
    "file_changed",
    "status",
    "complete",
    "undone",
    "error",
)
#: The frame type of a frame that was not read as one (binary, unparsable, dropped).
UNREAD = "unread"

turns_started = Counter(
    "dashboard_ai_turns_started_total", "Turns queued to run on this server.", registry=REGISTRY
)
turns_ended = Counter(
    "dashboard_ai_turns_ended_total",
    "Turns ended here, by outcome: complete, stopped, or the terminal error's code.",
    ["outcome"],
    registry=REGISTRY,
)
first_text_seconds = Histogram(
    "dashboard_ai_turn_first_text_seconds",
    "From a turn's start to its first streamed text.",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
turn_seconds = Histogram(
    "dashboard_ai_turn_duration_seconds",
    "From a turn's start to its terminal frame.",
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
model_tokens = Counter(
    "dashboard_ai_model_tokens_total",
    "Model tokens of the turns that completed or were stopped, input or output.",
    ["kind"],
    registry=REGISTRY,
)
model_cost = Counter(
    "dashboard_ai_model_cost_usd_total",
    "Model cost in USD of the turns that completed or were stopped.",
    registry=REGISTRY,
)
frames = Counter(
    "dashboard_ai_frames_total",
    "WebSocket frames, in (from clients, by type; 'unread' when not read as a frame) "
    "and out (to clients, by type).",
    ["direction", "type"],
    registry=REGISTRY,
)
refusals = Counter(
    "dashboard_ai_refusals_total",
    "Requests refused, by reason (see chat.metrics.REFUSAL_REASONS).",
    ["reason"],
    registry=REGISTRY,
)
replay_requests = Counter(
    "dashboard_ai_replay_requests_total", "init frames with a lastSeq.", registry=REGISTRY
)
replay_truncated = Counter(
    "dashboard_ai_replay_truncated_total",
    "Replays that could not be served whole (ready with replayTruncated).",
    registry=REGISTRY,
)
takeovers = Counter(
    "dashboard_ai_session_takeovers_total",
    "Sessions whose owner was gone, taken over by this server.",
    registry=REGISTRY,
)
leases_lost = Counter(
    "dashboard_ai_session_leases_lost_total",
    "Sessions this server ran whose lease another server took.",
    registry=REGISTRY,
)
routed = Counter(
    "dashboard_ai_routed_frames_total",
    "Frames routed between servers: sent to a session's owner, or served for another server.",
    ["direction"],
    registry=REGISTRY,
)

# Every series of a fixed label set exists from the start, at 0: a rate() over a
# counter needs its series before the first increment.
for _outcome in ("complete", "stopped"):
    turns_ended.labels(_outcome)
for _kind in ("input", "output"):
    model_tokens.labels(_kind)
for _type in (*CLIENT_FRAME_TYPES, UNREAD):
    frames.labels("in", _type)
for _type in SERVER_FRAME_TYPES:
    frames.labels("out", _type)
for _reason in REFUSAL_REASONS:
    refusals.labels(_reason)
for _direction in ("sent", "served"):
    routed.labels(_direction)


# --- the choke points ----------------------------------------------------------


def turn_ended(summary: dict[str, Any]) -> None:
    """A turn ended; ``summary`` is its ``turn ended`` log line's fields
    (:meth:`chat.session.turn.Turn.summary`). A turn a previous owner left unfinished
    comes with its outcome only: it has no duration here, nor anything else to count."""
    turns_ended.labels(_code(str(summary.get("outcome", "INTERNAL")))).inc()
    if summary.get("durationMs") is None:
        return
    turn_seconds.observe(summary["durationMs"] / 1000)
    if summary.get("firstTextMs") is not None:
        first_text_seconds.observe(summary["firstTextMs"] / 1000)
    if summary.get("inputTokens") is not None:
        model_tokens.labels("input").inc(summary["inputTokens"])
    if summary.get("outputTokens") is not None:
        model_tokens.labels("output").inc(summary["outputTokens"])
    if summary.get("costUsd"):
        model_cost.inc(summary["costUsd"])


def frame_in(frame: object | None) -> None:
    """A frame came from a client (``None``: it was not read as a frame)."""
    frame_type = getattr(frame, "type", None)
    frames.labels("in", frame_type if frame_type in CLIENT_FRAME_TYPES else UNREAD).inc()


def frame_out(frame_type: object) -> None:
    """A frame went to a client."""
    if frame_type in SERVER_FRAME_TYPES:
        frames.labels("out", frame_type).inc()


def refused(reason: str) -> None:
    """Something was refused for ``reason``, one of :data:`REFUSAL_REASONS`."""
    if reason in REFUSAL_REASONS:
        refusals.labels(reason).inc()


def error_answered(code: str) -> None:
    """An ``error`` with ``code`` answered a client's frame or connect: counted as a
    refusal when its code is one (:data:`REFUSAL_FOR_CODE`)."""
    reason = REFUSAL_FOR_CODE.get(code)
    if reason is not None:
        refused(reason)


def replay(*, truncated: bool) -> None:
    """An ``init`` asked for the events after its ``lastSeq``."""
    replay_requests.inc()
    if truncated:
        replay_truncated.inc()


def _code(outcome: str) -> str:
    """An outcome as a label value: ``complete``, ``stopped`` or an error code (which
    the protocol spells ``^[A-Z][A-Z0-9_]*$``; anything else would be a bug)."""
    if outcome in ("complete", "stopped"):
        return outcome
    if outcome.replace("_", "").isalnum() and outcome.isupper() and len(outcome) <= 40:
        return outcome
    return "INTERNAL"


# --- read when scraped -----------------------------------------------------------


def process_rss_bytes(pid: int) -> int:
    """The resident memory of process ``pid`` (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _cli_pid(session_id: str) -> int | None:
    """The pid of a session's CLI, from the pidfile its launcher writes."""
    from chat.agent import options

    try:
        pid = int(options.paths_for(session_id).pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid > 1 else None


class RuntimeCollector(Collector):
    """What is live in this process, read from the runtime at each scrape."""

    def collect(self) -> Iterable[Metric]:
        import dashboard_ai
        from chat.runtime import get_runtime

        runtime = get_runtime()
        yield InfoMetricFamily(
            "dashboard_ai_server",
            "This server process: its SERVER_ID (one per process of a fleet) and version.",
            value={"server_id": settings.SERVER_ID, "version": dashboard_ai.__version__},
        )
        yield _gauge(
            "dashboard_ai_sockets_open", "Open chat sockets.", len(runtime.sockets.closers)
        )
        yield _gauge(
            "dashboard_ai_sessions_live",
            "Sessions with a live runner in this process.",
            runtime.sessions.active,
        )
        yield _gauge(
            "dashboard_ai_sessions_owned",
            "Sessions whose lease this server holds.",
            runtime.sessions.ownership.owned,
        )
        agents = runtime.agents.session_ids()
        yield _gauge(
            "dashboard_ai_agents_live", "Claude CLI processes holding a slot.", len(agents)
        )
        yield _gauge(
            "dashboard_ai_agents_rss_bytes",
            "Resident memory of the live Claude CLI processes, summed.",
            sum(process_rss_bytes(pid) for pid in _pids(agents)),
        )


def _pids(session_ids: Iterable[str]) -> Iterator[int]:
    for session_id in session_ids:
        pid = _cli_pid(session_id)
        if pid is not None:
            yield pid


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


REGISTRY.register(RuntimeCollector())


# --- METRICS_MODE=port -----------------------------------------------------------

_serving = False


def serve_on_port() -> None:
    """Serve :data:`REGISTRY` on ``METRICS_HOST:METRICS_PORT`` (plain HTTP, a thread of
    prometheus_client's own), once per process."""
    global _serving
    if not _serving:
        start_http_server(settings.METRICS_PORT, addr=settings.METRICS_HOST, registry=REGISTRY)
        _serving = True
