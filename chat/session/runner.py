"""Live chat sessions: one runner per session, owning its Claude options.

A :class:`SessionRunner` is one asyncio task that owns the session's
``ClaudeSDKClient`` (the SDK forbids using a client across tasks), takes turns from a
queue, numbers every event with ``seq`` and fans it out to the session's sockets.
Consumers never touch the client: they call :meth:`SessionRunner.open`,
:meth:`~SessionRunner.submit`, :meth:`~SessionRunner.stop` and
:meth:`~SessionRunner.leave`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import PurePosixPath
from typing import Any, Protocol

from claude_agent_sdk import ClaudeSDKError
from django.conf import settings

from chat import metrics
from chat.agent import options
from chat.agent.errors import model_error_for_exception
from chat.agent.pool import AgentPool, NoSpareSlot
from chat.agent.process import AgentClient, AgentProcess, ClientFactory
from chat.events import TurnEnded, TurnTranslator
from chat.exceptions import (
    ChatError,
    InternalError,
    LastSeqAhead,
    ModelNotConfigured,
    SessionBusy,
    SessionUnavailable,
    TurnInterrupted,
)
from chat.protocol import (
    CompleteFrame,
    Conflict,
    ErrorFrame,
    InitFrame,
    MessageFrame,
    ReadyFrame,
    ServerFrame,
    UndoFrame,
    UndoneFrame,
    error_frame_for,
    file_content,
    file_contents,
)
from chat.quotas import UserQuotas
from chat.session import store
from chat.session.event_stream import Send, SessionEvents
from chat.session.ownership import Lease, LeaseLost, Ownership
from chat.session.store import UndoPlan
from chat.session.turn import Turn, TurnRun
from workspaces import fencing, leases, undo_states
from workspaces import services as workspaces
from workspaces.exceptions import WorkspaceError
from workspaces.fencing import StaleWriter
from workspaces.snapshots import Snapshot

logger = logging.getLogger("dashboard_ai.chat")

#: The pause between attempts to publish an event the shared log refused to take.
PUBLISH_RETRY_SECONDS = 0.2


class RunnerState(Enum):
    """Where a runner is in its life; every state but ``IDLE`` and ``CLOSED`` is busy."""

    IDLE = "idle"  # open: a turn, an undo or a sync may start
    SYNCING = "syncing"  # an init's files are being written
    TURN = "turn"  # a turn is running (``SessionRunner.turn``)
    UNDOING = "undoing"  # an undo is being planned or run
    CLOSED = "closed"  # ended or ending: no socket may attach any more


_BUSY_STATES = frozenset({RunnerState.SYNCING, RunnerState.TURN, RunnerState.UNDOING})
_BUSY_WITH = {
    RunnerState.SYNCING: "Files are being written",
    RunnerState.TURN: "A turn is running",
    RunnerState.UNDOING: "An undo is running",
}


class RunnerRegistry(Protocol):
    """What a runner needs of the registry that started it."""

    @property
    def ownership(self) -> Ownership:
        """Who owns which session (the runner gives its lease back there)."""

    async def forget(self, runner: SessionRunner) -> None:
        """The runner has ended."""

    @property
    def quotas(self) -> UserQuotas:
        """The users' quotas (a turn counts against its session owner's)."""


class _Wake:
    """Queue sentinel: a socket left; look again at whether the runner is idle."""


@dataclass(frozen=True)
class _Undo:
    """Queue command: undo turns as planned (run by the owner, which owns the client)."""

    plan: UndoPlan


class _CloseAgent:
    """Queue sentinel: close the CLI now (the pool needs its slot); keep the runner."""


class _WarmUp:
    """Queue sentinel: a socket opened the session; start its CLI if a slot is free."""


class SessionRunner:
    """The one task that owns a session's agent, plus the session's event stream."""

    def __init__(
        self,
        session_id: str,
        registry: RunnerRegistry,
        *,
        lease: Lease,
        stream: SessionEvents,
        agents: AgentPool,
        make_client: ClientFactory,
        opened_by: str = "",
        user: str = "",
    ) -> None:
        self.session_id = session_id
        self.lease = lease  # this server owns the session under it
        self.opened_by = opened_by  # the client address whose init started this runner
        self.user = user  # the user whose init started it, counted in their live sessions
        self.owner = ""  # the session's owner (its row's), whose quotas its turns count in
        self._turn_in_quota = False  # the running turn is counted in the owner's quota
        self.workspace = workspaces.path_for(session_id)
        self.stream = stream
        self.lost = False  # the lease went to another server: nothing more is written
        self._started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.state = RunnerState.IDLE
        self.turn: Turn | None = None  # the running turn, in state TURN
        self._not_busy = asyncio.Event()
        self._not_busy.set()
        self._registry = registry
        self._agents = agents
        self._make_client = make_client
        self._holds = 0  # sockets between registry lookup and attach: keep the runner
        self._commands: asyncio.Queue[Turn | _Undo | _Wake | _CloseAgent | _WarmUp] = (
            asyncio.Queue()
        )
        self._agent: AgentProcess | None = None
        self._task = asyncio.create_task(self._own(), name=f"session:{session_id}")

    # --- called by consumers -----------------------------------------------------

    async def prepare(self, frame: InitFrame) -> tuple[dict[str, Any], int]:
        """The ``ready`` answering a socket's ``init``, and the seq after which the
        socket's events start; the socket may be on another server.

        With ``lastSeq`` the socket is to get every event after it that the log still
        holds; when some are gone, ``ready`` says ``replayTruncated`` and carries the
        current files instead (see :meth:`chat.session.routing.SessionRouter.open`).

        The session's CLI is then started in the background (:meth:`_warm_up`), so
        that the first message finds it running.
        """
        await self.started()
        with self._as_owner():
            prepared = await self._prepare(frame)
        self._commands.put_nowait(_WarmUp())
        return prepared

    async def _prepare(self, frame: InitFrame) -> tuple[dict[str, Any], int]:
        record = await store.touch(self.session_id)
        if frame.last_seq is not None and frame.last_seq > self.stream.seq:
            # Answering with the whole workspace (as for a truncated replay) would let a
            # tiny frame cost a huge answer, over and over.
            raise LastSeqAhead(
                f"lastSeq {frame.last_seq} is beyond this session's last event "
                f"({self.stream.seq}); send init without lastSeq."
            )
        if frame.files:
            self._claim(RunnerState.SYNCING, "files can be sent again when it ends")
            try:
                conflicts = await self._sync(frame.files, frame.base_hashes)
            finally:
                self._release(RunnerState.SYNCING)
        else:
            conflicts = []
            if not self.busy:  # else the sync, turn or undo under way made it current
                await workspaces.ensure_current(session_id=self.session_id)
        replay = None if frame.last_seq is None else await self.stream.replay(frame.last_seq)
        truncated = frame.last_seq is not None and replay is None
        if frame.last_seq is not None:
            metrics.replay(truncated=truncated)
        snapshot = await workspaces.snapshot(session_id=self.session_id)
        ready = self.stream.stamp(
            ReadyFrame(
                files=sorted(snapshot),
                resumed=bool(record.sdk_session_id),
                message_count=record.message_count,
                replay_truncated=truncated,
                contents=file_contents(await workspaces.snapshot_contents(snapshot))
                if truncated
                else None,
                hashes={path: state.sha256 for path, state in snapshot.items()},
                conflicts=conflicts or None,
            )
        )
        start = (
            frame.last_seq if frame.last_seq is not None and replay is not None else ready["seq"]
        )
        return ready, start

    @contextmanager
    def _as_owner(self) -> Iterator[None]:
        """Write files as this owner while a frame is handled; a newer owner's claim
        ends this runner (its frame is refused as the session has moved)."""
        try:
            with fencing.writing_as(self.lease.token):
                yield
        except StaleWriter:
            self.lose()
            raise SessionUnavailable("This session moved to another server; try again.") from None

    async def started(self) -> None:
        """Return once the runner owns the session's events (see :meth:`_begin`)."""
        await asyncio.shield(self._started)

    async def submit(self, send: Send, frame: MessageFrame) -> None:
        """Start a turn for ``frame``, or replay the outcome of one already run."""
        await self.started()
        if frame.client_message_id:
            if self.turn is not None and self.turn.client_message_id == frame.client_message_id:
                return  # a resend of the running turn: its frames are on their way
            outcome = await store.outcome(self.session_id, frame.client_message_id)
            if outcome is not None:
                await send(outcome)
                return
        if not self.busy and not options.model_configured():
            raise ModelNotConfigured(
                "The server has no model API key configured (ANTHROPIC_API_KEY)."
            )
        self._claim(RunnerState.TURN, "stop it first, or wait for it to end")
        turn = self.turn = Turn(message=frame.message, client_message_id=frame.client_message_id)
        try:
            await self._registry.quotas.start_turn(self.owner)
            self._turn_in_quota = True
            with self._as_owner():
                turn.conflicts = await self._sync(frame.files, frame.base_hashes)
            # Recorded before it is queued: if this server dies from now on, the server
            # that takes the session over finds the turn unfinished and ends it.
            await store.start_turn(self.session_id, turn.state_id, turn.client_message_id)
        except BaseException:
            self.turn = None
            await self._end_quota_turn()
            self._release(RunnerState.TURN)
            raise
        self._commands.put_nowait(turn)
        metrics.turns_started.inc()

    async def _end_quota_turn(self) -> None:
        if self._turn_in_quota:
            self._turn_in_quota = False
            await self._registry.quotas.end_turn(self.owner)

    async def _sync(
        self, files: dict[str, Any] | None, base_hashes: dict[str, str] | None
    ) -> list[Conflict]:
        """Write a client's files, keeping the server's version where both changed."""
        if not files:
            return []
        found = await workspaces.sync_in_unless_conflicting(
            session_id=self.session_id, files=_plain(files), base_hashes=base_hashes or {}
        )
        return [
            Conflict(path=c.path, server=file_content(c.server), client=file_content(c.client))
            for c in found
        ]

    async def undo(self, frame: UndoFrame) -> None:
        """Queue an undo of the last ``frame.turns`` turns (answered with ``undone``)."""
        await self.started()
        self._claim(RunnerState.UNDOING, "undo when it has ended")
        try:
            kept = await undo_states.state_ids(session_id=self.session_id)
            plan = await store.plan_undo(self.session_id, frame.turns, kept)
        except BaseException:
            self._release(RunnerState.UNDOING)
            raise
        self._commands.put_nowait(_Undo(plan))

    def stop(self) -> bool:
        """Ask the running turn to stop; False when there is none."""
        if self.turn is None:
            return False
        self.turn.stop_requested.set()
        return True

    async def wait_idle(self) -> None:
        """Return once no turn, undo or sync is under way."""
        await self._not_busy.wait()

    async def close(self) -> None:
        """End the runner now: the owner task closes the agent and releases the lease."""
        self._task.cancel()
        await self.wait_closed()

    async def wait_closed(self) -> None:
        """Return once the owner task has ended."""
        await asyncio.gather(asyncio.shield(self._task), return_exceptions=True)

    @property
    def busy(self) -> bool:
        """Whether a turn, an undo or a sync of a client's files is under way."""
        return self.state in _BUSY_STATES

    @property
    def closed(self) -> bool:
        """Whether the runner has ended or is ending (see :meth:`wait_closed`)."""
        return self.state is RunnerState.CLOSED

    def _claim(self, state: RunnerState, advice: str) -> None:
        """Enter a busy ``state`` from ``IDLE``, or refuse with :class:`SessionBusy`.

        Called with no await before it in the caller's frame handling, so that two
        frames can never both see the session free.
        """
        if self.state is not RunnerState.IDLE:
            busy_with = _BUSY_WITH.get(self.state, "The session is closing")
            raise SessionBusy(f"{busy_with} in this session; {advice}.")
        self.state = state
        self._not_busy.clear()

    def _release(self, state: RunnerState) -> None:
        """Leave the busy ``state`` (unless the runner closed meanwhile)."""
        if self.state is state:
            self.state = RunnerState.IDLE
        self._not_busy.set()

    def _close_now(self) -> None:
        """Enter ``CLOSED``: checked and set with no await between, by the callers."""
        self.state = RunnerState.CLOSED
        self._not_busy.set()

    def close_agent_soon(self) -> None:
        """Ask the owner task to close the CLI when it is next free (for the agent pool)."""
        self._commands.put_nowait(_CloseAgent())

    def hold(self) -> None:
        """Keep the runner alive while a socket is being attached."""
        self._holds += 1

    def unhold(self) -> None:
        """The socket is attached (or gave up)."""
        self._holds -= 1
        self._commands.put_nowait(_Wake())

    def leave(self, send: Send) -> None:
        """Detach a socket. A running turn goes on; an idle runner is released later."""
        self.stream.detach(send)
        self._commands.put_nowait(_Wake())

    def lose(self) -> None:
        """The lease is another server's now: end at once, writing nothing more.

        The running turn's terminal frame is the new owner's to send (``TURN_INTERRUPTED``).
        """
        self.lost = True
        self._close_now()
        self._task.cancel()

    def release_if_unattended(self) -> bool:
        """End the runner if it is unattended (its slot is wanted); whether it will end.

        ``closed`` is set with no await after the check, so no socket can attach to a
        runner on its way out; :meth:`wait_closed` returns once it has ended.
        """
        if self.closed or not self.unattended:
            return False
        self._close_now()
        self._task.cancel()
        return True

    @property
    def unattended(self) -> bool:
        """No socket, no turn, no socket on its way: the runner may be released."""
        return not self.stream.attended and not self.busy and self._holds == 0

    # --- events --------------------------------------------------------------------

    def reply(self, frame: ServerFrame) -> dict[str, Any]:
        """``frame`` as a reply to one socket: the session's id and current seq, unchanged."""
        return self.stream.stamp(frame)

    async def emit(self, frame: ServerFrame) -> dict[str, Any]:
        """Number ``frame`` (echoing the turn's ``clientMessageId``) and publish it."""
        if self.turn is not None:
            self.turn.saw(frame)
        event = self._stamp_event(frame)
        await self._publish(event)
        return event

    async def _publish(self, event: dict[str, Any]) -> None:
        """Publish a stamped event, trying again while the lease is this server's.

        A shared log can fail for a moment (Redis restarting); the event must not be
        lost while this server may still write it. If an attempt whose answer was lost
        had written it, the next is refused as not newer; with the lease still held
        nobody else can have written that seq, so it is taken as written.
        """
        uncertain = False
        while True:
            try:
                await self.stream.publish(event)
                return
            except LeaseLost:
                if uncertain and self._registry.ownership.holds(self.lease):
                    return
                raise
            except Exception as exc:
                if not self._registry.ownership.holds(self.lease):
                    raise LeaseLost(self.session_id) from exc
                logger.warning(
                    "publishing an event failed; retrying",
                    extra={"sessionId": self.session_id, "error": type(exc).__name__},
                )
                uncertain = True
                await asyncio.sleep(PUBLISH_RETRY_SECONDS)

    def _stamp_event(self, frame: ServerFrame) -> dict[str, Any]:
        client_message_id = self.turn.client_message_id if self.turn else None
        return self.stream.stamp(frame, advance=True, client_message_id=client_message_id)

    # --- the owner task ----------------------------------------------------------

    async def _begin(self) -> None:
        """Own the session's events; end a turn a previous owner left unfinished.

        A previous owner that died mid-turn sent no terminal frame for it: the turn
        gets its one terminal ``error`` (``TURN_INTERRUPTED``) here, stored as its
        outcome, before this runner takes frames.
        """
        try:
            fencing.run_as(self.lease.token)  # this task and those it starts
            await workspaces.claim(session_id=self.session_id, token=self.lease.token)
            await leases.acquire_lease(session_id=self.session_id)
            record = await store.touch(self.session_id)
            self.owner = record.owner
            await self.stream.own(self.lease, record.last_seq)
            for interrupted in await store.unfinished_turns(self.session_id):
                await self._finish(
                    Turn(message="", client_message_id=interrupted.client_message_id or None),
                    error_frame_for(
                        TurnInterrupted("The server running this turn stopped; send it again.")
                    ),
                    state_id=interrupted.state_id,
                )
        except BaseException as exc:
            self._started.set_exception(exc)
            self._started.exception()  # retrieved: a runner nobody waits on is not an error
            raise
        self._started.set_result(None)

    async def _own(self) -> None:
        try:
            await self._begin()
            while True:
                idle = settings.AGENT_IDLE_SECONDS
                wait = idle if self._agent or self.unattended else None
                try:
                    # asyncio.timeout, not wait_for: on 3.11, wait_for can swallow the
                    # runner's cancellation when a command arrives at the same moment.
                    async with asyncio.timeout(wait):
                        command = await self._commands.get()
                except TimeoutError:
                    if self.unattended:
                        self._close_now()
                        break
                    logger.info("closing idle agent", extra={"sessionId": self.session_id})
                    await self.close_agent()
                    continue
                if isinstance(command, _CloseAgent):
                    if self.turn is None:
                        await self.close_agent()
                    continue
                if isinstance(command, _Wake):
                    continue
                if isinstance(command, _WarmUp):
                    await self._warm_up()
                    continue
                if isinstance(command, _Undo):
                    await self._undo(command.plan)
                    continue
                await self._run(command)
        except (LeaseLost, StaleWriter):
            self.lost = True
            logger.warning("session lease lost", extra={"sessionId": self.session_id})
        except asyncio.CancelledError:
            if not self.lost and self.turn is not None and self.turn.terminal is None:
                await self._finish(self.turn, error_frame_for(InternalError("The server stopped.")))
            raise
        finally:
            self._close_now()
            try:
                await self.close_agent()
                await leases.release_lease(session_id=self.session_id)
                await self._registry.ownership.release(self.lease)
            finally:
                # Only now may a new runner for this session start: it would otherwise
                # share this one's CLI pidfile, transcript and lease.
                await self._registry.forget(self)

    async def _run(self, turn: Turn) -> None:
        """Run one turn to exactly one terminal frame, whatever happens."""
        terminal: ServerFrame
        turn.translator = TurnTranslator(workspace=PurePosixPath(self.workspace))
        try:
            before = await workspaces.snapshot_for_turn(session_id=self.session_id)
            # Keeping the undo state is off the path to the first streamed text: it runs
            # beside the turn and only has to be done before the turn is recorded.
            keeping = asyncio.create_task(self._keep_state(turn, before))
            try:
                terminal = await TurnRun(self, turn, turn.translator).converse(before)
            finally:
                await keeping
        except (LeaseLost, StaleWriter):
            raise
        except (ChatError, WorkspaceError) as exc:
            terminal = error_frame_for(exc)
        except ClaudeSDKError as exc:
            logger.warning(
                "agent failed", extra={"sessionId": self.session_id, "error": type(exc).__name__}
            )
            await self.close_agent()
            terminal = error_frame_for(model_error_for_exception(exc))
        except Exception:
            logger.exception("turn failed", extra={"sessionId": self.session_id})
            await self.close_agent()
            terminal = error_frame_for(InternalError("Internal server error."))
        if not isinstance(terminal, CompleteFrame):  # complete recorded its own snapshot
            await self._record_files()
        await self._finish(turn, terminal)
        await self._renew_budget()

    async def _record_files(self) -> None:
        """Record what the agent wrote in a turn that ended without ``complete``.

        On a failure the workspace stays stamped as being written: the next turn or
        open records it.
        """
        try:
            await workspaces.record_current(session_id=self.session_id)
        except StaleWriter:
            raise
        except Exception:
            logger.exception("recording the files failed", extra={"sessionId": self.session_id})

    async def _keep_state(self, turn: Turn, before: Snapshot) -> None:
        """Keep the workspace as it was before the turn, for undo."""
        await undo_states.save_state(
            session_id=self.session_id, state_id=turn.state_id, files=before
        )

    async def _undo(self, plan: UndoPlan) -> None:
        """Restore the files and rewind the conversation; every socket gets ``undone``."""
        try:
            await self.close_agent()  # its conversation is about to change under it
            change = await undo_states.restore_state(
                session_id=self.session_id, state_id=plan.state_id
            )
            count = await store.apply_undo(self.session_id, plan)
            frame: ServerFrame = UndoneFrame(
                files=file_contents(change.written),
                deleted=change.deleted,
                turns=plan.turns,
                message_count=count,
            )
        except Exception:
            logger.exception("undo failed", extra={"sessionId": self.session_id})
            frame = error_frame_for(InternalError("The undo failed."))
        self._release(RunnerState.UNDOING)
        await self.emit(frame)
        await store.record_seq(self.session_id, self.stream.seq)

    async def _finish(
        self, turn: Turn, terminal: ServerFrame, *, state_id: str | None = None
    ) -> None:
        """Send the turn's one terminal frame and free the session for the next turn.

        The outcome is stored before anyone sees it, so a client that resends the
        message as soon as it has the answer gets the stored outcome, not a rerun.
        ``state_id`` names the turn's record when it is not ``turn``'s own (a turn
        another owner left unfinished).
        """
        if turn.terminal is not None:
            return
        if isinstance(terminal, ErrorFrame) and turn.conflicts:
            terminal = terminal.model_copy(update={"conflicts": turn.conflicts})
        turn.terminal = wire = self.stream.stamp(
            terminal, advance=True, client_message_id=turn.client_message_id
        )
        summary = turn.summary(terminal)
        # A turn another owner left unfinished has no figures of its own: its outcome only.
        figures = summary if state_id is None else {"outcome": summary.get("outcome", "")}
        try:
            await store.finish_turn(
                state_id or turn.state_id,
                resume_at=turn.translator.last_assistant_uuid if turn.translator else None,
                client_message_id=turn.client_message_id,
                counted=turn.counted,
                cost_usd=turn.cost_usd,
                summary=figures,
            )
            await store.record_outcome(
                self.session_id, self.stream.seq, turn.client_message_id, wire
            )
        except Exception:  # the client must get its answer even if the database fails
            logger.exception(
                "storing the turn's outcome failed", extra={"sessionId": self.session_id}
            )
        logger.info("turn ended", extra={"sessionId": self.session_id, **summary})
        metrics.turn_ended(figures)
        await self._end_quota_turn()
        self.turn = None
        self._release(RunnerState.TURN)
        await self._publish(wire)

    # --- the agent ---------------------------------------------------------------

    async def halt_agent(self, pump: asyncio.Task[TurnEnded | None]) -> None:
        """End the turn's pump: halt the agent (interrupt, close, kill), then cancel it."""
        agent_process, survived = self._agent, False
        if agent_process is not None:
            survived = await agent_process.halt(pump)
        if not survived:
            self._agent = None
            pump.cancel()
        await asyncio.gather(pump, return_exceptions=True)

    async def connected_client(self, *, stop: asyncio.Event) -> AgentClient:
        """The session's client, its CLI started (resuming the conversation) if needed.

        ``stop`` ends a wait for a free CLI slot (:class:`SlotWaitAbandoned`).
        """
        if self._agent is None:
            self._agent = await self._start_agent(stop=stop)
        self._agents.touch(self)
        return self._agent.client

    async def _warm_up(self) -> None:
        """Start the CLI ahead of the first message, if a slot is free right now.

        Run by the owner task, so a message that comes meanwhile waits in the queue
        and its turn uses this CLI. The CLI is a spare of the pool (see
        :meth:`AgentPool.acquire`): it takes no slot a turn waits for, asks nobody to
        close, and is the first asked to close itself until a turn uses it; idle, it
        closes after ``AGENT_IDLE_SECONDS`` like any other. A failure is only logged:
        the first message starts the CLI again and reports its error.
        """
        if self._agent or not settings.AGENT_PREWARM or not options.model_configured():
            return
        try:
            self._agent = await self._start_agent(spare=True)
        except NoSpareSlot:
            return
        except Exception as exc:
            logger.warning(
                "starting the agent ahead of a message failed",
                extra={"sessionId": self.session_id, "error": type(exc).__name__},
            )

    async def _start_agent(
        self, *, stop: asyncio.Event | None = None, spare: bool = False
    ) -> AgentProcess:
        """Start the session's CLI, resuming its conversation (see :meth:`AgentProcess.start`)."""
        record = await store.touch(self.session_id)
        return await AgentProcess.start(
            self,
            workspace=self.workspace,
            resume=record.sdk_session_id or None,
            resume_at=record.resume_at or None,
            pool=self._agents,
            make_client=self._make_client,
            stop=stop,
            spare=spare,
        )

    async def _renew_budget(self) -> None:
        """After a turn, replace a CLI that has spent over half of ``CLAUDE_MAX_BUDGET_USD``.

        The CLI enforces its budget on all it has spent since it started, not per turn:
        a warm CLI would refuse a turn once its earlier turns used the budget up. So
        each turn is left at least half of it (and at most all). The new CLI resumes
        the conversation and is started now, as a warm-up (:meth:`_warm_up`), while
        the user reads the answer: started by the next turn, it cost that turn a CLI
        start and a resume (about 0.6 s here).
        """
        budget = settings.CLAUDE_MAX_BUDGET_USD
        if budget and self._agent is not None and self._agent.spent_usd > budget / 2:
            logger.info("renewing the agent's budget", extra={"sessionId": self.session_id})
            await self.close_agent()
            await self._warm_up()

    def turn_cost(self, total_usd: float) -> float:
        """The turn's own cost (see :meth:`AgentProcess.turn_cost`)."""
        return self._agent.turn_cost(total_usd) if self._agent else total_usd

    async def close_agent(self) -> None:
        """Close the session's CLI, if one runs; the next turn starts and resumes another."""
        agent_process, self._agent = self._agent, None
        if agent_process is not None:
            await agent_process.close()


def _plain(files: dict[str, Any]) -> dict[str, Any]:
    """Client file contents as plain strings and dicts, for the workspace service."""
    return {
        path: content if isinstance(content, str) else content.model_dump()
        for path, content in files.items()
    }
