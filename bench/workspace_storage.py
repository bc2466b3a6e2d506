"""What keeping workspaces in the database adds to a turn: statements, rows and time.

In-process, on a throwaway database (SQLite by default, or ``--database-url``) and a
temporary ``WORKSPACE_ROOT``: for workspaces of several sizes, it syncs the files in,
then plays ``--turns`` turns the way the session runner does them, minus the agent:
``snapshot_for_turn`` (``ensure_current(expect_writes=True)`` and the snapshot before:
"current+before"), ``save_state``, one file
rewritten on disk (what the agent's ``Write`` does), the snapshot after and
``record_current``. Each step is timed, the snapshots too; "turn total" is their sum,
what the workspace adds to a turn. Statements are counted on the ORM's thread, rows
from the tables. It prints medians per turn; it never asserts. Run it by hand::

    .venv/bin/python bench/workspace_storage.py [--turns N] [--database-url URL]
        [--sizes 1,500,5000] [--file-bytes 2048]

``--sizes 1,500 --file-bytes 40960`` is the issue's 20 MB / 500-file workspace beside a
one-file one.
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
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SIZES = (5, 50, 500)  # files in the workspace, unless --sizes
FILE_BYTES = 2048  # unless --file-bytes
MS = 1000.0


class Statements:
    """Counts the statements the ORM's connection runs, by their first word."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def __call__(self, execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        self.counts[sql.lstrip().split(None, 1)[0].upper()] += 1
        return execute(sql, *args)

    def take(self) -> Counter[str]:
        counts, self.counts = self.counts, Counter()
        return counts


async def bench(turns: int, sizes: tuple[int, ...], file_bytes: int) -> None:
    from asgiref.sync import sync_to_async
    from django.db import connection

    from workspaces import services, undo_states
    from workspaces.models import Blob, ManifestEntry, UndoState

    statements = Statements()

    def install() -> None:
        connection.execute_wrappers.append(statements)

    await sync_to_async(install)()

    def rows() -> Counter[str]:
        return Counter(
            blobs=Blob.objects.count(),
            entries=ManifestEntry.objects.count(),
            states=UndoState.objects.count(),
        )

    count_rows = sync_to_async(rows)
    print(f"{'files':>6} {'step':<16} {'ms median':>10} {'statements (median turn)':<44} rows")
    for size in sizes:
        session = f"bench{size}"
        files = {f"src/f{n:04}.txt": f"{n:04}" * (file_bytes // 4) for n in range(size)}
        await services.sync_in(session_id=session, files=files)
        timings: dict[str, list[float]] = {
            step: []
            for step in (
                "current+before",
                "save_state",
                "snapshot after",
                "record",
            )
        }
        per_turn: list[Counter[str]] = []
        row_deltas: list[Counter[str]] = []
        statements.take()
        for number in range(turns):
            before_rows = await count_rows()
            statements.take()
            started = time.perf_counter()
            before = await services.snapshot_for_turn(session_id=session)
            timings["current+before"].append(time.perf_counter() - started)
            started = time.perf_counter()
            await undo_states.save_state(session_id=session, state_id=f"t{number}", files=before)
            timings["save_state"].append(time.perf_counter() - started)
            target = services.path_for(session) / "src" / "App.tsx"
            target.parent.mkdir(exist_ok=True)
            target.write_text(f"export default () => {number};\n" * 20)
            started = time.perf_counter()
            after = await services.snapshot(session_id=session)
            timings["snapshot after"].append(time.perf_counter() - started)
            started = time.perf_counter()
            await services.record_current(session_id=session, files=after)
            timings["record"].append(time.perf_counter() - started)
            per_turn.append(statements.take())
            delta = await count_rows()
            delta.subtract(before_rows)
            row_deltas.append(delta)
        median_turn = per_turn[len(per_turn) // 2]
        writes = sum(median_turn[verb] for verb in ("INSERT", "UPDATE", "DELETE"))
        said = ", ".join(f"{verb} {n}" for verb, n in sorted(median_turn.items()))
        rows_said = ", ".join(f"{k} {v:+d}" for k, v in sorted(row_deltas[-1].items()))
        for step, values in timings.items():
            print(f"{size:>6} {step:<16} {statistics.median(values) * MS:>10.2f}")
        total = statistics.median(sum(values) for values in zip(*timings.values(), strict=True))
        print(f"{size:>6} {'turn total':<16} {total * MS:>10.2f} {said} ({writes} writes)")
        print(f"{'':>6} {'rows, last turn':<16} {'':>10} {rows_said}")


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(","))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=10, help="turns per workspace size")
    parser.add_argument("--database-url", default="", help="default: a temporary SQLite file")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="files per workspace")
    parser.add_argument("--file-bytes", type=int, default=FILE_BYTES, help="bytes per file")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="workspace-storage-"))
    try:
        os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{data / 'db.sqlite3'}"
        os.environ["WORKSPACE_ROOT"] = str(data / "workspaces")
        os.environ["WORKSPACE_HISTORY_STATES"] = "20"
        os.environ["WORKSPACE_MAX_FILES"] = str(max(sizes := _sizes(args.sizes)) + 1)
        os.environ["WORKSPACE_MAX_TOTAL_BYTES"] = str(2 * max(sizes) * args.file_bytes + 2**20)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard_ai.settings")
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        asyncio.run(bench(args.turns, sizes, args.file_bytes))
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
