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

from claude_agent_sdk import ClaudeSDKClient

from chat.agent.pool import AgentPool
from chat.agent.process import ClientFactory
from chat.frame_parser import FrameParser
from chat.limits import ClientCounter, SocketCounter
from chat.session.event_stream import EventsFactory, EventStream
from chat.session.registry import SessionRegistry
from chat.session.shutdown import OpenSockets


@dataclass
class Runtime:
    """The live sessions, CLI slots, sockets and frame parser of this server process."""

    agents: AgentPool
    sessions: SessionRegistry
    per_client: ClientCounter = field(default_factory=SocketCounter)
    sockets: OpenSockets = field(default_factory=OpenSockets)
    frames: FrameParser = field(default_factory=FrameParser)

    @classmethod
    def create(
        cls,
        *,
        make_client: ClientFactory = ClaudeSDKClient,
        make_events: EventsFactory = EventStream,
    ) -> Runtime:
        """A runtime with nothing live; ``make_client`` makes each session's SDK client,
        ``make_events`` each session's events."""
        agents = AgentPool()
        sessions = SessionRegistry(agents=agents, make_client=make_client, make_events=make_events)
        return cls(agents=agents, sessions=sessions)

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
