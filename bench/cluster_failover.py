"""The live cluster: how long a failover and a handover take, and what routing a frame costs.

Starts its own redis-server, a scripted model and three daphne servers (``a``, ``b``,
``c``) on one database (a SQLite file, or ``--database postgres``: a throwaway
PostgreSQL from tests/support/postgres.py) and that Redis, each on a disk of its own at
one path, as tests/test_cluster_live.py does (``LiveServer(disk=...)``: mount
namespaces, so it runs as root). Each session is opened on ``a`` first, so ``a`` owns
it. Three measurements:

- **failover after SIGKILL**: a ``long_text`` turn (about 4 s of streaming) runs on
  ``a`` with sockets of the session on ``b`` and ``c``; ``a`` is SIGKILLed once both
  have seen a ``stream`` frame. Timed from the kill to the ``TURN_INTERRUPTED`` error
  frame at each surviving socket, at ``SESSION_LEASE_SECONDS`` 10 (the default) and 2,
  the kill at a random point of the owner's lease renewal cycle.
  Then ``a`` is started again for the next round. It also notes whether the killed
  server's CLI outlived it.
- **handover after SIGTERM**: no turn runs; ``a`` gets SIGTERM and at once an ``echo``
  message is sent on ``b``'s socket. Timed from the SIGTERM to ``b``'s ``complete``,
  beside the lease time it must stay far below, and beside a cold ``echo`` turn on a
  session ``b`` opened itself (a new owner spawns a CLI either way).
- **routing cost**: one session owned by ``a`` with a socket on ``a`` and one on
  ``b``, its CLI warm (one untimed turn), then ``write_app`` turns sent alternately on
  ``a`` (runs locally) and on ``b`` (routed to ``a`` over the channel layer, its events
  back through the Redis stream): time to the first ``stream`` frame and to
  ``complete`` at the sender.

Prints medians, p95 and max; asserts nothing. Run by hand, as root::

    .venv/bin/python bench/cluster_failover.py [--rounds N] [--turns N] [--database postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.proc_stats import alive, cli_processes  # noqa: E402
from scripted_model.server import ScriptedModelServer  # noqa: E402
from tests.support.live import ChatClient, LiveServer, server_env  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.redis import RedisServer  # noqa: E402

FILES = {"data/sales.csv": "month,revenue\nJan,10\nFeb,20\n"}
DEFAULT_LEASE = 10.0
SHORT_LEASE = 2.0
MS = 1000.0


class Odd(RuntimeError):
    """The cluster did something a round did not expect (noted in the report, not hidden)."""


@dataclass
class Cluster:
    """Servers on one Redis and one database, each on a disk of its own at ``root/disk``."""

    root: Path
    model_url: str
    redis_url: str
    database_url: str
    servers: list[LiveServer] = field(default_factory=list)
    started: Iterator[int] = field(default_factory=itertools.count)
    errors: list[str] = field(default_factory=list)

    def start(self, name: str, **overrides: str) -> LiveServer:
        data = self.root / f"{name}-{next(self.started)}"
        data.mkdir()
        disk = self.root / "disk"
        disk.mkdir(exist_ok=True)
        shared = {
            "DATA_DIR": str(disk / "var"),
            "WORKSPACE_ROOT": str(disk / "workspaces"),
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "SERVER_ID": name,
            # A warm CLI's cost adds up over its turns and CLAUDE_MAX_BUDGET_USD caps that
            # sum, so dozens of turns in one session would end in MODEL_ERROR: no cap here.
            "CLAUDE_MAX_BUDGET_USD": "0",
        }
        env = server_env(data, self.model_url, **{**shared, **overrides})
        server = LiveServer(data=data, env=env, disk=disk)
        self.servers.append(server)
        server.start()
        return server

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
            self.errors.extend(logged_errors(server))
        self.servers.clear()

    @contextmanager
    def three(self, **overrides: str) -> Iterator[tuple[LiveServer, LiveServer, LiveServer]]:
        try:
            a, b, c = (self.start(name, **overrides) for name in "abc")
            yield a, b, c
        finally:
            self.stop()


@dataclass
class Results:
    failover: dict[float, list[float]] = field(default_factory=dict)
    handover: list[float] = field(default_factory=list)
    handover_exit: list[float] = field(default_factory=list)
    cold_baseline: list[float] = field(default_factory=list)
    routing: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def logged_errors(server: LiveServer) -> list[str]:
    """Each error the server logged: its name, logger, message and last traceback line."""
    found = []
    for text in server.log_text().splitlines():
        try:
            entry = json.loads(text)
        except ValueError:
            continue
        if entry.get("level") in ("error", "critical"):
            last = (entry.get("exception") or "").strip().splitlines()[-1:]
            found.append(
                f"{server.env['SERVER_ID']} {entry.get('time')} {entry.get('logger')}:"
                f" {entry.get('message')} {' '.join(last)}"
            )
    return found


def restart_if_gone(server: LiveServer) -> None:
    """Start ``server`` again (same data, port and name) if its process has ended."""
    if server.process is None or server.process.poll() is not None:
        server.process = None
        server.start()


async def opened(server: LiveServer, session: str, **fields: Any) -> ChatClient:
    client = await ChatClient.connect(server.ws_url)
    ready = await client.init(session, **fields)
    if ready["type"] != "ready":
        raise Odd(f"init of {session} on {server.env['SERVER_ID']} answered {ready}")
    return client


async def close_all(*clients: ChatClient) -> None:
    await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)


async def terminal_at(client: ChatClient, timeout: float) -> tuple[float, dict[str, Any]]:
    """When the socket got its turn's terminal frame (monotonic), and that frame."""
    frames = await client.turn(timeout=timeout)
    return time.monotonic(), frames[-1]


async def killed_owner_round(a: LiveServer, b: LiveServer, c: LiveServer, lease: float,
                             session: str, results: Results) -> None:  # fmt: skip
    on_a = await opened(a, session, files=FILES)
    on_b, on_c = await opened(b, session), await opened(c, session)
    try:
        # The owner renews its leases every lease/3 s, counted from its start; a fixed pause
        # here would kill it at the same point of that cycle every round (it is restarted
        # just before): a random one samples the whole cycle, as a crash would.
        await asyncio.sleep(random.uniform(0, lease / 3))
        await on_a.begin(session, "[script:long_text]")
        await asyncio.gather(on_b.until("stream"), on_c.until("stream"))
        assert a.process is not None
        clis = cli_processes(a.process.pid)
        a.kill()
        killed = time.monotonic()
        ends = await asyncio.gather(terminal_at(on_b, lease + 30), terminal_at(on_c, lease + 30))
        for at, frame in ends:
            if frame.get("code") != "TURN_INTERRUPTED":
                results.notes.append(f"lease {lease:g} s, {session}: ended with {frame}")
                continue
            results.failover[lease].append(at - killed)
        if not clis:
            results.notes.append(f"lease {lease:g} s, {session}: no CLI found under the owner")
        survivors = [pid for pid in clis if alive(pid)]
        if survivors:
            results.notes.append(
                f"lease {lease:g} s, {session}: the killed owner's CLI {survivors} still ran "
                f"{time.monotonic() - killed:.1f} s after the kill"
            )
    finally:
        await close_all(on_a, on_b, on_c)
        restart_if_gone(a)


async def failover(cluster: Cluster, rounds: int, run: str, results: Results) -> None:
    for lease in (DEFAULT_LEASE, SHORT_LEASE):
        results.failover[lease] = []
        with cluster.three(SESSION_LEASE_SECONDS=str(lease)) as (a, b, c):
            for number in range(rounds):
                session = f"kill-{run}-{lease:g}-{number}"
                try:
                    await killed_owner_round(a, b, c, lease, session, results)
                except (Odd, TimeoutError) as exc:
                    results.notes.append(f"failover {session}: {exc!r}")


def exited_at(process: subprocess.Popen[bytes]) -> float:
    """When ``process`` exited (monotonic); it is killed if it takes over 30 s."""
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    return time.monotonic()


async def handover(cluster: Cluster, rounds: int, run: str, results: Results) -> None:
    with cluster.three() as (a, b, _):
        for number in range(rounds):
            session = f"term-{run}-{number}"
            try:
                own = await opened(b, f"{session}-own", files=FILES)
                started = time.monotonic()
                await own.message(f"{session}-own", "[script:echo]")
                results.cold_baseline.append(time.monotonic() - started)
                await own.close()

                on_a = await opened(a, session, files=FILES)
                await on_a.message(session, "remember kiwi [script:echo]")
                on_b = await opened(b, session)
                assert a.process is not None
                leaving = a.process
                leaving.send_signal(signal.SIGTERM)
                termed = time.monotonic()
                await on_b.send(
                    {"type": "message", "sessionId": session, "message": "again [script:echo]"}
                )
                (done, frame), exited = await asyncio.gather(
                    terminal_at(on_b, 60), asyncio.to_thread(exited_at, leaving)
                )
                a.process = None
                if frame["type"] != "complete":
                    results.notes.append(f"handover {session}: ended with {frame}")
                else:
                    results.handover.append(done - termed)
                results.handover_exit.append(exited - termed)
                await close_all(on_a, on_b)
            except (Odd, TimeoutError) as exc:
                results.notes.append(f"handover {session}: {exc!r}")
            finally:
                restart_if_gone(a)


async def timed_turn(client: ChatClient, session: str) -> tuple[float, float]:
    """Seconds to the first ``stream`` frame and to ``complete`` of a write_app turn."""
    started = time.perf_counter()
    await client.send({"type": "message", "sessionId": session, "message": "[script:write_app]"})
    first: float | None = None
    while True:
        frame = await client.recv(timeout=60)
        if frame["type"] == "stream" and first is None:
            first = time.perf_counter() - started
        elif frame["type"] == "error":
            raise Odd(f"routing turn: {frame}")
        elif frame["type"] == "complete":
            if first is None:
                raise Odd("routing turn streamed no text")
            return first, time.perf_counter() - started


async def routing(cluster: Cluster, turns: int, run: str, results: Results) -> None:
    session = f"route-{run}"
    series: dict[str, dict[str, list[float]]] = {
        "on the owner": {"first stream": [], "complete": []},
        "on a non-owner": {"first stream": [], "complete": []},
    }
    results.routing = series
    with cluster.three() as (a, b, _):
        on_a = await opened(a, session, files=FILES)
        on_b = await opened(b, session)
        try:
            await on_a.message(session, "[script:write_app]")  # untimed: spawns the CLI
            await on_b.turn()
            for number in range(turns):
                for name, sender, other in (
                    ("on the owner", on_a, on_b),
                    ("on a non-owner", on_b, on_a),
                ):
                    try:
                        first, done = await timed_turn(sender, session)
                        await other.turn()
                    except (Odd, TimeoutError) as exc:
                        # The sockets are out of step now: whatever follows would be noise.
                        results.notes.append(f"routing turn {number + 1} {name}: {exc!r}; stopped")
                        return
                    series[name]["first stream"].append(first)
                    series[name]["complete"].append(done)
            owners = [int(s.get_json("/health")["ownedSessions"]) for s in (a, b)]
            if owners != [1, 0]:
                results.notes.append(f"routing: owned sessions on a, b = {owners}, not [1, 0]")
        finally:
            await close_all(on_a, on_b)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def line(label: str, values: list[float], unit: float = MS, suffix: str = "ms") -> str:
    if not values:
        return f"  {label:<34} (no samples)"
    return (
        f"  {label:<34} n={len(values):<3} median {statistics.median(values) * unit:7.0f}"
        f"  p95 {p95(values) * unit:7.0f}  min {min(values) * unit:7.0f}"
        f"  max {max(values) * unit:7.0f} {suffix}"
    )


def report(results: Results, errors: list[str], database: str, elapsed: float) -> None:
    print(f"\nLive cluster of 3 servers, one Redis, database {database}")
    print("Failover after SIGKILL of the owner mid-turn (kill -> TURN_INTERRUPTED at b and c):")
    for lease, values in results.failover.items():
        print(line(f"SESSION_LEASE_SECONDS={lease:g}", values))
    print(f"Handover after SIGTERM of the owner, no turn running (lease {DEFAULT_LEASE:g} s):")
    print(line("SIGTERM -> echo sent on b complete", results.handover))
    print(line("SIGTERM -> owner process exited", results.handover_exit))
    print(line("baseline: first echo turn on b", results.cold_baseline))
    print("Routing cost, write_app turns on a warm CLI (ms from the message):")
    for name, columns in results.routing.items():
        for column, values in columns.items():
            print(line(f"sent {name}: {column}", values))
    for note in results.notes:
        print("note:", note)
    for error in errors:
        print("logged:", error)
    print(f"\nwall time {elapsed:.0f} s")


async def run_all(cluster: Cluster, rounds: int, turns: int) -> Results:
    results = Results()
    run = uuid.uuid4().hex[:6]
    await routing(cluster, turns, run, results)
    await handover(cluster, rounds, run, results)
    await failover(cluster, rounds, run, results)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=10, help="kills and SIGTERMs per series")
    parser.add_argument("--turns", type=int, default=20, help="routing turns per series")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--keep", action="store_true", help="keep the servers' files and logs")
    args = parser.parse_args()

    began = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="cluster-failover-"))
    redis = RedisServer(log_path=root / "redis.log")
    postgres = PostgresServer() if args.database == "postgres" else None
    try:
        redis.start()
        if postgres is None:
            database_url = f"sqlite:///{root / 'db.sqlite3'}"
        else:
            postgres.start()
            database_url = postgres.create_database("bench")
        with ScriptedModelServer(script="echo") as model:
            cluster = Cluster(root, model.url, redis.url, database_url)
            try:
                results = asyncio.run(run_all(cluster, args.rounds, args.turns))
            finally:
                cluster.stop()
        report(results, cluster.errors, args.database, time.perf_counter() - began)
    finally:
        redis.stop()
        if postgres is not None:
            postgres.stop()
        if args.keep:
            print(f"files and logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
