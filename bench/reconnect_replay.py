"""Reconnect with replay: how long a reconnect takes, and what the replay buffer costs.

On the scripted model with no delays, against a real daphne subprocess:

- **reconnect latency**: a session runs a turn with ``N`` events; a new socket then
  sends ``init`` with ``lastSeq`` at the start of that turn. Timed from the
  ``init`` send to the ``ready`` frame and to the last replayed event, over
  ``--rounds`` reconnects, for a short turn (``write_app``) and a long one
  (``long_text``, about 200 text events).
- **buffer memory**: the frames of those real turns are appended to an
  :class:`chat.session.event_log.EventLog` until it holds the configured maximum
  (``REPLAY_BUFFER_EVENTS`` / ``REPLAY_BUFFER_BYTES`` defaults); ``tracemalloc``
  measures the Python memory the full log holds.

Prints medians and p95; asserts nothing. Run by hand::

    .venv/bin/python bench/reconnect_replay.py [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard_ai.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from bench.harness import p95  # noqa: E402
from chat.session.event_log import EventLog  # noqa: E402
from scripted_model.server import ScriptedModelServer  # noqa: E402
from tests.support.live import ChatClient, LiveServer, server_env  # noqa: E402


async def reconnects(server: LiveServer, script: str, rounds: int) -> tuple[list, list, int]:
    """Times to ``ready`` and to the last replayed event, and the events replayed."""
    to_ready, to_caught_up, events = [], [], 0
    for number in range(rounds):
        session = f"bench-{script}-{number}"
        first = await ChatClient.connect(server.ws_url)
        ready = await first.init(session)
        frames = await first.message(session, f"[script:{script}]")
        await first.close()
        events = len(frames)
        again = await ChatClient.connect(server.ws_url)
        started = time.perf_counter()
        await again.send({"type": "init", "sessionId": session, "lastSeq": ready["seq"]})
        await again.recv()
        to_ready.append(time.perf_counter() - started)
        for _ in range(events):
            await again.recv()
        to_caught_up.append(time.perf_counter() - started)
        await again.close()
    return to_ready, to_caught_up, events


def buffer_memory(frames: list[dict]) -> tuple[int, int, int]:
    """Events held, their JSON bytes, and the Python memory of a full default-size log."""
    log = EventLog(max_events=settings.REPLAY_BUFFER_EVENTS, max_bytes=settings.REPLAY_BUFFER_BYTES)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    seq = 0
    while len(log) < settings.REPLAY_BUFFER_EVENTS and seq < 10 * settings.REPLAY_BUFFER_EVENTS:
        for frame in frames:
            seq += 1
            log.append({**frame, "seq": seq})
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    used = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    return len(log), log.size_bytes, used


async def main(rounds: int) -> None:
    with ScriptedModelServer(script="echo") as model, tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        with LiveServer(data=data, env=server_env(data, model.url)) as server:
            results = {}
            for script in ("write_app", "long_text"):
                results[script] = await reconnects(server, script, rounds)
            sample = await ChatClient.connect(server.ws_url)
            await sample.init("bench-sample")
            frames = await sample.message("bench-sample", "[script:write_app]")
            await sample.close()

    print(f"Reconnect with lastSeq, ms (median p95) over {rounds} reconnects each")
    for script, (to_ready, to_caught_up, events) in results.items():
        ready_ms = [v * 1000 for v in to_ready]
        caught_ms = [v * 1000 for v in to_caught_up]
        print(
            f"  {script:<10} {events:>4} events replayed:"
            f"  ready {statistics.median(ready_ms):6.1f} {p95(ready_ms):6.1f}"
            f"   caught up {statistics.median(caught_ms):6.1f} {p95(caught_ms):6.1f}"
        )
    held, json_bytes, python_bytes = buffer_memory(frames)
    print(
        f"Replay buffer at its caps (REPLAY_BUFFER_EVENTS={settings.REPLAY_BUFFER_EVENTS},"
        f" REPLAY_BUFFER_BYTES={settings.REPLAY_BUFFER_BYTES}), filled with write_app frames:"
    )
    print(
        f"  {held} events, {json_bytes / 1024:.0f} KiB as JSON,"
        f" {python_bytes / 1024:.0f} KiB of Python memory per session"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    asyncio.run(main(parser.parse_args().rounds))
