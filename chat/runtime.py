"""The process-wide state of the chat, in one object: the ``Runtime``.

Everything that lives as long as the server process and is shared by its sockets is
here, created once when the app starts (:meth:`chat.apps.ChatConfig.ready`) and handed
to what needs it: the consumer takes it when a socket connects, the HTTP views when a
request comes, the SIGTERM handler when it is installed. Nothing else keeps such state
in a module global, so a test starts from a fresh one (:func:`reset_runtime`), the way
Channels holds its channel layers.

The parts are the seams the cluster issues plug Redis-backed implementations into:
``sessions`` (which process owns a session, and its runner there), ``make_events`` (a
session's numbered events, replay log and fan-out:
:class:`chat.session.event_stream.SessionEvents`), ``per_client`` (counters that a
fleet shares: :class:`chat.limits.ClientCounter`) and ``agents`` (the CLI slots of
this process, which stay per server: they are its memory).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from channels.layers import get_channel_layer
from claude_agent_sdk import ClaudeSDKClient
from django.conf import settings
from redis.asyncio import Redis

from chat.agent.pool import AgentPool
from chat.agent.process import ClientFactory
from chat.frame_parser import FrameParser
from chat.limits import ClientCounter, SocketCounter
from chat.quotas import UserQuotas
from chat.session.event_stream import EventsFactory, EventStream
from chat.session.ownership import LocalOwnership, Ownership
from chat.session.registry import SessionRegistry
from chat.session.routing import SessionRouter
from chat.session.shutdown import OpenSockets


@dataclass
class Runtime:
    """The live sessions, CLI slots, sockets and frame parser of this server process."""

    agents: AgentPool
    sessions: SessionRegistry
    router: SessionRouter
    per_client: ClientCounter = field(default_factory=SocketCounter)
    sockets: OpenSockets = field(default_factory=OpenSockets)
    frames: FrameParser = field(default_factory=FrameParser)
    redis: Redis | None = None  # with REDIS_URL: the client the cluster parts share
    started: bool = False

    @classmethod
    def create(
        cls,
        *,
        make_client: ClientFactory = ClaudeSDKClient,
        make_events: EventsFactory | None = None,
        ownership: Ownership | None = None,
    ) -> Runtime:
        """A runtime with nothing live; ``make_client`` makes each session's SDK client,
        ``make_events`` each session's events, ``ownership`` holds the leases.

        Left out, the last two are Redis-backed when ``REDIS_URL`` is set (a fleet),
        in memory when not (one process).
        """
        redis = None
        sockets_per_client: ClientCounter = SocketCounter()
        sessions_per_client: ClientCounter = SocketCounter()
        quotas = UserQuotas()
        if settings.REDIS_URL and (make_events is None or ownership is None):
            # Imported here: one process without Redis never loads the cluster modules.
            from chat.cluster.connection import connect
            from chat.cluster.counters import RedisClientCounter
            from chat.cluster.event_stream import RedisEventStream
            from chat.cluster.leases import RedisOwnership

            redis = connect(settings.REDIS_URL)
            make_events = make_events or (lambda session_id: RedisEventStream(session_id, redis))
            ownership = ownership or RedisOwnership(
                redis, server_id=settings.SERVER_ID, lease_seconds=settings.SESSION_LEASE_SECONDS
            )
            sockets_per_client, sessions_per_client, sessions_per_user, turns_per_user = (
                RedisClientCounter(
                    redis,
                    kind=kind,
                    server_id=settings.SERVER_ID,
                    lease_seconds=settings.SESSION_LEASE_SECONDS,
                )
                for kind in ("sockets", "sessions", "user-sessions", "user-turns")
            )
            quotas = UserQuotas(sessions_per_user, turns_per_user)
        agents = AgentPool()
        sessions = SessionRegistry(
            agents=agents,
            make_client=make_client,
            make_events=make_events or EventStream,
            ownership=ownership or LocalOwnership(settings.SERVER_ID),
            per_client=sessions_per_client,
            quotas=quotas,
        )
        return cls(
            agents=agents,
            sessions=sessions,
            router=SessionRouter(sessions, get_channel_layer()),
            per_client=sockets_per_client,
            redis=redis,
        )

    async def start(self) -> None:
        """Start what runs beside the sockets (lease renewal, routing), on the server's
        loop, once: the first socket calls it."""
        if not self.started:
            self.started = True
            await self.sessions.ownership.start()
            await self.sessions.per_client.start()
            await self.sessions.quotas.start()
            await self.per_client.start()
            self.router.start()

    def close(self) -> None:
        """Let go of what outlives the event loop (the frame parser's worker process)."""
        self.frames.close()


_runtime: Runtime | None = None


def get_runtime() -> Runtime:
    """The runtime of this process (created by the app's ``ready``, or on first use)."""
    global _runtime
    if _runtime is None:
        _runtime = Runtime.create()
    return _runtime


def reset_runtime(runtime: Runtime | None = None) -> Runtime:
    """Replace the runtime (tests): ``runtime``, or a fresh one; returns the new one."""
    global _runtime
    if _runtime is not None:
        _runtime.close()
    _runtime = runtime or Runtime.create()
    return _runtime
