"""Turn latency of the chat backend, against the bare Claude Agent SDK on the same model.

Everything runs offline on the scripted model (``scripted_model``) with no
streaming delays (``chunk_delay=0``) and the script ``write_app`` (a text, a
Write tool call, a final text), so the numbers are pure overhead: process
spawns, the CLI, the SDK, the backend and the socket. Four series, ``--turns``
timed turns each (default 20):

- **backend cold**: a new session per turn through ``ws://.../ws/chat`` on a
  real daphne subprocess (started like ``tests.support.live.LiveServer``), so
  each turn spawns and initialises a CLI; the clock starts when the ``message``
  frame is sent, after ``init``/``ready``.
- **backend warm**: one session, after one untimed first turn.
- **SDK query() cold**: ``claude_agent_sdk.query()`` called directly, which
  spawns a CLI per call: the baseline of *backend cold*.
- **SDK client warm**: one ``ClaudeSDKClient`` reused across turns
  (``client.query`` + ``receive_response``), after one untimed first turn: the
  baseline of *backend warm*.

For each turn it records the time to the first streamed text (a ``stream``
frame; for the SDK, a ``content_block_delta``/``text_delta`` ``StreamEvent``)
and to the end of the turn (a ``complete`` frame; a ``ResultMessage``), plus,
from timestamps taken inside the model server, when the turn's first Messages
request reached the model (the CLI is up and has sent the prompt) and when its
last one did. Backend and SDK turns are interleaved so that drift on the machine
hits both alike. It prints median and p95 per series and the backend/SDK
overhead ratios; it never asserts timings. Run it by hand::

    .venv/bin/python bench/turn_latency.py [--turns N]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from claude_agent_sdk import (  # noqa: E402
    ClaudeAgentOptions,
    ClaudeSDKClient,
    ResultMessage,
    StreamEvent,
    query,
)

from bench.harness import TimedModelServer, live_backend, p95  # noqa: E402
from tests.support.live import ChatClient, LiveServer, claude_processes  # noqa: E402

SCRIPT = "write_app"
PROMPT = f"make a small counter app [script:{SCRIPT}]"
TOOLS = ["Read", "Edit", "Write", "Glob", "Grep"]
TURN_TIMEOUT = 60.0
MS = 1000.0


@dataclass
class Sample:
    """One timed turn, in seconds from the moment the message was sent."""

    first_text: float
    done: float
    first_request: float | None
    last_request: float | None
    requests: int


@dataclass
class Series:
    name: str
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def values(self, attribute: str) -> list[float]:
        found = (getattr(sample, attribute) for sample in self.samples)
        return [value for value in found if value is not None]


class TurnFailed(RuntimeError):
    """A turn ended without the frames or messages a successful turn has."""


def sample_for(
    model: TimedModelServer, start: float, first_text: float | None, done: float
) -> Sample:
    if first_text is None:
        raise TurnFailed("the turn streamed no text")
    arrivals = [t for t in model.arrivals_since(start) if t <= done]
    return Sample(
        first_text=first_text - start,
        done=done - start,
        first_request=arrivals[0] - start if arrivals else None,
        last_request=arrivals[-1] - start if arrivals else None,
        requests=len(arrivals),
    )


# --- through the backend ---------------------------------------------------------


async def backend_turn(chat: ChatClient, session_id: str, model: TimedModelServer) -> Sample:
    """Send one message and time its first ``stream`` frame and its ``complete``."""
    first_text: float | None = None
    tool_errors = 0
    start = time.perf_counter()
    await chat.send({"type": "message", "sessionId": session_id, "message": PROMPT})
    while True:
        frame = await chat.recv(timeout=TURN_TIMEOUT)
        now = time.perf_counter()
        kind = frame["type"]
        if kind == "stream" and first_text is None:
            first_text = now
        elif kind == "tool_result" and frame.get("isError"):
            tool_errors += 1
        elif kind == "complete":
            break
        elif kind == "error":
            raise TurnFailed(f"backend error frame: {frame.get('code')}: {frame.get('message')}")
    chat.frames.clear()
    if tool_errors:
        raise TurnFailed(f"{tool_errors} tool call(s) failed")
    return sample_for(model, start, first_text, now)


async def wait_for_cli_exit(marker: str, timeout: float = 10.0) -> bool:
    """Wait (untimed) until no CLI process of ``marker`` remains; False on timeout."""
    deadline = time.monotonic() + timeout
    while claude_processes(marker):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


class BackendRunner:
    """Cold and warm turns through the live backend."""

    def __init__(self, backend: LiveServer, model: TimedModelServer, run_id: str) -> None:
        self.backend = backend
        self.model = model
        self.run_id = run_id
        self.cold_numbers = itertools.count()
        #: Every session a cold turn opened, in order (each holds one turn's conversation).
        self.cold_sessions: list[str] = []
        self.warm_session = f"bench-warm-{run_id}"
        self.warm_chat: ChatClient | None = None
        self.lingering_clis = 0

    async def cold_turn(self, think: float = 0.0) -> Sample:
        """A brand-new session on a brand-new socket: the turn spawns its CLI."""
        session_id = f"bench-cold-{self.run_id}-{next(self.cold_numbers)}"
        self.cold_sessions.append(session_id)
        return await self.session_turn(session_id, think=think)

    async def session_turn(self, session_id: str, think: float = 0.0) -> Sample:
        """Open ``session_id`` on a new socket, wait ``think`` seconds after ``ready``
        (a user reading before typing), time one turn, then leave."""
        chat = await ChatClient.connect(self.backend.ws_url)
        try:
            ready = await chat.init(session_id)
            if ready["type"] != "ready":
                raise TurnFailed(f"init answered {ready}")
            await asyncio.sleep(think)
            return await backend_turn(chat, session_id, self.model)
        finally:
            await chat.close()
            # The last socket leaving closes the session's CLI: let it go before the next turn.
            if not await wait_for_cli_exit(session_id):
                self.lingering_clis += 1

    async def start_warm(self) -> None:
        """Open the warm session and run its untimed first turn (which spawns the CLI)."""
        self.warm_chat = await ChatClient.connect(self.backend.ws_url)
        ready = await self.warm_chat.init(self.warm_session)
        if ready["type"] != "ready":
            raise TurnFailed(f"init answered {ready}")
        await backend_turn(self.warm_chat, self.warm_session, self.model)

    async def warm_turn(self) -> Sample:
        assert self.warm_chat is not None
        return await backend_turn(self.warm_chat, self.warm_session, self.model)

    async def close(self) -> None:
        if self.warm_chat is not None:
            await self.warm_chat.close()
            self.warm_chat = None
            await wait_for_cli_exit(self.warm_session)


# --- the bare SDK ------------------------------------------------------------------


def is_text_delta(message: object) -> bool:
    if not isinstance(message, StreamEvent) or message.parent_tool_use_id is not None:
        return False
    event = message.event
    delta = event.get("delta") or {}
    return (
        event.get("type") == "content_block_delta"
        and delta.get("type") == "text_delta"
        and bool(delta.get("text"))
    )


def check_result(message: ResultMessage) -> None:
    if message.is_error:
        raise TurnFailed(f"SDK result is an error: {message.subtype} {message.errors}")


class SdkRunner:
    """Cold (``query()``) and warm (one reused ``ClaudeSDKClient``) turns on the bare SDK."""

    def __init__(self, model: TimedModelServer, data: Path) -> None:
        self.model = model
        self.data = data
        self.config_dir = data / "claude-config"
        self.config_dir.mkdir(parents=True)
        self.cold_numbers = itertools.count()
        self.client: ClaudeSDKClient | None = None

    def options(self, cwd: Path) -> ClaudeAgentOptions:
        cwd.mkdir(parents=True, exist_ok=True)
        return ClaudeAgentOptions(
            cwd=str(cwd),
            tools=list(TOOLS),
            permission_mode="acceptEdits",
            setting_sources=[],
            include_partial_messages=True,
            env={
                "ANTHROPIC_BASE_URL": self.model.url,
                "ANTHROPIC_API_KEY": "sk-ant-bench-dummy",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "CLAUDE_CONFIG_DIR": str(self.config_dir),
            },
        )

    async def cold_turn(self) -> Sample:
        """One ``query()`` in a fresh directory (as a new backend session has a fresh workspace)."""
        options = self.options(self.data / f"cold-{next(self.cold_numbers)}")
        first_text: float | None = None
        done: float | None = None
        start = time.perf_counter()
        async for message in query(prompt=PROMPT, options=options):
            now = time.perf_counter()
            if first_text is None and is_text_delta(message):
                first_text = now
            elif isinstance(message, ResultMessage) and done is None:
                done = now
                check_result(message)
        # Iterating to the end (untimed) lets query() close its CLI before the next turn.
        if done is None:
            raise TurnFailed("query() ended without a ResultMessage")
        return sample_for(self.model, start, first_text, done)

    async def start_warm(self) -> None:
        self.client = ClaudeSDKClient(self.options(self.data / "warm"))
        await self.client.connect()
        await self.warm_turn()

    async def warm_turn(self) -> Sample:
        assert self.client is not None
        first_text: float | None = None
        start = time.perf_counter()
        await self.client.query(PROMPT)
        async for message in self.client.receive_response():
            now = time.perf_counter()
            if first_text is None and is_text_delta(message):
                first_text = now
            elif isinstance(message, ResultMessage):
                check_result(message)
                return sample_for(self.model, start, first_text, now)
        raise TurnFailed("receive_response() ended without a ResultMessage")

    async def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            await client.disconnect()


# --- running and reporting ---------------------------------------------------------


async def interleave(
    turns: int, pairs: list[tuple[Series, Callable[[], Awaitable[Sample]]]]
) -> None:
    """Run ``turns`` rounds, each one turn of every series in order; a failed turn is noted."""
    for number in range(turns):
        for series, run in pairs:
            try:
                series.samples.append(await run())
            except (TurnFailed, TimeoutError) as exc:
                series.notes.append(f"turn {number + 1} failed: {exc}")


async def run_all(
    turns: int, backend: LiveServer, model: TimedModelServer, data: Path
) -> tuple[list[Series], BackendRunner]:
    run_id = uuid.uuid4().hex[:8]
    via_backend = BackendRunner(backend, model, run_id)
    bare = SdkRunner(model, data / "sdk")
    cold_backend, cold_sdk = Series("backend cold"), Series("SDK query() cold")
    warm_backend, warm_sdk = Series("backend warm"), Series("SDK client warm")
    try:
        # One untimed cold turn each first: the first CLI start of a run pays for a cold
        # page cache, which is not what the series should measure.
        await via_backend.cold_turn()
        await bare.cold_turn()
        await interleave(turns, [(cold_backend, via_backend.cold_turn), (cold_sdk, bare.cold_turn)])
        await via_backend.start_warm()
        await bare.start_warm()
        await interleave(turns, [(warm_backend, via_backend.warm_turn), (warm_sdk, bare.warm_turn)])
    finally:
        await via_backend.close()
        await bare.close()
    return [cold_backend, cold_sdk, warm_backend, warm_sdk], via_backend


def cell(values: list[float]) -> str:
    if not values:
        return f"{'-':>15}"
    return f"{statistics.median(values) * MS:7.0f} {p95(values) * MS:7.0f}"


COLUMNS = [
    ("first_text", "first text"),
    ("done", "complete"),
    ("first_request", "1st model req"),
    ("last_request", "last model req"),
]


def report(series: list[Series], elapsed: float, lingering_clis: int) -> None:
    print()
    print("Turn latency, ms from sending the message (median p95); script", SCRIPT)
    header = f"{'series':<18}{'n':>4}  " + "  ".join(f"{title:>15}" for _, title in COLUMNS)
    print(header)
    print(f"{'':<24}" + "  ".join(f"{'median':>7} {'p95':>7}" for _ in COLUMNS))
    print("-" * len(header))
    for one in series:
        cells = "  ".join(cell(one.values(attribute)) for attribute, _ in COLUMNS)
        print(f"{one.name:<18}{len(one.samples):>4}  {cells}")
    requests = sorted({sample.requests for one in series for sample in one.samples})
    print(f"(model requests per turn: {', '.join(map(str, requests))})")

    print()
    print("Overhead, backend / SDK (ratio of medians; difference of medians in ms)")
    by_name = {one.name: one for one in series}
    pairs = [("backend cold", "SDK query() cold"), ("backend warm", "SDK client warm")]
    for ours, theirs in pairs:
        for attribute, title in COLUMNS[:2]:
            a, b = by_name[ours].values(attribute), by_name[theirs].values(attribute)
            if not a or not b:
                continue
            ma, mb = statistics.median(a), statistics.median(b)
            print(
                f"  {ours:<13} vs {theirs:<17} {title:<11} "
                f"x{ma / mb:5.2f}  ({(ma - mb) * MS:+6.0f} ms)"
            )

    notes = [f"{one.name}: {note}" for one in series for note in one.notes]
    if lingering_clis:
        notes.append(f"{lingering_clis} cold backend CLI(s) outlived their socket by > 10 s")
    for note in notes:
        print("note:", note)
    print(f"\nwall time {elapsed:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=20, help="timed turns per series")
    args = parser.parse_args()
    if args.turns < 1:
        parser.error("--turns must be at least 1")

    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="turn-latency-", ignore_cleanup_errors=True) as tmp:
        data = Path(tmp)
        # Turns outlive their socket; an idle session's CLI closes after a second
        # here, so cold sessions do not pile up live CLIs between timed turns.
        with (
            TimedModelServer(script=SCRIPT) as model,
            live_backend(data / "backend", model.url, AGENT_IDLE_SECONDS="1") as backend,
        ):
            series, via_backend = asyncio.run(run_all(args.turns, backend, model, data))
        report(series, time.perf_counter() - began, via_backend.lingering_clis)


if __name__ == "__main__":
    main()
