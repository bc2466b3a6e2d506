"""The live session runners of this server process."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from django.conf import settings

from chat import metrics
from chat.agent.pool import AgentPool
from chat.agent.process import ClientFactory
from chat.exceptions import QuotaExceeded, ServerBusy
from chat.limits import ClientCounter, SocketCounter
from chat.quotas import UserQuotas
from chat.session.event_stream import EventsFactory
from chat.session.ownership import Lease, LocalOwnership, Ownership
from chat.session.runner import SessionRunner
from chat.session.streams import SessionStreams

logger = logging.getLogger("dashboard_ai.chat")


class OwnedElsewhere(Exception):
    """Another server holds the session's lease: frames for it go there."""


class ClientAtLimit(ServerBusy):
    """The client has ``MAX_SESSIONS_PER_CLIENT`` live sessions, none of them releasable
    here: one on another server may be (:meth:`SessionRegistry.release_one_of`)."""


class SessionRegistry:
    """The live runners of this server process, by session id, least recently used first.

    A runner lives only under a lease of ``ownership``: a session another server owns
    has no runner here (:meth:`start` raises :class:`OwnedElsewhere`), and a runner
    whose lease is lost ends (:meth:`SessionRunner.lose`).

    ``per_client`` counts each client address's live sessions: the runners it started,
    on this server or (Redis-backed) on any server of the fleet; ``quotas`` each user's.
    """

    def __init__(
        self,
        *,
        agents: AgentPool,
        make_client: ClientFactory,
        make_events: EventsFactory,
        ownership: Ownership | None = None,
        per_client: ClientCounter | None = None,
        quotas: UserQuotas | None = None,
    ) -> None:
        self._runners: OrderedDict[str, SessionRunner] = OrderedDict()
        self._agents = agents
        self._make_client = make_client
        self.streams = SessionStreams(make_events)
        self.ownership: Ownership = ownership or LocalOwnership(settings.SERVER_ID)
        self.ownership.on_lost(self._lost)
        self.per_client: ClientCounter = per_client or SocketCounter()
        self.quotas = quotas or UserQuotas()
        self.leaving = False  # shutting down: no session starts here any more

    async def start(self, session_id: str, *, client: str, user: str = "") -> SessionRunner:
        """The session's open runner here, started under a new lease if there is none.

        A runner that is closing is waited for first, so that two runners of one
        session never live at once. A new runner needs the session's lease
        (:class:`OwnedElsewhere` when another server holds it), then room (see
        :meth:`_make_room`; the lease is given back when there is none).
        """
        while True:
            if self.leaving:
                raise ServerBusy("This server is restarting; connect again.")
            runner = self._runners.get(session_id)
            if runner is None:
                # The lease first: a frame for a session another server runs is routed
                # there, and must not count against (or evict for) this server's limits.
                lease = await self.ownership.acquire(session_id)
                if lease is None:
                    raise OwnedElsewhere(session_id)
                if session_id in self._runners:  # started by another frame meanwhile
                    continue
                try:
                    made_room = await self._make_room(client, user)
                except BaseException:
                    if session_id not in self._runners:
                        await self.ownership.release(lease)
                    raise
                if made_room:
                    continue  # a runner was released meanwhile: look again
                if session_id in self._runners:  # started by another frame meanwhile
                    await self._uncount(client, user)
                    continue
                runner = SessionRunner(
                    session_id,
                    self,
                    lease=lease,
                    stream=self.streams.hold(session_id),
                    agents=self._agents,
                    make_client=self._make_client,
                    opened_by=client,
                    user=user,
                )
                self._runners[session_id] = runner
            if not runner.closed:
                break
            await runner.wait_closed()
        self._runners.move_to_end(session_id)
        return runner

    def live(self, session_id: str) -> SessionRunner | None:
        """The session's runner here if it is open and still holds its lease."""
        runner = self._runners.get(session_id)
        if runner is None or runner.closed or not self.ownership.holds(runner.lease):
            return None
        return None if self.leaving else runner

    def _lost(self, lease: Lease) -> None:
        """A renewal found ``lease`` gone: its runner ends without writing more."""
        runner = self._runners.get(lease.session_id)
        if runner is not None and runner.lease == lease:
            logger.warning("session taken over", extra={"sessionId": lease.session_id})
            metrics.leases_lost.inc()
            runner.lose()

    async def _make_room(self, client: str, user: str) -> bool:
        """Count a new session of ``client`` and ``user``, releasing one if a limit is reached.

        At ``MAX_SESSIONS_PER_USER`` of the user's sessions, or ``MAX_SESSIONS_PER_CLIENT``
        of this client's (on every server of the fleet), their own least recently used
        unattended session (no socket, no turn) here is released; at ``MAX_SESSIONS`` on
        this server, anyone's. Nothing is lost: its
        files and conversation stay, and its next ``init`` starts it again. Returns
        whether one was released (the new session is not counted then); raises
        :class:`ServerBusy` when none can be. A takeover (no ``client``) is not a
        client's session and is not counted.
        """
        if not await self.quotas.open_session(user):
            own = [r for r in self._runners.values() if r.user == user]
            if await self._release_first(own, "user"):
                return True
            raise QuotaExceeded(
                f"You have {settings.MAX_SESSIONS_PER_USER} live sessions, the most a user "
                "may; close one, or try again later."
            )
        if client and not await self.per_client.open(client, settings.MAX_SESSIONS_PER_CLIENT):
            await self.quotas.close_session(user)
            if await self.release_one_of(client):
                return True
            raise ClientAtLimit(
                "This address has too many live sessions; close some, or try again later."
            )
        if len(self._runners) >= settings.MAX_SESSIONS:
            await self._uncount(client, user)
            if await self._release_first(list(self._runners.values()), "server"):
                return True
            raise ServerBusy(
                "This server has too many live sessions; close some, or try again later."
            )
        return False

    async def release_one_of(self, client: str) -> bool:
        """Release ``client``'s least recently used unattended session here, if any."""
        own = [r for r in self._runners.values() if r.opened_by == client]
        return await self._release_first(own, "client")

    async def _release_first(self, candidates: list[SessionRunner], limit: str) -> bool:
        """Release the first of ``candidates`` that is unattended; whether one was."""
        victim = next((r for r in candidates if r.release_if_unattended()), None)
        if victim is None:
            return False
        logger.info(
            "session released for a new one", extra={"sessionId": victim.session_id, "limit": limit}
        )
        await victim.wait_closed()
        return True

    async def _uncount(self, client: str, user: str) -> None:
        """A session counted by :meth:`_make_room` did not start, or ended."""
        if client:
            await self.per_client.close(client)
        await self.quotas.close_session(user)

    async def forget(self, runner: SessionRunner) -> None:
        """Called by a runner as it ends."""
        if self._runners.get(runner.session_id) is runner:
            del self._runners[runner.session_id]
        await self._uncount(runner.opened_by, runner.user)
        await self.streams.release(runner.session_id, runner.stream)

    def is_live(self, session_id: str) -> bool:
        """Whether the session has a runner in this process (one ending counts too)."""
        return session_id in self._runners

    async def end_session(self, session_id: str) -> None:
        """End the session's live runner, if any: its turn is cancelled, its CLI closed."""
        runner = self._runners.get(session_id)
        if runner is not None:
            await runner.close()
        await self.streams.end(session_id)

    async def shutdown(self, deadline: float) -> None:
        """Stop every turn (each sends its terminal frame), then end every runner.

        From the start no session is started or taken here any more (frames routed
        here are answered "not the owner"), and every lease goes as its runner ends:
        other servers take the sessions over at once.
        """
        self.leaving = True
        runners = list(self._runners.values())
        for runner in runners:
            runner.stop()
        if runners:
            waits = [asyncio.create_task(runner.wait_idle()) for runner in runners]
            _, pending = await asyncio.wait(waits, timeout=deadline)
            for wait in pending:
                wait.cancel()
        await asyncio.gather(*(runner.close() for runner in runners))
        await self.ownership.close()  # any lease left goes now: others take over at once
        await self.per_client.stop()  # and this server's sessions count for nobody
        await self.quotas.stop()

    @property
    def active(self) -> int:
        """How many sessions have a live runner."""
        return len(self._runners)
