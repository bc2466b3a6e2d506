"""Sizing a server: memory and CPU per live session, measured on this machine.

One daphne server (started like ``tests.support.live.LiveServer``) on a redis-server of
its own (``REDIS_URL``, as a cluster runs) and a SQLite file, the scripted model in
this process, ``AGENT_IDLE_SECONDS`` at its default so a session's CLI stays. The
server's CLIs are the Claude CLI processes below the daphne pid in /proc. Memory is
RSS, the lifetime peak RSS (``VmHWM``) and PSS (shared pages split among the processes
that map them, from ``smaps_rollup``): PSS is what one more process really adds.

- **memory**: the daphne process idle with no session, then with 1, 5 and 10 live
  sessions (each opened by a socket that stays, and ran one ``write_app`` turn); the
  CLIs of those sessions idle; a CLI's peak RSS while it runs a turn (sampled every
  10 ms, and its ``VmHWM``).
- **CPU per streamed turn**: ``utime + stime`` from ``/proc/<pid>/stat`` of daphne, of
  the session's CLI and of redis-server around one ``long_text`` turn (200 text
  chunks, about 4 s) on a warm session, over ``--turns`` turns; and ``write_app`` for
  comparison. From it: the share of a core one streaming session keeps busy.
- **concurrent streaming**: ``long_text`` on 1, 5 and 10 of the sessions at once: each
  turn's wall time (4 s when nothing waits for a core), the CPU daphne, the CLIs and
  redis-server spent per turn, and the cores they and this process kept busy.

The scripted model's own CPU (threads of this process) is not in the per-turn
figures; it shares this machine's cores, and is shown beside the concurrent runs.
Prints the numbers; asserts nothing. Run by hand::

    .venv/bin/python bench/sizing.py [--turns N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.proc_stats import Memory, cli_processes, cpu_seconds, memory  # noqa: E402
from scripted_model.server import ScriptedModelServer  # noqa: E402
from tests.support.live import ChatClient, LiveServer, claude_processes, server_env  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402

FILES = {"data/sales.csv": "month,revenue\nJan,10\nFeb,20\n"}
SESSION_COUNTS = (1, 5, 10)
CONCURRENCY = (1, 5, 10)
#: The streamed turn: 200 text chunks 20 ms apart, about 4 s.
STREAMED = "long_text"
SAMPLE_SECONDS = 0.01
SETTLE_SECONDS = 1.0
MIB = 1024 * 1024
T = TypeVar("T")


class Odd(RuntimeError):
    """The server did something the bench did not expect (reported, not hidden)."""


@dataclass
class Session:
    session_id: str
    client: ChatClient
    cli: int


@dataclass
class PeakSampler:
    """The highest RSS seen of any of the given processes while a coroutine ran."""

    pids: Callable[[], list[int]]
    peak: int = 0
    samples: int = 0

    async def around(self, work: Awaitable[T]) -> T:
        task = asyncio.ensure_future(work)
        while not task.done():
            for pid in self.pids():
                found = memory(pid)
                if found is not None:
                    self.peak = max(self.peak, found.rss)
            self.samples += 1
            await asyncio.wait([task], timeout=SAMPLE_SECONDS)
        return task.result()


@dataclass
class Results:
    daphne_idle: Memory | None = None
    daphne_with: dict[int, Memory] = field(default_factory=dict)
    clis_with: dict[int, list[Memory]] = field(default_factory=dict)
    cli_turn_peak: list[int] = field(default_factory=list)
    cli_hwm: list[int] = field(default_factory=list)
    cpu: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    concurrent: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def server_pid(server: LiveServer) -> int:
    assert server.process is not None
    return server.process.pid


def the_cli(server: LiveServer, session_id: str) -> int:
    """The one CLI of ``session_id`` below the server (its cwd is the session's workspace)."""
    found = set(cli_processes(server_pid(server))) & set(claude_processes(session_id))
    if len(found) != 1:
        raise Odd(f"session {session_id}: {len(found)} CLI processes, not 1")
    return found.pop()


async def turn(client: ChatClient, session_id: str, script: str) -> list[dict[str, Any]]:
    await client.send({"type": "message", "sessionId": session_id, "message": f"[script:{script}]"})
    frames = await client.turn(timeout=120)
    if frames[-1]["type"] != "complete":
        raise Odd(f"{script} turn of {session_id} ended with {frames[-1]}")
    return frames


async def open_session(server: LiveServer, number: int, results: Results) -> Session:
    """A socket that stays, and one write_app turn, its CLI's RSS sampled while it runs."""
    session_id = f"size-{os.getpid()}-{number:03d}"  # none a part of another
    client = await ChatClient.connect(server.ws_url)
    ready = await client.init(session_id, files=FILES)
    if ready["type"] != "ready":
        raise Odd(f"init of {session_id} answered {ready}")
    sampler = PeakSampler(lambda: claude_processes(session_id))
    await sampler.around(turn(client, session_id, "write_app"))
    cli = the_cli(server, session_id)
    results.cli_turn_peak.append(sampler.peak)
    found = memory(cli)
    if found is not None:
        results.cli_hwm.append(found.peak_rss)
    return Session(session_id, client, cli)


def own_cpu() -> float:
    """CPU seconds of this process: the scripted model's threads and the clients."""
    spent = os.times()
    return spent.user + spent.system


def cpu_of(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) or 0.0 for pid in pids)


async def cpu_per_turn(
    server: LiveServer, redis: RedisServer, session: Session, script: str, turns: int
) -> dict[str, list[float]]:
    """CPU seconds daphne, the session's CLI and redis-server spend per ``script`` turn."""
    assert redis.process is not None
    spent: dict[str, list[float]] = {"daphne": [], "CLI": [], "redis": [], "wall": []}
    processes = {"daphne": server_pid(server), "CLI": session.cli, "redis": redis.process.pid}
    for _ in range(turns):
        before = {name: cpu_of([pid]) for name, pid in processes.items()}
        started = time.perf_counter()
        await turn(session.client, session.session_id, script)
        spent["wall"].append(time.perf_counter() - started)
        for name, pid in processes.items():
            spent[name].append(cpu_of([pid]) - before[name])
    return spent


async def streaming_at_once(
    server: LiveServer, redis: RedisServer, sessions: list[Session]
) -> dict[str, list[float]]:
    """long_text on every one of ``sessions`` at once: turn wall times, CPU per turn."""
    assert redis.process is not None
    everyone = [server_pid(server), redis.process.pid, *(s.cli for s in sessions)]
    before = cpu_of(everyone)
    daphne_before = cpu_of([server_pid(server)])
    bench_before = own_cpu()
    started = time.perf_counter()

    async def timed(session: Session) -> float:
        await turn(session.client, session.session_id, "long_text")
        return time.perf_counter() - started

    walls = await asyncio.gather(*(timed(session) for session in sessions))
    elapsed = time.perf_counter() - started
    total = cpu_of(everyone) - before
    daphne = cpu_of([server_pid(server)]) - daphne_before
    bench = own_cpu() - bench_before
    return {
        "bench": [bench / elapsed],
        "wall": list(walls),
        "cpu per turn": [total / len(sessions)],
        "daphne per turn": [daphne / len(sessions)],
        "cores busy": [total / elapsed],
    }


async def run_all(server: LiveServer, redis: RedisServer, turns: int) -> Results:
    results = Results()
    await asyncio.sleep(SETTLE_SECONDS)
    results.daphne_idle = memory(server_pid(server))
    sessions: list[Session] = []
    try:
        for count in SESSION_COUNTS:
            while len(sessions) < count:
                sessions.append(await open_session(server, len(sessions), results))
            await asyncio.sleep(SETTLE_SECONDS)
            daphne = memory(server_pid(server))
            if daphne is not None:
                results.daphne_with[count] = daphne
            results.clis_with[count] = [m for s in sessions if (m := memory(s.cli)) is not None]
            listed = cli_processes(server_pid(server))
            if sorted(listed) != sorted(s.cli for s in sessions):
                results.notes.append(f"{count} sessions: CLIs below daphne {listed}")
        for script in (STREAMED, "write_app"):
            results.cpu[script] = await cpu_per_turn(server, redis, sessions[0], script, turns)
        for count in CONCURRENCY:
            results.concurrent[count] = await streaming_at_once(server, redis, sessions[:count])
    finally:
        for session in sessions:
            await session.client.close()
    return results


def mib(value: float | None) -> str:
    return "     -" if value is None else f"{value / MIB:6.1f}"


def memory_cells(found: Memory | None) -> str:
    if found is None:
        return "(gone)"
    return f"RSS {mib(found.rss)}  PSS {mib(found.pss)}  peak RSS {mib(found.peak_rss)} MiB"


def median_mib(values: list[int | None]) -> str:
    present = [value for value in values if value is not None]
    return mib(statistics.median(present) if present else None)


def total_mib(values: list[int | None]) -> str:
    present = [value for value in values if value is not None]
    return mib(sum(present) if present else None)


def spread(values: list[float], unit: str, scale: float = 1.0) -> str:
    return (
        f"median {statistics.median(values) * scale:6.2f}  min {min(values) * scale:6.2f}"
        f"  max {max(values) * scale:6.2f} {unit}"
    )


def report(results: Results, elapsed: float) -> None:
    print("\nMemory (MiB)")
    print(f"  daphne, no session          {memory_cells(results.daphne_idle)}")
    for count, daphne in results.daphne_with.items():
        print(f"  daphne, {count:>2} live session(s)  {memory_cells(daphne)}")
    for clis in results.clis_with.values():
        print(
            f"  {len(clis):>2} idle CLI(s) after a turn: per CLI median"
            f" RSS {median_mib([m.rss for m in clis])} PSS {median_mib([m.pss for m in clis])};"
            f" all together RSS {total_mib([m.rss for m in clis])}"
            f" PSS {total_mib([m.pss for m in clis])}"
        )
    print(
        f"  CLI during its first (write_app) turn: sampled peak RSS median"
        f" {median_mib(list(results.cli_turn_peak))} max {mib(max(results.cli_turn_peak))};"
        f" VmHWM median {median_mib(list(results.cli_hwm))} max {mib(max(results.cli_hwm))}"
    )
    first, last = SESSION_COUNTS[0], SESSION_COUNTS[-1]
    if first in results.daphne_with and last in results.daphne_with:

        def pss_total(count: int) -> float:
            daphne = results.daphne_with[count].pss or 0
            return daphne + sum(m.pss or 0 for m in results.clis_with[count])

        added = (pss_total(last) - pss_total(first)) / (last - first)
        print(f"  one more live session adds (daphne + CLIs, PSS): {mib(added)} MiB")

    print("\nCPU seconds per turn on a warm session, one turn at a time")
    for script, spent in results.cpu.items():
        print(f"  {script} (n={len(spent['wall'])}), wall {spread(spent['wall'], 's')}")
        for name in ("daphne", "CLI", "redis"):
            print(f"    {name:<7} {spread(spent[name], 'CPU s')}")
        per_turn = statistics.median(
            [
                d + c + r
                for d, c, r in zip(spent["daphne"], spent["CLI"], spent["redis"], strict=True)
            ]
        )
        share = per_turn / statistics.median(spent["wall"])
        print(
            f"    all     {per_turn:.2f} CPU s per {statistics.median(spent['wall']):.2f} s turn:"
            f" {share:.2f} of a core for the turn's length"
        )
        if script == STREAMED:
            print(f"    so one core carries about {1 / share:.0f} sessions streaming at once")

    print("\nlong_text on several sessions at once (200 chunks, 4 s with no waiting)")
    for count, found in results.concurrent.items():
        print(
            f"  {count:>2} at once: turn wall {spread(found['wall'], 's')};"
            f" CPU per turn {found['cpu per turn'][0]:.2f} s"
            f" (daphne {found['daphne per turn'][0]:.2f}); cores busy {found['cores busy'][0]:.2f}"
            f" (and {found['bench'][0]:.2f} in this process: model and clients)"
        )
    for note in results.notes:
        print("note:", note)
    print(f"\nwall time {elapsed:.0f} s; {os.cpu_count()} CPUs; load {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=10, help="timed turns per script")
    args = parser.parse_args()

    began = time.perf_counter()
    data = Path(tempfile.mkdtemp(prefix="sizing-"))
    redis = RedisServer(log_path=data / "redis.log")
    try:
        redis.start()
        with ScriptedModelServer(script="echo") as model:
            # No CLAUDE_MAX_BUDGET_USD cap: it caps the sum over a warm CLI's turns.
            env = server_env(data, model.url, REDIS_URL=redis.url, CLAUDE_MAX_BUDGET_USD="0")
            with LiveServer(data=data, env=env) as server:
                results = asyncio.run(run_all(server, redis, args.turns))
        report(results, time.perf_counter() - began)
    finally:
        redis.stop()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
