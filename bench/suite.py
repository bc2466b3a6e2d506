"""The benchmark suite (``make bench``): today's figures of the performance issue, in one run.

Offline, on the scripted model with no delays (``write_app``: a text, a Write, a final
text; ``long_text`` where a stop needs a turn that lasts), against real daphne
subprocesses of this tree, the real SDK and its bundled CLI, on SQLite. Two servers,
one after the other:

- **defaults** (``AGENT_IDLE_SECONDS=1`` so that the cold sessions' CLIs leave between
  timed turns, as in :mod:`bench.turn_latency`; logs at warning; every other setting at
  its production default, where the test servers' stall and stop deadlines are shorter):
  connect (handshake to open); ``init`` of 10, 100 and 500 files to ``ready``; a
  session's first message (its CLI starts then) with no think time and with 1 s after
  ``ready``, beside ``query()`` on the bare SDK; a warm turn beside a reused
  ``ClaudeSDKClient``; ``stop`` to its terminal frame; 10 new sessions sending their
  first message at once, right after their ``ready`` and 1 s after it; the server's
  RSS; then a restart (SIGTERM to ``/health``) and the first message of sessions that
  had a turn before it (their CLI resumes the stored conversation).
- **raised** (``WORKSPACE_MAX_FILES=5000``, ``MAX_LIVE_AGENTS=64``, the per-address
  limits at 128 since every socket comes from 127.0.0.1, ``AGENT_IDLE_SECONDS`` at its
  default so CLIs stay): ``init`` of 5,000 files; warm ``write_app`` turns on
  workspaces of 1, 10 and 5,000 files of 2 KiB and 500 files of 40 KiB (20 MB), each
  beside a reused SDK client in a folder of the same files; one conversation of 50
  messages beside a reused SDK client, the turns around its 1st, 10th and 50th message;
  new sessions sending their first message at once (``--bursts``, none by default; the
  baseline had 25); 10, 25 and 50 sessions streaming at once (``--streams``: 50 sessions
  opened and warmed by a small turn once, then the first 10, 25 and 50 of them each
  sent 300 deltas 10 ms apart, all together, :mod:`bench.throughput`): each delta's
  latency from the model's write to the client's read, frames and deltas a second; after
  each, the server's RSS and each live CLI's RSS and PSS (``/proc/<pid>/smaps_rollup``,
  :mod:`bench.proc_stats`).
- **idle** (:mod:`bench.idle_memory`, a server of its own): the server's RSS per idle
  session, 1,000 sessions (``--idle-sessions``) opened with no file, sockets kept open.

Turn times run from sending the message: to the first ``stream`` frame (the SDK's first
text delta) and to ``complete`` (its ``ResultMessage``); beside them, when the turn's
first request reached the model (the CLI was up and had sent the prompt). Series that
are compared run interleaved, so drift on the machine hits both alike. Files are 2 KiB
each. It prints one table (p50 and p95, and how many samples) and writes it as JSON
with the raw samples and the machine's state; it asserts nothing. Run it by hand::

    .venv/bin/python bench/suite.py [--rounds N] [--json PATH] [--bursts 25]
        [--streams 10,25,50] [--idle-sessions 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import idle_memory, throughput  # noqa: E402
from bench.harness import TimedModelServer, live_backend, quantile  # noqa: E402
from bench.proc_stats import cli_processes, memory  # noqa: E402
from bench.turn_latency import (  # noqa: E402
    SCRIPT,
    BackendRunner,
    Sample,
    SdkRunner,
    Series,
    TurnFailed,
    backend_turn,
    interleave,
)
from tests.support.live import ChatClient, LiveServer  # noqa: E402

MS = 1000.0
MIB = 1024 * 1024
FILE_BYTES = 2048
THINK_SECONDS = 1.0
STOP_PROMPT = "a long answer, please [script:long_text]"
DEFAULT_JSON = ROOT / "var" / "bench" / "latest.json"
#: The production defaults where the test servers' differ (tests.support.live.server_env
#: stalls a turn after 4 s without a model event, which 10 CLIs starting at once exceed).
PRODUCTION = {"MODEL_STALL_SECONDS": "60", "STOP_DEADLINE_SECONDS": "5", "LOG_LEVEL": "warning"}
#: The defaults server: only the idle time differs (see the module docstring).
DEFAULTS = {**PRODUCTION, "AGENT_IDLE_SECONDS": "1"}
RAISED = {
    **PRODUCTION,
    "WORKSPACE_MAX_FILES": "5000",
    "MAX_LIVE_AGENTS": "64",
    "MAX_SESSIONS_PER_CLIENT": "128",
    "MAX_SOCKETS_PER_CLIENT": "128",
}
#: Workspaces of the growth rows: (files, bytes a file). 500 files of 40 KiB is the
#: issue's 20 MB workspace, to set beside one file.
GROWTH = ((1, FILE_BYTES), (10, FILE_BYTES), (500, 40 * 1024), (5000, FILE_BYTES))
#: The turns of one conversation whose times are kept: around its 1st (after the turn
#: that starts the CLI), 10th and 50th message.
CONVERSATION_AT = {
    2: "1",
    3: "1",
    4: "1",
    9: "10",
    10: "10",
    11: "10",
    48: "50",
    49: "50",
    50: "50",
}
IDLE_SESSIONS = 1000
#: Sessions streaming at once: each session's model sends this many deltas, this many
#: seconds apart (100 a second: a fast model), all sessions together.
FLOOD_DELTAS = 300
FLOOD_PAUSE = 0.01


@dataclass
class Row:
    """One line of the table: a figure's samples (seconds, or bytes when ``unit`` is MiB
    or KiB)."""

    name: str
    samples: list[float]
    unit: str = "ms"
    note: str = ""

    def scaled(self) -> list[float]:
        scale = {"ms": MS, "MiB": 1 / MIB, "KiB": 1 / 1024}[self.unit]
        return [value * scale for value in self.samples]

    def summary(self) -> dict[str, Any]:
        values = self.scaled()
        return {
            "name": self.name,
            "unit": self.unit,
            "n": len(values),
            "p50": finite(quantile(values, 0.5)),
            "p95": finite(quantile(values, 0.95)),
            "note": self.note,
            "samples": [round(value, 2) for value in values],
        }


def finite(value: float) -> float | None:
    """``value`` rounded, or None for no samples (NaN is not JSON)."""
    return None if math.isnan(value) else round(value, 2)


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, samples: list[float], unit: str = "ms", note: str = "") -> None:
        self.rows.append(Row(name, samples, unit, note))

    def turns(self, series: Series, note: str = "") -> None:
        """Two rows for a series of turns: to the first text and to the end."""
        first_request = quantile(series.values("first_request"), 0.5) * MS
        self.add(f"{series.name}: first stream", series.values("first_text"), note=note)
        self.add(
            f"{series.name}: complete",
            series.values("done"),
            note=f"model's 1st request at {first_request:.0f} ms",
        )
        self.notes.extend(f"{series.name}: {note}" for note in series.notes)


def workspace_files(count: int, size: int = FILE_BYTES) -> dict[str, str]:
    """``count`` files of ``size`` bytes, 100 to a folder."""
    return {f"src/d{n // 100:02}/f{n:04}.txt": f"{n:04}" * (size // 4) for n in range(count)}


def growth_label(count: int, size: int) -> str:
    files = "1 file" if count == 1 else f"{count} files"
    return files + ("" if size == FILE_BYTES else f" of {size // 1024} KiB")


# --- the measurements ---------------------------------------------------------------


async def connects(server: LiveServer, rounds: int) -> list[float]:
    """Seconds from ``connect()`` to an open socket (TCP, the HTTP upgrade, the accept)."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        chat = await ChatClient.connect(server.ws_url)
        times.append(time.perf_counter() - start)
        await chat.close()
    return times


async def inits(server: LiveServer, name: str, count: int, rounds: int) -> list[float]:
    """Seconds from sending ``init`` with ``count`` files (a new session each) to ``ready``."""
    times = []
    files = workspace_files(count)
    for number in range(rounds):
        session_id = f"{name}-{number}"
        frame = json.dumps({"type": "init", "sessionId": session_id, "files": files})
        chat = await ChatClient.connect(server.ws_url)
        start = time.perf_counter()
        await chat.send_raw(frame)
        answer = (await chat.until("ready", "error", timeout=120))[-1]
        times.append(time.perf_counter() - start)
        await chat.close()
        if answer["type"] != "ready":
            raise TurnFailed(f"init of {count} files answered {answer.get('code')}")
    return times


async def stops(chat: ChatClient, session_id: str, rounds: int) -> list[float]:
    """Seconds from ``stop`` (sent at a turn's first ``stream``) to its terminal frame."""
    times = []
    for _ in range(rounds):
        await chat.begin(session_id, STOP_PROMPT)
        start = time.perf_counter()
        await chat.send({"type": "stop", "sessionId": session_id})
        terminal = (await chat.turn())[-1]
        times.append(time.perf_counter() - start)
        chat.frames.clear()
        if terminal["type"] != "complete" or not terminal.get("stopped"):
            raise TurnFailed(f"a stop ended with {terminal}")
    return times


async def burst(
    server: LiveServer, model: TimedModelServer, name: str, count: int, think: float = 0.0
) -> tuple[Series, int]:
    """``count`` new sessions, each ``ready``, send their first message at once
    (``think`` seconds after the last ``ready``).

    Returns the turns that ran and how many were refused (``SERVER_BUSY``).
    """
    session_ids = [f"{name}-{n}" for n in range(count)]
    chats = [await ChatClient.connect(server.ws_url) for _ in session_ids]
    label = f"{count} first messages at once" + (f", {think:.0f} s after ready" if think else "")
    series, refused = Series(label), 0
    try:
        for chat, session_id in zip(chats, session_ids, strict=True):
            ready = await chat.init(session_id)
            if ready["type"] != "ready":
                raise TurnFailed(f"init answered {ready}")
        await asyncio.sleep(think)
        outcomes = await asyncio.gather(
            *(backend_turn(chat, sid, model) for chat, sid in zip(chats, session_ids, strict=True)),
            return_exceptions=True,
        )
    finally:
        for chat in chats:
            await chat.close()
    for outcome in outcomes:
        if isinstance(outcome, Sample):
            series.samples.append(outcome)
        elif "SERVER_BUSY" in str(outcome):
            refused += 1
        else:
            series.notes.append(f"a turn failed: {outcome!r}")
    return series, refused


async def resumes(via: BackendRunner, model: TimedModelServer, session_ids: list[str]) -> Series:
    """The first message of each session after the restart: its CLI resumes the conversation."""
    series = Series("first message after a restart")
    already = len(model.requests)
    for session_id in session_ids:
        try:
            series.samples.append(await via.session_turn(session_id))
        except (TurnFailed, TimeoutError) as exc:
            series.notes.append(f"failed: {exc}")
    # A resumed turn's first request carries the conversation before it, not one message.
    fresh = [r for r in model.requests[already:] if len((r.body or {}).get("messages", [])) == 1]
    if fresh:
        series.notes.append(f"{len(fresh)} request(s) without the earlier conversation")
    return series


async def growth(
    server: LiveServer, model: TimedModelServer, data: Path, run_id: str, rounds: int
) -> list[Series]:
    """Warm turns on workspaces of each size, beside a warm SDK client in the same files.

    The sessions stay afterwards (unattended, with their CLIs) for the memory figures.
    """
    pairs: list[tuple[Series, Callable[[], Awaitable[Sample]]]] = []
    chats: list[ChatClient] = []
    sdks: list[SdkRunner] = []
    try:
        for count, size in GROWTH:
            files = workspace_files(count, size)
            session_id = f"bench-growth{count}-{size}-{run_id}"
            chats.append(chat := await ChatClient.connect(server.ws_url))
            ready = await chat.init(session_id, files=files)
            if ready["type"] != "ready":
                raise TurnFailed(f"init of {count} files answered {ready}")
            await backend_turn(chat, session_id, model)  # untimed: it starts the CLI
            folder = data / f"sdk-growth{count}-{size}"
            sdks.append(bare := SdkRunner(model, folder))
            for path, text in files.items():  # into the folder start_warm runs the client in
                target = folder / "warm" / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
            await bare.start_warm()
            turn = functools.partial(backend_turn, chat, session_id, model)
            label = growth_label(count, size)
            pairs.append((Series(f"warm turn, {label}"), turn))
            pairs.append((Series(f"SDK client warm, {label}"), bare.warm_turn))
        await interleave(rounds, pairs)
    finally:
        for chat in chats:
            await chat.close()
        for bare in sdks:
            await bare.close()
    return [one for one, _ in pairs]


async def conversation(
    server: LiveServer, model: TimedModelServer, data: Path, run_id: str
) -> list[Series]:
    """One conversation of 50 messages on the backend and on a reused SDK client, turn
    by turn interleaved; the turns around the 1st, 10th and 50th message are kept."""
    session_id = f"bench-conversation-{run_id}"
    chat = await ChatClient.connect(server.ws_url)
    bare = SdkRunner(model, data / "sdk-conversation")
    kept: dict[str, Series] = {}
    try:
        ready = await chat.init(session_id)
        if ready["type"] != "ready":
            raise TurnFailed(f"init answered {ready}")
        await backend_turn(chat, session_id, model)  # message 1: it starts the CLI
        await bare.start_warm()
        for number in range(2, max(CONVERSATION_AT) + 1):
            ours = await backend_turn(chat, session_id, model)
            theirs = await bare.warm_turn()
            at = CONVERSATION_AT.get(number)
            if at is not None:
                kept.setdefault(f"b{at}", Series(f"warm turn at message {at}")).samples.append(ours)
                sdk = kept.setdefault(f"s{at}", Series(f"SDK client warm at message {at}"))
                sdk.samples.append(theirs)
    finally:
        await chat.close()
        await bare.close()
    return list(kept.values())


def memory_rows(results: Results, server: LiveServer, label: str, clis: bool = True) -> None:
    """The server's RSS, and (with ``clis``) each of its live CLIs' RSS and PSS, as rows."""
    assert server.process is not None
    pid = server.process.pid
    own = memory(pid)
    if own is not None:
        results.add(f"server RSS, {label}", [float(own.rss)], unit="MiB")
    live = [m for m in map(memory, cli_processes(pid)) if m is not None] if clis else []
    if not live:
        return
    rss = [float(m.rss) for m in live]
    pss = [float(m.pss) for m in live if m.pss is not None]
    results.add(
        f"per-CLI RSS, {label}", rss, unit="MiB", note=f"{len(rss)} CLIs, {sum(rss) / MIB:.0f} MiB"
    )
    if pss:
        results.add(f"per-CLI PSS, {label}", pss, unit="MiB", note=f"{sum(pss) / MIB:.0f} MiB")


# --- the run ------------------------------------------------------------------------


async def on_defaults(
    results: Results, server: LiveServer, model: TimedModelServer, data: Path, rounds: int
) -> None:
    run_id = uuid.uuid4().hex[:8]
    results.add("connect (handshake to open)", await connects(server, 10 * rounds))
    for count in (10, 100, 500):
        name = f"bench-init{count}-{run_id}"
        results.add(f"init {count} files -> ready", await inits(server, name, count, rounds))

    via, bare = BackendRunner(server, model, run_id), SdkRunner(model, data / "sdk")
    cold, thought = (
        Series("first message"),
        Series(f"first message, {THINK_SECONDS:.0f} s after ready"),
    )
    cold_sdk, warm, warm_sdk = Series("SDK query()"), Series("warm turn"), Series("SDK client warm")
    try:
        # Untimed first: the run's first CLI start pays for a cold page cache.
        await via.cold_turn()
        await bare.cold_turn()
        think = functools.partial(via.cold_turn, think=THINK_SECONDS)
        await interleave(
            rounds, [(cold, via.cold_turn), (thought, think), (cold_sdk, bare.cold_turn)]
        )
        await via.start_warm()
        await bare.start_warm()
        await interleave(2 * rounds, [(warm, via.warm_turn), (warm_sdk, bare.warm_turn)])
        assert via.warm_chat is not None
        stopped = await stops(via.warm_chat, via.warm_session, rounds)
    finally:
        await via.close()
        await bare.close()
    for one in (cold, thought, cold_sdk, warm, warm_sdk):
        results.turns(one)
    results.add("stop -> terminal frame (long_text, warm)", stopped)

    at_once, refused = await burst(server, model, f"bench-burst-{run_id}", 10)
    results.turns(at_once, note=f"{refused} refused")
    await asyncio.sleep(2 * float(DEFAULTS["AGENT_IDLE_SECONDS"]))  # their CLIs leave
    name = f"bench-burst-think-{run_id}"
    at_once, refused = await burst(server, model, name, 10, think=THINK_SECONDS)
    results.turns(at_once, note=f"{refused} refused")
    # Its CLIs are leaving (AGENT_IDLE_SECONDS=1): the CLI figures come from the raised server.
    memory_rows(results, server, "defaults, after the burst", clis=False)

    start = time.perf_counter()
    server.restart()
    results.add("server restart (SIGTERM to /health)", [time.perf_counter() - start])
    results.turns(await resumes(via, model, via.cold_sessions[:rounds]))


async def on_raised(
    results: Results,
    server: LiveServer,
    model: TimedModelServer,
    data: Path,
    rounds: int,
    bursts: tuple[int, ...],
    streams: tuple[int, ...],
) -> None:
    run_id = uuid.uuid4().hex[:8]
    name = f"bench-init5000-{run_id}"
    results.add("init 5000 files -> ready (raised)", await inits(server, name, 5000, 3))
    for one in await growth(server, model, data, run_id, rounds):
        results.turns(one)
    for one in await conversation(server, model, data, run_id):
        results.turns(one)
    for count in bursts:
        at_once, refused = await burst(server, model, f"bench-burst{count}-{run_id}", count)
        results.turns(
            at_once, note=f"{refused} refused (MAX_LIVE_AGENTS={RAISED['MAX_LIVE_AGENTS']})"
        )
        memory_rows(results, server, f"raised, after {count} at once")
    if streams:
        await streaming(results, server, model, run_id, streams)


async def streaming(
    results: Results,
    server: LiveServer,
    model: TimedModelServer,
    run_id: str,
    counts: tuple[int, ...],
) -> None:
    """The most sessions of ``counts`` opened and warmed once, then the first N of them
    streaming at once for each N (:mod:`bench.throughput`); memory rows after each."""
    warmed = throughput.Round(sessions=max(counts), deltas=0)
    pairs = await throughput.warm_sessions(server, f"flood{run_id}", max(counts), warmed)
    try:
        for count in counts:
            found = throughput.Round(sessions=count, deltas=FLOOD_DELTAS, delay=FLOOD_PAUSE)
            await throughput.flood(server, model, pairs[:count], found, f"f{count}x{run_id}")
            errors = warmed.errors + found.errors
            results.add(
                f"{count} sessions streaming at once: delta latency",
                found.latencies,
                note=f"{found.frames_per_second:.0f} frames/s, {found.deltas_per_second:.0f}"
                f" deltas/s ({FLOOD_DELTAS} deltas {FLOOD_PAUSE * MS:.0f} ms apart each);"
                f" {errors.count('SERVER_BUSY')} refused"
                + (f"; errors {sorted(set(errors))}" if errors else ""),
            )
            memory_rows(results, server, f"raised, {count} streaming")
    finally:
        for client, _ in pairs:
            await client.close()


async def idle(results: Results, model: TimedModelServer, data: Path, sessions: int) -> None:
    """Server memory per idle session (no CLI, socket open): :mod:`bench.idle_memory`."""
    found = await idle_memory.measure(data / "idle", model.url, sessions, files=False)
    kept = found["socketsKept"]
    results.add(
        f"server RSS per idle session ({sessions}, socket open)",
        [kept["perSessionKiB"]["rss"] * 1024],
        unit="KiB",
        note=f"server RSS {found['before']['rss']:.0f} -> {found['after']['rss']:.0f} MiB; "
        f"{kept['serverCpuMsPerInit']:.0f} ms of server CPU per init",
    )


def machine() -> dict[str, Any]:
    """What the numbers depend on: cores, load, versions, and which code ran."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    changed = git("status", "--porcelain", "--", "chat", "workspaces", "dashboard_ai")
    return {
        "nproc": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "python": platform.python_version(),
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommittedProductionChanges": bool(changed),
        "utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


def cell(value: float) -> str:
    return f"{value:8.0f}" if value == value else f"{'-':>8}"


def report(results: Results, before: dict[str, Any], after: dict[str, Any], wall: float) -> None:
    print()
    print(
        f"Benchmark suite, {before['utc']} UTC, commit {before['commit']}"
        + (
            " + uncommitted changes in production code"
            if before["uncommittedProductionChanges"]
            else ""
        )
    )
    load = ", ".join(f"{v:.2f}" for v in before["loadavg"])
    print(f"nproc {before['nproc']}, load average before {load}, after {after['loadavg'][0]:.2f}")
    print(f"script {SCRIPT} on the scripted model, no delays; p50 and p95 of n samples")
    header = f"{'measurement':<52} {'n':>3} {'p50':>8} {'p95':>8}  {'unit':<4}  note"
    print(header)
    print("-" * len(header))
    for row in results.rows:
        summary = row.summary()
        print(
            f"{row.name:<52} {summary['n']:>3} {cell(summary['p50'])} {cell(summary['p95'])}"
            f"  {row.unit:<4}  {row.note}"
        )
    for note in results.notes:
        print("note:", note)
    print(f"wall time {wall:.0f} s")


async def run(
    data: Path, rounds: int, bursts: tuple[int, ...], streams: tuple[int, ...], idle_sessions: int
) -> Results:
    results = Results()
    with TimedModelServer(script=SCRIPT, time_deltas=True) as model:
        start = time.perf_counter()
        with live_backend(data / "defaults", model.url, **DEFAULTS) as server:
            results.add("server start (spawn to /health)", [time.perf_counter() - start])
            await on_defaults(results, server, model, data, rounds)
        with live_backend(data / "raised", model.url, **RAISED) as server:
            await on_raised(results, server, model, data, rounds, bursts, streams)
        if idle_sessions:
            await idle(results, model, data, idle_sessions)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3, help="samples per turn series")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where the JSON goes")
    parser.add_argument(
        "--bursts", default="", help="first messages at once on the raised server, e.g. 25"
    )
    parser.add_argument(
        "--streams", default="10,25,50", help="sessions streaming at once ('': none)"
    )
    parser.add_argument(
        "--idle-sessions", type=int, default=IDLE_SESSIONS, help="idle sessions (0: skip)"
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    before, began = machine(), time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-suite-", ignore_cleanup_errors=True) as tmp:
        bursts = tuple(int(n) for n in args.bursts.split(",") if n)
        streams = tuple(int(n) for n in args.streams.split(",") if n)
        results = asyncio.run(run(Path(tmp), args.rounds, bursts, streams, args.idle_sessions))
    wall, after = time.perf_counter() - began, machine()
    report(results, before, after, wall)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": before,
        "loadavgAfter": after["loadavg"],
        "wallSeconds": wall,
        "rows": [row.summary() for row in results.rows],
        "notes": results.notes,
    }
    args.json.write_text(json.dumps(document, indent=2, allow_nan=False, default=str) + "\n")
    print(f"JSON: {args.json}")


if __name__ == "__main__":
    main()
