"""What a live, idle CLI's memory is made of, and what a turn on it costs, on this tree.

One daphne server of this tree (``tests.support.live.LiveServer``), the scripted model
(``write_app``, no delays) in this process, ``AGENT_PREWARM=0`` so that a session's
first message starts its CLI and the time to the model's first request is the CLI's
start plus its first prompt. ``--sessions`` sessions are opened one after the other,
each runs one turn and keeps its socket (so its CLI stays, idle, beside the others:
their shared pages are shared, as on a busy server). Once the last CLI is 11 s old,
every session runs ``--turns`` warm turns in turn, then one turn of 3,000 tiny text
deltas each (``flood``: the CLI's own JavaScript at work). The CLI's CPU time
(``utime + stime``, less sensitive to other load on the machine than wall time) is
taken for its start and first turn, per warm turn and for the flood turn. Then, for
each CLI, ``/proc/<pid>/smaps_rollup`` (RSS and PSS, split into anonymous and
file-backed, private and shared) and, summed over the CLIs, ``/proc/<pid>/smaps`` by
mapping (the binary, anonymous mappings, the rest).

``--rounds`` servers are started one after the other, for more samples. To compare
a change, run it in a clean clone of each commit (``git clone . /tmp/b``), one after
the other. Prints the numbers; asserts nothing::

    .venv/bin/python bench/cli_memory.py [--sessions 4] [--turns 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.harness import TimedModelServer  # noqa: E402
from bench.proc_stats import KIB, PROC, cpu_seconds  # noqa: E402
from tests.support.live import ChatClient, LiveServer, claude_processes, server_env  # noqa: E402

FILES = {"data/sales.csv": "month,revenue\nJan,10\nFeb,20\n"}
SCRIPT = "write_app"
SCRIPT_MESSAGE = f"[script:{SCRIPT}]"
#: A turn of many tiny deltas, where the CLI's own JavaScript does most of the work.
FLOOD_DELTAS = 3000
SETTLE_SECONDS = 2.0
#: The CLI sets its JIT back to the normal policy 10 s after it starts (before that, code
#: tiers up later): the warm turns run on CLIs older than that, as on a live server.
AGE_SECONDS = 11.0
#: Other benches share this machine: a server may take longer than the tests' 20 s to start.
START_TIMEOUT = 90.0
MIB = 1024 * 1024
ROLLUP_FIELDS = (
    "Rss",
    "Pss",
    "Pss_Anon",
    "Pss_File",
    "Shared_Clean",
    "Shared_Dirty",
    "Private_Clean",
    "Private_Dirty",
    "Anonymous",
)
MAPPING_HEADER = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


@dataclass
class Run:
    label: str
    cold_first_request: list[float] = field(default_factory=list)
    cold_complete: list[float] = field(default_factory=list)
    warm_first_stream: list[float] = field(default_factory=list)
    warm_first_request: list[float] = field(default_factory=list)
    warm_complete: list[float] = field(default_factory=list)
    start_cpu: list[float] = field(default_factory=list)
    warm_cpu: list[float] = field(default_factory=list)
    flood_complete: list[float] = field(default_factory=list)
    flood_cpu: list[float] = field(default_factory=list)
    rollups: list[dict[str, int]] = field(default_factory=list)
    by_mapping: dict[str, dict[str, int]] = field(default_factory=dict)


def rollup(pid: int) -> dict[str, int] | None:
    """The ``smaps_rollup`` fields of ``pid`` in bytes; None once it is gone."""
    try:
        lines = (PROC / str(pid) / "smaps_rollup").read_text().splitlines()
    except OSError:
        return None
    found = {}
    for line in lines[1:]:
        name, _, rest = line.partition(":")
        if name in ROLLUP_FIELDS:
            found[name] = int(rest.split()[0]) * KIB
    return found


def mapping_kind(header: str, binary: str) -> str:
    """What a mapping of ``/proc/<pid>/smaps`` is: the CLI binary, a library, heap, anon."""
    parts = header.split(maxsplit=5)
    path = parts[5].strip() if len(parts) > 5 else ""
    perms = parts[1]
    if path == binary:
        return f"binary {perms}"
    if path.startswith("["):
        return path
    if path:
        return "other files"
    return "anonymous"


def smaps_by_mapping(pid: int, into: dict[str, dict[str, int]]) -> None:
    """Adds the RSS, PSS and private bytes of each kind of mapping of ``pid`` to ``into``."""
    try:
        binary = str((PROC / str(pid) / "exe").readlink())
        text = (PROC / str(pid) / "smaps").read_text()
    except OSError:
        return
    kind = ""
    for line in text.splitlines():
        if MAPPING_HEADER.match(line):
            kind = mapping_kind(line, binary)
            into.setdefault(kind, defaultdict(int))["mappings"] += 1
            continue
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss", "Private_Clean", "Private_Dirty"):
            into[kind][name] += int(rest.split()[0]) * KIB


async def timed_turn(
    client: ChatClient,
    session_id: str,
    model: TimedModelServer,
    message: str = f"[script:{SCRIPT}]",
) -> tuple[float, float, float]:
    """Seconds from sending a message to its first ``stream``, first model request, ``complete``."""
    started = time.perf_counter()
    await client.send({"type": "message", "sessionId": session_id, "message": message})
    first_stream = None
    while True:
        frame = await client.recv(timeout=120)
        if frame["type"] == "stream" and first_stream is None:
            first_stream = time.perf_counter() - started
        if frame["type"] in ("complete", "error"):
            break
    if frame["type"] != "complete":
        raise RuntimeError(f"turn of {session_id} ended with {frame}")
    complete = time.perf_counter() - started
    arrivals = model.arrivals_since(started)
    return first_stream or complete, arrivals[0] - started, complete


def the_cli(session_id: str) -> int:
    found = claude_processes(session_id)
    if len(found) != 1:
        raise RuntimeError(f"session {session_id}: CLIs {found}, not one")
    return found[0]


async def measure(
    server: LiveServer, model: TimedModelServer, run: Run, sessions: int, turns: int
) -> None:
    clients: list[tuple[str, ChatClient]] = []
    try:
        for number in range(sessions):
            session_id = f"mem-{run.label}-{time.monotonic_ns()}-{number}"
            client = await ChatClient.connect(server.ws_url)
            clients.append((session_id, client))
            ready = await client.init(session_id, files=FILES)
            if ready["type"] != "ready":
                raise RuntimeError(f"init of {session_id} answered {ready}")
            _, first_request, complete = await timed_turn(client, session_id, model)
            run.cold_first_request.append(first_request)
            run.cold_complete.append(complete)
            run.start_cpu.append(cpu_seconds(the_cli(session_id)) or 0.0)
        await asyncio.sleep(AGE_SECONDS)
        cpu_before = {
            session_id: cpu_seconds(the_cli(session_id)) or 0.0 for session_id, _ in clients
        }
        for _ in range(turns):
            for session_id, client in clients:
                first_stream, first_request, complete = await timed_turn(client, session_id, model)
                run.warm_first_stream.append(first_stream)
                run.warm_first_request.append(first_request)
                run.warm_complete.append(complete)
        for session_id, _ in clients:
            spent = (cpu_seconds(the_cli(session_id)) or 0.0) - cpu_before[session_id]
            run.warm_cpu.append(spent / max(turns, 1))
        for session_id, client in clients:
            before = cpu_seconds(the_cli(session_id)) or 0.0
            message = f"[script:flood] flood=F deltas={FLOOD_DELTAS}"
            _, _, complete = await timed_turn(client, session_id, model, message)
            run.flood_complete.append(complete)
            run.flood_cpu.append((cpu_seconds(the_cli(session_id)) or 0.0) - before)
        await asyncio.sleep(SETTLE_SECONDS)
        for session_id, _ in clients:
            pid = the_cli(session_id)
            found = rollup(pid)
            if found is not None:
                run.rollups.append(found)
            smaps_by_mapping(pid, run.by_mapping)
    finally:
        for _, client in clients:
            await client.close()


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:5.0f}" if values else "    -"


def report(runs: list[Run]) -> None:
    rollups = [r for run in runs for r in run.rollups]
    print(f"\n{len(runs)} round(s), {len(rollups)} CLIs")
    print("  per CLI after its turns, median MiB (smaps_rollup):")
    print("   " + "  ".join(f"{name} {statistics.median([r[name] for r in rollups]) / MIB:.1f}"
                            for name in ROLLUP_FIELDS))  # fmt: skip
    merged: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for run in runs:
        for kind, sums in run.by_mapping.items():
            for name, value in sums.items():
                merged[kind][name] += value
    print("  by mapping, mean per CLI MiB: RSS / PSS / private (clean+dirty) [mappings]")
    for kind, sums in sorted(merged.items(), key=lambda item: -item[1]["Pss"]):
        per = len(rollups) or 1
        private = sums["Private_Clean"] + sums["Private_Dirty"]
        print(
            f"   {kind:<22} {sums['Rss'] / per / MIB:7.1f} {sums['Pss'] / per / MIB:7.1f}"
            f" {private / per / MIB:7.1f}  [{sums['mappings'] // per}]"
        )

    def series(name: str) -> list[float]:
        return [value for run in runs for value in getattr(run, name)]

    print(
        "  p50 ms: cold first model request"
        f" {ms(series('cold_first_request'))}, cold complete {ms(series('cold_complete'))};"
        f" warm first stream {ms(series('warm_first_stream'))}, warm first model request"
        f" {ms(series('warm_first_request'))}, warm complete {ms(series('warm_complete'))}"
        f" (n={len(series('warm_complete'))}); flood ({FLOOD_DELTAS} deltas) complete"
        f" {ms(series('flood_complete'))}"
    )
    print(
        "  CLI CPU ms p50: start and first turn"
        f" {ms(series('start_cpu'))}, warm turn {ms(series('warm_cpu'))},"
        f" flood turn {ms(series('flood_cpu'))}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--turns", type=int, default=3, help="warm turns per session")
    parser.add_argument("--rounds", type=int, default=2, help="servers, one after the other")
    args = parser.parse_args()
    print(f"load before: {Path('/proc/loadavg').read_text().strip()}")
    runs: list[Run] = []
    with (
        tempfile.TemporaryDirectory(prefix="cli-memory-") as scratch,
        TimedModelServer(script=SCRIPT) as model,
    ):
        for round_number in range(args.rounds):
            run = Run(label=f"r{round_number}")
            data = Path(scratch) / run.label
            data.mkdir(parents=True)
            env = server_env(
                data,
                model.url,
                AGENT_PREWARM="0",
                CLAUDE_MAX_BUDGET_USD="0",
                MODEL_STALL_SECONDS="60",
            )
            server = LiveServer(data=data, env=env)
            server.start(timeout=START_TIMEOUT)
            try:
                asyncio.run(measure(server, model, run, args.sessions, args.turns))
            finally:
                server.stop()
            runs.append(run)
    report(runs)
    print(f"\nload after: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
