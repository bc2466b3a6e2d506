"""Server memory per idle session: 1,000 sessions opened, none of them with a CLI.

One daphne server of this tree (:func:`bench.harness.live_backend`) with the session
limits raised, ``AGENT_PREWARM=false`` (so no CLI starts: an idle session is to cost
the server, not a CLI) and the scripted model behind it (no turn is run). Sessions are
opened by ``init`` with one small file each (``--no-files``: none), 50 at a time:

- **sockets kept** (always): each socket stays open, as a browser tab left open does:
  the session's runner, event stream and log, plus the consumer and daphne's protocol
  objects of its socket;
- **sockets closed** (``--closed``, a batch before): each socket is closed after its
  ``ready``; the session stays live on the server until ``AGENT_IDLE_SECONDS``.

The daphne process's RSS, PSS and private part (``/proc/<pid>/smaps_rollup``,
:mod:`bench.proc_stats`) are read after a warm-up of a few sessions (so that what
the first ``init`` loads once is not counted per session), then after each batch;
a batch's growth divided by its sessions is its cost per idle session. RSS is the
figure to read: PSS and the private part also move when the process's pages come
to be shared or unshared with another process (a fork of daphne, another server on
the same libraries), by megabytes either way. Python rarely gives freed memory
back, so a batch's growth is what the server keeps for it, not a peak. Prints the
numbers, with the wall time and the server's CPU per ``init``; asserts nothing. Run
by hand::

    .venv/bin/python bench/idle_memory.py [--sessions N] [--closed] [--no-files] [--json]

:func:`measure` is what a suite calls.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import live_backend  # noqa: E402
from bench.proc_stats import Memory, cpu_seconds, memory  # noqa: E402
from scripted_model.server import ScriptedModelServer  # noqa: E402
from tests.support.live import ChatClient, LiveServer  # noqa: E402

FILES = {"data/sales.csv": "month,revenue\nJan,10\nFeb,20\n"}
AT_ONCE = 50
WARM_UP_SESSIONS = 20
SETTLE_SECONDS = 1.0
MIB = 1024 * 1024


def settings_for(sessions: int) -> dict[str, str]:
    """The server's environment: room for every session of both batches, no CLI."""
    room = str(2 * sessions + WARM_UP_SESSIONS + AT_ONCE)
    return {
        "MAX_SESSIONS": room,
        "MAX_SESSIONS_PER_CLIENT": room,
        "MAX_SOCKETS_PER_CLIENT": room,
        "AGENT_PREWARM": "false",
        "AGENT_IDLE_SECONDS": "300",  # longer than the run: closed sessions stay live
        "LOG_LEVEL": "warning",
    }


async def open_session(
    server: LiveServer, session_id: str, *, keep: bool, files: bool
) -> ChatClient | None:
    """Open ``session_id`` (with one file if ``files``); its socket if ``keep``, else None."""
    client = await ChatClient.connect(server.ws_url)
    ready = await client.init(session_id, files=FILES if files else {})
    if ready["type"] != "ready":
        await client.close()
        raise RuntimeError(f"init of {session_id} answered {ready}")
    if keep:
        return client
    await client.close()
    return None


async def open_sessions(
    server: LiveServer, prefix: str, count: int, *, keep: bool, files: bool
) -> tuple[list[ChatClient], float]:
    """``count`` sessions opened ``AT_ONCE`` at a time: the kept sockets and the seconds."""
    kept: list[ChatClient] = []
    start = time.perf_counter()
    for first in range(0, count, AT_ONCE):
        batch = range(first, min(first + AT_ONCE, count))
        opened = await asyncio.gather(
            *(open_session(server, f"{prefix}-{n}", keep=keep, files=files) for n in batch)
        )
        kept.extend(client for client in opened if client is not None)
    return kept, time.perf_counter() - start


async def settled(server: LiveServer) -> tuple[Memory, float]:
    """The daphne process's memory and CPU seconds once the last batch's work has ended."""
    await asyncio.sleep(SETTLE_SECONDS)
    assert server.process is not None
    found, cpu = memory(server.process.pid), cpu_seconds(server.process.pid)
    if found is None or cpu is None:
        raise RuntimeError("the server is gone")
    return found, cpu


def parts(found: Memory) -> dict[str, int | None]:
    """RSS, PSS and the private part in bytes (None where the kernel did not say)."""
    return {"rss": found.rss, "pss": found.pss, "private": found.private}


def mib(found: Memory) -> dict[str, float | None]:
    """:func:`parts` in MiB."""
    return {k: None if v is None else round(v / MIB, 1) for k, v in parts(found).items()}


def growth(
    before: tuple[Memory, float], after: tuple[Memory, float], sessions: int, seconds: float
) -> dict[str, Any]:
    """What a batch added: MiB in all, KiB per session, and the server's CPU per init."""
    was, now = parts(before[0]), parts(after[0])
    added = {
        kind: None if was[kind] is None or now[kind] is None else now[kind] - was[kind]
        for kind in was
    }
    return {
        "sessions": sessions,
        "addedMiB": {k: None if v is None else round(v / MIB, 1) for k, v in added.items()},
        "perSessionKiB": {
            k: None if v is None else round(v / 1024 / sessions, 1) for k, v in added.items()
        },
        "seconds": round(seconds, 1),
        "serverCpuMsPerInit": round((after[1] - before[1]) * 1000 / sessions, 1),
    }


async def measure(
    data: Path, model_url: str, sessions: int = 1000, *, closed: bool = False, files: bool = True
) -> dict[str, Any]:
    """Open ``sessions`` idle sessions whose sockets stay open (and, with ``closed``,
    first as many whose sockets close after ``ready``) on a server of its own under
    ``data``: the daphne process's memory before and after, and per session.

    An ``init`` with its one file costs the server about 35 to 47 ms of CPU (storing
    the file: rows and commits), one without (``files=False``) about 20 ms, so 1,000
    sessions take at least 40 s, or 20 s, of one core; what an idle session holds in
    memory is the same either way (the file is on disk and in the database)."""
    run_id = uuid.uuid4().hex[:8]
    result: dict[str, Any] = {"sessions": sessions, "oneFileEach": files}
    opening = functools.partial(open_sessions, files=files)
    with live_backend(data, model_url, **settings_for(sessions)) as server:
        await opening(server, f"idle-warm-{run_id}", WARM_UP_SESSIONS, keep=False)
        before = await settled(server)
        result["before"] = mib(before[0])
        if closed:
            _, seconds = await opening(server, f"idle-closed-{run_id}", sessions, keep=False)
            after = await settled(server)
            result["socketsClosed"] = growth(before, after, sessions, seconds)
            before = after
        kept, seconds = await opening(server, f"idle-kept-{run_id}", sessions, keep=True)
        after = await settled(server)
        result["socketsKept"] = growth(before, after, sessions, seconds)
        result["after"] = mib(after[0])
        result["activeSessionsAtTheEnd"] = server.get_json("/health")["activeSessions"]
        await asyncio.gather(*(client.close() for client in kept))
    return result


def report(result: dict[str, Any]) -> None:
    def amounts(values: dict[str, float | None], unit: str) -> str:
        return ", ".join(f"{kind} {'-' if v is None else v} {unit}" for kind, v in values.items())

    files = "one file each" if result["oneFileEach"] else "no file"
    print(f"{result['sessions']} idle sessions a batch, {files}, no CLI (AGENT_PREWARM=false)")
    print(f"daphne before: {amounts(result['before'], 'MiB')}")
    for key, name in (
        ("socketsClosed", "sockets closed after ready"),
        ("socketsKept", "sockets kept open"),
    ):
        if key in result:
            row = result[key]
            print(
                f"{name}: +{amounts(row['addedMiB'], 'MiB')}; per session"
                f" {amounts(row['perSessionKiB'], 'KiB')}; opened in {row['seconds']} s,"
                f" server CPU {row['serverCpuMsPerInit']} ms an init"
            )
    print(
        f"daphne after: {amounts(result['after'], 'MiB')};"
        f" {result['activeSessionsAtTheEnd']} sessions live"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=1000, help="sessions per batch")
    parser.add_argument(
        "--closed", action="store_true", help="first a batch whose sockets close after ready"
    )
    parser.add_argument("--no-files", action="store_true", help="init without a file (faster)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON too")
    args = parser.parse_args()
    began = time.perf_counter()
    with (
        ScriptedModelServer(script="echo") as model,
        tempfile.TemporaryDirectory(prefix="bench-idle-", ignore_cleanup_errors=True) as tmp,
    ):
        result = asyncio.run(
            measure(
                Path(tmp), model.url, args.sessions, closed=args.closed, files=not args.no_files
            )
        )
    report(result)
    if args.json:
        print(json.dumps(result, indent=2))
    print(f"wall time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
