"""What hostile clients cost everyone else: large frames, and a socket that never reads.

Against a real daphne subprocess and the scripted model with no delays:

- **large frames** (issue 9, item 6): while one client sends ``--frames`` frames of
  about 30 MiB (under ``CHAT_MAX_FRAME_BYTES``), each an ``init`` with 2.2 million empty
  ``files`` entries, another client polls ``GET /health`` every 20 ms and a third runs a
  turn that streams about 200 text events. Prints the ``/health`` latency and the gaps
  between the turn's ``stream`` frames (p50, p99, max) during the attack, and what the
  attacker got back.
- **a socket that never reads** (item 5): after a 7 MiB upload, a client that never
  reads sends 25 ``init`` frames of under 100 bytes with a ``lastSeq`` (far beyond the
  session's seq, then ``0`` after a restart emptied the replay log). Prints the growth of
  the server's resident memory, and how the socket ended.

Prints numbers; asserts nothing. Run by hand::

    .venv/bin/python bench/hostile_load.py [--frames 3] [--skip-frames] [--skip-unread]
        [--server-env NAME=VALUE ...]

With ``--server-env CHAT_MAX_FRAME_BYTES=1048576`` the application refuses the frames
by their size alone, before any parsing: what the attack then costs is daphne's own
work of receiving them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import websockets  # noqa: E402

from bench.harness import quantile  # noqa: E402
from scripted_model.server import ScriptedModelServer  # noqa: E402
from tests.support.live import ChatClient, LiveServer, server_env  # noqa: E402

ENTRIES = 2_200_000
UPLOAD_BYTES = 7 * 1024 * 1024


def describe(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"{name}: n={len(ms)} p50={quantile(ms, 0.5):.1f} ms p99={quantile(ms, 0.99):.1f} ms "
        f"max={max(ms, default=0):.1f} ms"
    )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def hostile_frame() -> str:
    entries = ",".join(f'"f{n:07d}":""' for n in range(ENTRIES))
    return '{"type":"init","sessionId":"attacker","files":{' + entries + "}}"


class HealthPoller(threading.Thread):
    """Polls /health every 20 ms on its own connection each time, like a load balancer."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.samples: list[tuple[float, float]] = []  # (start time, latency)
        self.running = True

    def run(self) -> None:
        while self.running:
            started = time.monotonic()
            with urllib.request.urlopen(self.url + "/health", timeout=30) as response:
                response.read()
            self.samples.append((started, time.monotonic() - started))
            time.sleep(0.02)

    def between(self, start: float, end: float) -> list[float]:
        return [latency for at, latency in self.samples if start <= at <= end]


async def large_frames(server: LiveServer, frames: int) -> None:
    text = hostile_frame()
    print(f"hostile frame: {len(text) / 2**20:.1f} MiB, {ENTRIES} entries")
    poller = HealthPoller(server.http_url)
    poller.start()
    await asyncio.sleep(1.0)
    quiet = poller.between(0, time.monotonic())

    turn_client = await ChatClient.connect(server.ws_url)
    await turn_client.init("bench-stream")
    attacker = await ChatClient.connect(server.ws_url, max_queue=None)
    await attacker.init("attacker")

    arrivals: list[float] = []
    attacking = True

    async def run_turns() -> None:
        """Back-to-back streaming turns for as long as the attack lasts."""
        while attacking:
            await turn_client.send(
                {"type": "message", "sessionId": "bench-stream", "message": "[script:long_text]"}
            )
            while True:
                frame = await turn_client.recv(120)
                if frame["type"] == "stream":
                    arrivals.append(time.monotonic())
                if frame["type"] in ("complete", "error"):
                    break
            arrivals.append(float("nan"))  # a turn boundary: no gap across it

    async def attack() -> list[str]:
        answers = []
        for _ in range(frames):
            await attacker.send_raw(text)
        for _ in range(frames):
            frame = await attacker.recv(300)
            answers.append(frame.get("code") or frame["type"])
        return answers

    turns = asyncio.create_task(run_turns())
    await asyncio.sleep(1.0)
    start = time.monotonic()
    answers = await attack()
    end = time.monotonic()
    attacking = False
    await turns
    poller.running = False
    poller.join()
    gaps = [
        b - a
        for a, b in zip(arrivals, arrivals[1:], strict=False)
        if a == a and b == b and start <= b <= end
    ]
    print(f"attacker sent {frames} frames, got {answers} in {end - start:.2f} s")
    print(describe("/health before the attack", quiet))
    print(describe("/health during the attack", poller.between(start, end)))
    print(describe("stream gaps during the attack", gaps))
    await attacker.close()
    await turn_client.close()


async def unread_socket(server: LiveServer, session: str, last_seq: int) -> None:
    """25 small inits on a socket that never reads; RSS growth and how it ended."""
    assert server.process is not None
    pid = server.process.pid
    baseline = rss_mib(pid)
    # max_queue=1: the client stops reading from TCP once one frame waits, as a script
    # that never calls recv would.
    ws = await websockets.connect(server.ws_url, max_size=None, max_queue=1)
    frame = json.dumps({"type": "init", "sessionId": session, "lastSeq": last_seq})
    sent = 0
    try:
        for _ in range(25):
            await ws.send(frame)
            sent += 1
            await asyncio.sleep(0.1)
    except websockets.ConnectionClosed:
        pass
    await asyncio.sleep(3.0)
    peak = rss_mib(pid)
    ended = "still open"
    try:
        async with asyncio.timeout(10):
            while True:
                await ws.recv()
    except websockets.ConnectionClosed as exc:
        ended = f"closed by the server, code {exc.rcvd.code if exc.rcvd else 'none (dropped)'}"
    except TimeoutError:
        ended = "still open after reading everything"
    print(
        f"  lastSeq={last_seq} ({len(frame)}-byte frames, {sent} sent): RSS {baseline:.0f} -> "
        f"{peak:.0f} MiB (+{peak - baseline:.0f} MiB); socket {ended}"
    )
    await ws.close()


async def upload(server: LiveServer, session: str) -> int:
    client = await ChatClient.connect(server.ws_url)
    half = UPLOAD_BYTES // 2
    files = {"data/a.csv": "x" * half, "data/b.csv": "y" * half}
    await client.init(session, files=files)
    frames = await client.message(session, "hello")  # events, so that seq > 0
    await client.close()
    return int(frames[-1]["seq"])


async def unread(server: LiveServer) -> None:
    print("a socket that never reads, after a 7 MiB upload:")
    seq = await upload(server, "bench-unread")
    await unread_socket(server, "bench-unread", seq + 1_000_000)
    server.restart()  # the replay log is empty now: any lastSeq below seq is truncated
    await unread_socket(server, "bench-unread", 0)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--skip-frames", action="store_true")
    parser.add_argument("--skip-unread", action="store_true")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the server under test (repeatable), e.g. CHAT_MAX_FRAME_BYTES=1048576",
    )
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.server_env)
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as tmp:
        data = Path(tmp)
        with ScriptedModelServer(script="echo") as model:
            env = server_env(data, model.url, LOG_LEVEL="warning", **overrides)
            with LiveServer(data=data, env=env) as server:
                python = sys.version.split()[0]
                print(f"code under test: {ROOT} (python {python}, {os.cpu_count()} cores)")
                if not args.skip_frames:
                    await large_frames(server, args.frames)
                if not args.skip_unread:
                    await unread(server)


if __name__ == "__main__":
    asyncio.run(main())
