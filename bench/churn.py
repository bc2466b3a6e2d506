"""A busy server's responsiveness: ``/health`` and handshakes while sessions churn.

Offline, against a real daphne subprocess of this tree (``MAX_LIVE_AGENTS`` at its
default of 16, the per-address limits raised since every socket comes from 127.0.0.1)
and the scripted model with no delays. ``--sessions`` sessions (40) churn for
``--seconds`` (45): each connects (a timed handshake, given up after
``--handshake-timeout`` seconds), opens its session (``init``, with ``lastSeq`` after a
reconnect), and then, again and again after a think time of up to a second, sends a
message (``write_app``, a short turn with a file write, or ``long_text``, about 4 s of
streaming) and either waits for its end, stops it, or drops the socket (no close frame)
part-way and reconnects to read the rest of the turn from the replay.

Meanwhile another process polls ``GET /health`` every 20 ms, each on a new connection,
as a load balancer would, and opens (and closes) a WebSocket every 100 ms: its
timing does not share this process's CPU and GIL with 40 clients and the model, as
the churn's own handshakes do.

Prints the ``/health`` latency (p50, p99, max, failures), the quiet process's
handshakes and the churn's (attempts, p50/p99/max, how many got no answer in time),
the turns (completed, stopped, dropped and errors by code), and the CPU the server,
its CLIs and this bench used, with the load average. Asserts nothing. Run by hand::

    .venv/bin/python bench/churn.py [--sessions 40] [--seconds 45] [--seed 1]
        [--server-env NAME=VALUE ...] [--data DIR]

With ``--server-env PYTHONASYNCIODEBUG=1`` the server's event loop logs every callback
that held it for more than 100 ms (``Executing <Handle ...> took N seconds``) in
``DIR/server.log``.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import websockets  # noqa: E402
import websockets.sync.client  # noqa: E402

from bench.harness import TimedModelServer, live_backend, quantile  # noqa: E402
from bench.proc_stats import cli_processes, cpu_seconds  # noqa: E402
from tests.support.live import ChatClient, LiveServer  # noqa: E402

MS = 1000.0
POLL_SECONDS = 0.02
HANDSHAKE_PROBE_SECONDS = 0.1
#: Every socket comes from 127.0.0.1: the per-address limits are raised past what the
#: churn opens (reconnects overlap the sockets they replace); production stall and stop.
SETTINGS = {
    "MAX_SOCKETS_PER_CLIENT": "128",
    "MAX_SESSIONS_PER_CLIENT": "128",
    "MODEL_STALL_SECONDS": "60",
    "STOP_DEADLINE_SECONDS": "5",
    "LOG_LEVEL": "warning",
}
SCRIPTS = ("write_app", "long_text")
TERMINAL = ("complete", "error")


def _poll(url: str, seconds: float, results: Any) -> None:
    """In its own process: GET ``/health`` every 20 ms and, beside it, a WebSocket
    handshake every 100 ms, for ``seconds``; puts both lists (a latency or ``None`` for
    a failure each; a handshake not answered in 5 s fails) on ``results``."""
    health: list[float | None] = []
    handshakes: list[float | None] = []
    deadline = time.monotonic() + seconds

    def handshake() -> None:
        ws_url = url.replace("http://", "ws://") + "/ws/chat"
        while time.monotonic() < deadline:
            started = time.monotonic()
            try:
                with websockets.sync.client.connect(ws_url, open_timeout=5):
                    handshakes.append(time.monotonic() - started)
            except (OSError, TimeoutError, websockets.InvalidHandshake):
                handshakes.append(None)
            time.sleep(HANDSHAKE_PROBE_SECONDS)

    prober = threading.Thread(target=handshake, daemon=True)
    prober.start()
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            with urllib.request.urlopen(url + "/health", timeout=10) as response:
                response.read()
            health.append(time.monotonic() - started)
        except OSError:
            health.append(None)
        time.sleep(POLL_SECONDS)
    prober.join()
    results.put((health, handshakes))


@dataclass
class Churn:
    """What the churn saw."""

    handshakes: list[float] = field(default_factory=list)  # seconds, the answered ones
    unanswered: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # handshakes that failed otherwise
    outcomes: Counter[str] = field(default_factory=Counter)
    drops: int = 0
    health: list[float] = field(default_factory=list)
    health_failures: int = 0
    probes: list[float] = field(default_factory=list)  # the quiet process's handshakes
    probe_failures: int = 0
    cpu: dict[str, float] = field(default_factory=dict)
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        def spread(values: list[float]) -> dict[str, float]:
            return {
                "n": len(values),
                "p50": quantile(values, 0.5) * MS,
                "p99": quantile(values, 0.99) * MS,
                "max": max(values, default=0.0) * MS,
            }

        return {
            "health_ms": {**spread(self.health), "failures": self.health_failures},
            "probe_handshake_ms": {**spread(self.probes), "failures": self.probe_failures},
            "handshake_ms": {
                **spread(self.handshakes),
                "attempts": len(self.handshakes) + self.unanswered + sum(self.refused.values()),
                "unanswered": self.unanswered,
                "refused": dict(self.refused),
            },
            "turns": dict(self.outcomes),
            "drops": self.drops,
            "cpu_seconds": self.cpu,
            "load": self.load,
            "seconds": self.seconds,
        }


class Session:
    """One churning session: its socket (or none), its last seen ``seq``, its turns."""

    def __init__(self, server: LiveServer, number: int, churn: Churn, rng: random.Random) -> None:
        self.server = server
        self.session_id = f"churn-{number}"
        self.number = number
        self.churn = churn
        self.rng = rng
        self.client: ChatClient | None = None
        self.last_seq = 0
        self.opened = False
        self.turns = 0

    async def connect(self, timeout: float) -> bool:
        """A timed handshake, then ``init``; False (after a pause) when either failed."""
        started = time.perf_counter()
        try:
            self.client = await ChatClient.connect(self.server.ws_url, open_timeout=timeout)
        except TimeoutError:
            self.churn.unanswered += 1
            return False
        except OSError as exc:
            self.churn.refused[type(exc).__name__] += 1
            await asyncio.sleep(0.5)
            return False
        self.churn.handshakes.append(time.perf_counter() - started)
        fields = {"lastSeq": self.last_seq} if self.opened else {}
        ready = await self.client.init(self.session_id, **fields)
        if ready["type"] == "error":
            self.churn.outcomes[f"init {ready.get('code')}"] += 1
            await self.close()
            await asyncio.sleep(1.0)
            return False
        self.opened = True
        if ready.get("replayTruncated"):
            self.last_seq = int(ready["seq"])
        return True

    async def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            await client.close()

    def drop(self) -> None:
        """Lose the socket as a network would: no close frame."""
        if self.client is not None:
            self.client.ws.transport.abort()
            self.client = None
            self.churn.drops += 1

    async def frame(self, timeout: float) -> dict[str, Any]:
        assert self.client is not None
        got = await self.client.recv(timeout)
        if got["type"] != "ready" and isinstance(got.get("seq"), int):
            self.last_seq = max(self.last_seq, got["seq"])
        return got

    async def until_terminal(self, message_id: str, timeout: float) -> dict[str, Any] | None:
        """This turn's terminal frame, or None if none came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                got = await self.frame(left)
            except TimeoutError:
                return None
            if got["type"] in TERMINAL and got.get("clientMessageId") == message_id:
                return got
        return None

    def count(self, terminal: dict[str, Any] | None) -> None:
        if terminal is None:
            self.churn.outcomes["no terminal frame"] += 1
        elif terminal["type"] == "error":
            self.churn.outcomes[f"error {terminal.get('code')}"] += 1
        else:
            self.churn.outcomes["stopped" if terminal.get("stopped") else "completed"] += 1

    async def turn(self, handshake_timeout: float) -> None:
        assert self.client is not None
        self.turns += 1
        message_id = f"m-{self.number}-{self.turns}"
        script = self.rng.choice(SCRIPTS)
        await self.client.send(
            {
                "type": "message",
                "sessionId": self.session_id,
                "message": f"turn {self.turns} [script:{script}]",
                "clientMessageId": message_id,
            }
        )
        action = self.rng.choices(("wait", "stop", "drop"), (0.6, 0.2, 0.2))[0]
        if action != "wait":
            terminal = await self.until_terminal(message_id, self.rng.uniform(0.1, 2.0))
            if terminal is not None:
                self.count(terminal)
                return
            if action == "stop":
                await self.client.send({"type": "stop", "sessionId": self.session_id})
            else:
                self.drop()
                for _ in range(10):
                    if await self.connect(handshake_timeout):
                        break
                else:
                    self.churn.outcomes["no reconnect"] += 1
                    return
        self.count(await self.until_terminal(message_id, 60.0))

    async def run(self, deadline: float, handshake_timeout: float) -> None:
        try:
            while time.monotonic() < deadline:
                if self.client is None and not await self.connect(handshake_timeout):
                    continue
                await asyncio.sleep(self.rng.uniform(0.0, 1.0))
                await self.turn(handshake_timeout)
        except Exception as exc:  # a bench reports what broke and goes on with the rest
            self.churn.outcomes[f"client failed: {type(exc).__name__}"] += 1
        finally:
            await self.close()


def _cpu(server: LiveServer) -> dict[str, float]:
    """CPU seconds so far of the server, its live CLIs (together) and this process."""
    assert server.process is not None
    pid = server.process.pid
    clis = sum(cpu_seconds(cli) or 0.0 for cli in cli_processes(pid))
    return {
        "server": cpu_seconds(pid) or 0.0,
        "server loop waiting for a CPU": _run_queue_wait(pid),
        "clis": clis,
        "bench": time.process_time(),
    }


def _run_queue_wait(pid: int) -> float:
    """Seconds the server's main thread (its event loop) has spent runnable but waiting
    for a CPU (``/proc/<pid>/schedstat``, its second field, in ns): what other processes'
    CPU cost the loop, apart from its own work."""
    try:
        return int(Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


async def measure(
    server: LiveServer,
    sessions: int = 40,
    seconds: float = 45.0,
    seed: int = 1,
    handshake_timeout: float = 5.0,
) -> Churn:
    """Churn ``sessions`` sessions for ``seconds`` on a running server whose model plays
    ``write_app`` and ``long_text`` with no delays, polling ``/health`` from another
    process meanwhile.

    The CLIs' CPU is summed over the CLIs alive at the start and at the end (one that
    came and went in between is not seen), so it is a lower bound.
    """
    churn = Churn()
    rng = random.Random(seed)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    poller = context.Process(target=_poll, args=(server.http_url, seconds, results), daemon=True)
    poller.start()
    before = _cpu(server)
    started = time.monotonic()
    deadline = started + seconds
    members = [Session(server, n, churn, random.Random(rng.random())) for n in range(sessions)]
    await asyncio.gather(*(member.run(deadline, handshake_timeout) for member in members))
    churn.seconds = time.monotonic() - started
    after = _cpu(server)
    churn.cpu = {key: after[key] - before[key] for key in before}
    churn.load = os.getloadavg()
    health, probes = await asyncio.to_thread(results.get, True, 30)
    poller.join(5)
    churn.health = [sample for sample in health if sample is not None]
    churn.health_failures = sum(1 for sample in health if sample is None)
    churn.probes = [sample for sample in probes if sample is not None]
    churn.probe_failures = sum(1 for sample in probes if sample is None)
    return churn


def report(churn: Churn) -> None:
    found = churn.as_dict()
    health, shakes = found["health_ms"], found["handshake_ms"]
    print(
        f"/health: n={health['n']} p50 {health['p50']:.1f} ms p99 {health['p99']:.1f} ms "
        f"max {health['max']:.1f} ms, {health['failures']} failed"
    )
    probes = found["probe_handshake_ms"]
    print(
        f"handshakes from the quiet process: n={probes['n']} p50 {probes['p50']:.1f} ms "
        f"p99 {probes['p99']:.1f} ms max {probes['max']:.1f} ms, {probes['failures']} failed"
    )
    print(
        f"churn's handshakes: {shakes['attempts']} attempts, p50 {shakes['p50']:.1f} ms p99 "
        f"{shakes['p99']:.1f} ms max {shakes['max']:.1f} ms, {shakes['unanswered']} unanswered, "
        f"refused {shakes['refused']}"
    )
    turns = ", ".join(f"{key} {value}" for key, value in sorted(found["turns"].items()))
    print(f"turns: {turns}; sockets dropped {found['drops']}")
    cpu = ", ".join(f"{key} {value:.1f}" for key, value in found["cpu_seconds"].items())
    load = " ".join(f"{value:.2f}" for value in found["load"])
    print(f"CPU s over {found['seconds']:.1f} s: {cpu}; load after {load}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--handshake-timeout", type=float, default=5.0)
    parser.add_argument(
        "--data", type=Path, help="keep the server's data (and its server.log) here"
    )
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="NAME=VALUE",
        help="a setting for the server under test (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.server_env)
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"code under test: {ROOT} ({os.cpu_count()} cores), load before {load}")
    with (
        tempfile.TemporaryDirectory(prefix="bench-churn-") as tmp,
        TimedModelServer(script="write_app") as model,
        live_backend(args.data or Path(tmp), model.url, **{**SETTINGS, **overrides}) as server,
    ):
        churn = await measure(
            server, args.sessions, args.seconds, args.seed, args.handshake_timeout
        )
    report(churn)


if __name__ == "__main__":
    asyncio.run(main())
