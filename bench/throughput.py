"""Throughput of one server: how many ``stream`` events a second it forwards, and how late.

Offline, against a real daphne subprocess of this tree and the scripted model playing
``flood`` (one text of many tiny deltas, written with no delay; each delta's text is
``TAG:NNNNNN `` so that it can be found again in the frames), with 1, 5 and 10 sessions
flooding at once. Each session first has a warm-up turn, so its CLI is up; then all of
them send their flood turn together.

Per round it prints: ``stream`` frames per second received by all the clients (from
the first delta the model wrote to the last frame received), deltas per frame (more than
1 when something merged deltas), the latency of each delta from the moment the model
wrote it to the moment a client read the frame that held it (p50, p95, max), and the
CPU seconds the server, its CLIs and this bench process (the model and the clients)
used during the flood, which says who saturates first.

Prints numbers; asserts nothing. Run by hand::

    .venv/bin/python bench/throughput.py [--sessions 1,5,10] [--deltas 2000] [--rounds 2]
        [--delays 0,2] [--server-env NAME=VALUE ...]

``--delays`` paces the model (ms before each delta, per session): a flood with no delay
measures how much gets through, a paced one the latency at that rate.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import TimedModelServer, live_backend, quantile  # noqa: E402
from bench.proc_stats import cli_processes, cpu_seconds  # noqa: E402
from tests.support.live import ChatClient, LiveServer  # noqa: E402

MS = 1000.0
_TOKEN_RE = re.compile(r"(\w+:\d{6}) ")
#: Every socket comes from 127.0.0.1, so the per-address limits are raised; a stall
#: clock as in production (the test servers' 4 s is short for CLIs starting together).
SETTINGS = {
    "MAX_SOCKETS_PER_CLIENT": "64",
    "MAX_SESSIONS_PER_CLIENT": "64",
    "MODEL_STALL_SECONDS": "60",
    "STOP_DEADLINE_SECONDS": "5",
    "LOG_LEVEL": "warning",
}


@dataclass
class Round:
    """One flood of ``sessions`` sessions at once."""

    sessions: int
    deltas: int
    delay: float = 0.0
    frames: int = 0
    tokens: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, one per delta received
    errors: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # seconds during the flood

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def deltas_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "deltas": self.deltas,
            "delay_seconds": self.delay,
            "frames": self.frames,
            "tokens": self.tokens,
            "seconds": self.seconds,
            "frames_per_second": self.frames_per_second,
            "deltas_per_second": self.deltas_per_second,
            "latency_ms": {
                "p50": quantile(self.latencies, 0.5) * MS,
                "p95": quantile(self.latencies, 0.95) * MS,
                "max": max(self.latencies, default=0.0) * MS,
            },
            "errors": self.errors,
            "cpu_seconds": self.cpu,
        }


def _cpu(server: LiveServer) -> dict[str, float]:
    """CPU seconds so far of the server, of its live CLIs (together) and of this process."""
    assert server.process is not None
    pid = server.process.pid
    clis = sum(cpu_seconds(cli) or 0.0 for cli in cli_processes(pid))
    return {"server": cpu_seconds(pid) or 0.0, "clis": clis, "bench": time.process_time()}


async def _flood(
    client: ChatClient, session_id: str, tag: str, deltas: int
) -> tuple[list[tuple[float, str]], str | None]:
    """Run one flood turn; every ``stream`` frame's receive time and text, and any error code."""
    prompt = f"[script:flood] flood={tag} deltas={deltas}"
    await client.send({"type": "message", "sessionId": session_id, "message": prompt})
    received: list[tuple[float, str]] = []
    while True:
        frame = await client.recv(120)
        if frame["type"] == "stream":
            received.append((time.perf_counter(), frame["text"]))
        elif frame["type"] == "complete":
            return received, None
        elif frame["type"] == "error":
            return received, str(frame.get("code"))


Pair = tuple[ChatClient, str]


async def warm_sessions(server: LiveServer, name: str, count: int, result: Round) -> list[Pair]:
    """``count`` sessions opened and each warmed up by one small flood (its CLI started);
    refusals and errors go to ``result.errors``."""
    clients = [await ChatClient.connect(server.ws_url) for _ in range(count)]
    pairs = [(client, f"{name}-{n}") for n, client in enumerate(clients)]
    for client, session_id in pairs:
        ready = await client.init(session_id)
        if ready["type"] == "error":
            result.errors.append(str(ready.get("code")))
    warm = await asyncio.gather(
        *(_flood(c, s, f"w{n}{name}", 10) for n, (c, s) in enumerate(pairs))
    )
    result.errors += [code for _, code in warm if code]
    return pairs


async def flood(
    server: LiveServer, model: TimedModelServer, pairs: list[Pair], result: Round, name: str
) -> Round:
    """Every session of ``pairs`` floods ``result.deltas`` deltas at once, the model pausing
    ``result.delay`` seconds before each; frames, latencies, CPU and errors into ``result``.

    ``name`` (letters, digits and ``_`` only) makes the deltas' tags unique in the run."""
    model.delta_times.clear()
    model.chunk_delay = result.delay
    before = _cpu(server)
    started = time.perf_counter()
    tags = [f"{name}s{n}" for n in range(len(pairs))]
    try:
        floods = await asyncio.gather(
            *(_flood(c, s, t, result.deltas) for (c, s), t in zip(pairs, tags, strict=True))
        )
    finally:
        model.chunk_delay = 0.0
    after = _cpu(server)
    result.cpu = {key: after[key] - before[key] for key in before}
    sent = dict(model.delta_times)
    first_sent = min(sent.values(), default=started)
    last_received = started
    for received, code in floods:
        if code:
            result.errors.append(code)
        for at, text in received:
            result.frames += 1
            last_received = max(last_received, at)
            for token in _TOKEN_RE.findall(text):
                result.tokens += 1
                written = sent.get(token + " ")
                if written is not None:
                    result.latencies.append(at - written)
    result.seconds = last_received - first_sent
    return result


async def flood_round(
    server: LiveServer,
    model: TimedModelServer,
    sessions: int,
    deltas: int,
    name: str,
    delay: float = 0.0,
) -> Round:
    """``sessions`` new sessions, each warmed up by one small flood, then flooding together,
    the model pausing ``delay`` seconds before each delta (0: a flood as fast as it goes)."""
    result = Round(sessions=sessions, deltas=deltas, delay=delay)
    model.chunk_delay = 0.0
    pairs: list[Pair] = []
    try:
        pairs = await warm_sessions(server, name, sessions, result)
        await flood(server, model, pairs, result, name)
    finally:
        for client, _ in pairs:
            await client.close()
    return result


def describe(found: Round) -> str:
    ms = [v * MS for v in found.latencies]
    cpu = ", ".join(f"{key} {value:.2f}" for key, value in found.cpu.items())
    errors = f"; errors {found.errors}" if found.errors else ""
    paced = f" {found.delay * MS:g} ms apart" if found.delay else ""
    return (
        f"{found.sessions:>2} sessions x {found.deltas} deltas{paced}: {found.frames} frames in "
        f"{found.seconds:.2f} s = {found.frames_per_second:.0f} frames/s "
        f"({found.tokens / max(1, found.frames):.2f} deltas a frame); latency p50 "
        f"{quantile(ms, 0.5):.1f} p95 {quantile(ms, 0.95):.1f} max {max(ms, default=0):.1f} ms; "
        f"CPU s: {cpu}{errors}"
    )


async def measure(
    server: LiveServer,
    model: TimedModelServer,
    sessions: tuple[int, ...] = (1, 5, 10),
    deltas: int = 2000,
    rounds: int = 1,
    delays: tuple[float, ...] = (0.0,),
    verbose: bool = False,
) -> list[Round]:
    """Flood rounds on a running server whose model is ``model`` (``time_deltas=True``,
    any default script): each session count at each pause between deltas (seconds),
    ``rounds`` times, interleaved."""
    results: list[Round] = []
    for number in range(rounds):
        for count in sessions:
            for pause in delays:
                name = f"t{number}n{count}d{round(pause * 1e6)}"
                found = await flood_round(server, model, count, deltas, name, pause)
                results.append(found)
                if verbose:
                    print(describe(found), flush=True)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,5,10", help="session counts, comma-separated")
    parser.add_argument("--deltas", type=int, default=2000, help="deltas per flood turn")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--delays", default="0", help="ms the model pauses before each delta, comma-separated"
    )
    parser.add_argument(
        "--server-env", action="append", default=[], metavar="NAME=VALUE",
        help="a setting for the server under test (repeatable)",
    )  # fmt: skip
    args = parser.parse_args()
    sessions = tuple(int(part) for part in args.sessions.split(","))
    delays = tuple(float(part) / MS for part in args.delays.split(","))
    overrides = dict(item.split("=", 1) for item in args.server_env)
    print(f"code under test: {ROOT} ({os.cpu_count()} cores), load {os.getloadavg()}")
    with (
        tempfile.TemporaryDirectory(prefix="bench-throughput-") as tmp,
        TimedModelServer(script="echo", time_deltas=True) as model,
        live_backend(Path(tmp), model.url, **{**SETTINGS, **overrides}) as server,
    ):
        await measure(server, model, sessions, args.deltas, args.rounds, delays, verbose=True)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
