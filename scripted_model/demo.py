"""The offline ``demo`` script: find a CSV, read it, write a dashboard over its columns.

Steps of one exchange (each decided from the request, never from server state):

0. Glob ``**/*.csv`` in the workspace.
1. With a CSV found, Read the first one; with none, Write a dashboard over
   sample data.
2. After the Read, Write ``src/App.tsx`` built from the real header and rows;
   after the sample Write, say what was done.
3. Say what was done.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePosixPath

from scripted_model.blocks import Block
from scripted_model.conversation import RequestContext, strip_line_numbers
from scripted_model.dashboard import SAMPLE_CSV, dashboard_tsx, describe, parse_csv
from scripted_model.turns import Script, Turn, text, tool

APP_PATH = "{workspace}/src/App.tsx"


def _csv_paths(context: RequestContext) -> list[str]:
    """Absolute CSV paths listed by the previous Glob call's result.

    The CLI's Glob lists paths relative to its working directory.
    """
    paths: list[str] = []
    for result in context.tool_results:
        if result.is_error:
            continue
        for line in result.content.splitlines():
            candidate = line.strip()
            if candidate.lower().endswith(".csv"):
                if context.workspace and not PurePosixPath(candidate).is_absolute():
                    candidate = str(PurePosixPath(context.workspace) / candidate)
                paths.append(candidate)
    return paths


def _relative(path: str, workspace: str | None) -> str:
    if workspace and PurePosixPath(path).is_relative_to(workspace):
        return str(PurePosixPath(path).relative_to(workspace))
    return path


def _write_sample(reason: str) -> list[Block]:
    table = parse_csv(SAMPLE_CSV)
    return [
        text(f"{reason} I'll build the dashboard over a small sample data set instead."),
        tool("Write", file_path=APP_PATH, content=dashboard_tsx(table, source="sample data")),
    ]


def read_first_csv(context: RequestContext) -> Sequence[Block]:
    """Step 1: read the first CSV found, or fall back to sample data."""
    paths = _csv_paths(context)
    if not paths:
        return _write_sample("I found no CSV file in your workspace.")
    first = paths[0]
    more = f" (and {len(paths) - 1} more)" if len(paths) > 1 else ""
    return [
        text(f"Found {_relative(first, context.workspace)}{more}. Reading it to see its columns."),
        tool("Read", file_path=first),
    ]


def _finish() -> list[Block]:
    return [
        text(
            "Done: src/App.tsx now shows a bar chart you can switch between the numeric "
            "columns, totals, and a table of the rows. (Written by the scripted model "
            "server, not by Claude.)"
        )
    ]


def write_dashboard(context: RequestContext) -> Sequence[Block]:
    """Step 2: after a Read, write the dashboard from the CSV's real columns."""
    read = next((use for use in context.last_tool_uses if use.name == "Read"), None)
    if read is None:
        return _finish()
    result = context.tool_results[0] if context.tool_results else None
    if result is None or result.is_error:
        return _write_sample("I could not read that file.")
    table = parse_csv(strip_line_numbers(result.content))
    if not table.columns:
        return _write_sample("That CSV file is empty.")
    source = _relative(str(read.input.get("file_path", "data.csv")), context.workspace)
    return [
        text(describe(table)),
        tool("Write", file_path=APP_PATH, content=dashboard_tsx(table, source=source)),
    ]


def finish(context: RequestContext) -> Sequence[Block]:
    """Step 3: say what was done."""
    return _finish()


DEMO = Script(
    name="demo",
    description="Glob for CSVs, Read the first, Write a React dashboard over its columns.",
    turns=[
        Turn(
            [
                text("Let me look for CSV files in your workspace."),
                tool("Glob", pattern="**/*.csv", path="{workspace}"),
            ]
        ),
        Turn(read_first_csv),
        Turn(write_dashboard),
        Turn(finish),
    ],
)
