"""A React dashboard (SVG bar chart + table) generated from a CSV file's text.

Used by the offline ``demo`` script: the data is embedded in the component, so
the result renders with nothing but React.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass

MAX_EMBEDDED_ROWS = 200

#: Sample data used when the workspace holds no CSV file.
SAMPLE_CSV = """month,revenue,orders
Jan,12400,310
Feb,13900,342
Mar,15100,367
Apr,14200,351
May,16800,402
Jun,18300,433
"""


@dataclass(frozen=True)
class Table:
    """A parsed CSV: unique column names, rows of cells, and which columns are numeric."""

    columns: list[str]
    rows: list[list[str]]
    numeric: list[str]
    label: str | None


def _number(cell: str) -> float | None:
    cleaned = cell.strip().replace(",", "").replace("$", "").replace("%", "")
    if not cleaned:
        return None
    try:
        value = float(cleaned)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _unique_names(header: list[str]) -> list[str]:
    names: list[str] = []
    for index, raw in enumerate(header):
        base = raw.strip() or f"column_{index + 1}"
        name, suffix = base, 2
        while name in names:
            name, suffix = f"{base}_{suffix}", suffix + 1
        names.append(name)
    return names


def parse_csv(text: str) -> Table:
    """Parse CSV text: header row, data rows, numeric columns and a label column."""
    rows = [row for row in csv.reader(io.StringIO(text.lstrip("\ufeff"))) if any(row)]
    if not rows:
        return Table(columns=[], rows=[], numeric=[], label=None)
    columns = _unique_names(rows[0])
    body = [(row + [""] * len(columns))[: len(columns)] for row in rows[1:]]
    numeric: list[str] = []
    label: str | None = None
    for index, column in enumerate(columns):
        cells = [row[index] for row in body if row[index].strip()]
        if cells and all(_number(cell) is not None for cell in cells):
            numeric.append(column)
        elif label is None:
            label = column
    return Table(columns=columns, rows=body, numeric=numeric, label=label)


def _records(table: Table) -> list[dict[str, str | int | float]]:
    records: list[dict[str, str | int | float]] = []
    for row in table.rows[:MAX_EMBEDDED_ROWS]:
        record: dict[str, str | int | float] = {}
        for column, cell in zip(table.columns, row, strict=True):
            value = _number(cell) if column in table.numeric else None
            if value is None:
                record[column] = cell
            else:
                record[column] = int(value) if value.is_integer() else value
        records.append(record)
    return records


def describe(table: Table) -> str:
    """One sentence on what the dashboard will show."""
    if not table.columns:
        return "The file is empty, so the dashboard only says so."
    columns = ", ".join(table.columns)
    if not table.numeric:
        return f"Columns: {columns}. None is numeric, so the dashboard shows a table only."
    by = table.label or "row number"
    return (
        f"Columns: {columns}. I'll chart {table.numeric[0]} by {by} "
        f"(with a picker for {', '.join(table.numeric)}) and add a table of the rows."
    )


def _js(value: object) -> str:
    return json.dumps(value, ensure_ascii=True)


def dashboard_tsx(table: Table, *, source: str) -> str:
    """The ``App.tsx`` source of a dashboard over ``table`` (read from ``source``)."""
    safe_source = source.replace("\n", " ").replace("\r", " ")
    return f"""// Dashboard written by the scripted model server (not Claude) from {safe_source}.
import {{ useMemo, useState }} from "react";

type Row = Record<string, string | number>;

const SOURCE = {_js(safe_source)};
const COLUMNS: string[] = {_js(table.columns)};
const NUMERIC_COLUMNS: string[] = {_js(table.numeric)};
const LABEL_COLUMN: string | null = {_js(table.label)};
const ROWS: Row[] = {_js(_records(table))};

function toNumber(value: string | number | undefined): number {{
  return typeof value === "number" ? value : Number(value ?? 0) || 0;
}}

function BarChart({{ rows, metric }}: {{ rows: Row[]; metric: string }}) {{
  const width = 640;
  const height = 240;
  const shown = rows.slice(0, 30);
  const values = shown.map((row) => toNumber(row[metric]));
  const max = Math.max(1, ...values.map((value) => Math.abs(value)));
  const barWidth = width / Math.max(1, shown.length);
  return (
    <svg viewBox={{`0 0 ${{width}} ${{height + 24}}`}} width="100%" aria-label={{metric}}>
      {{shown.map((row, index) => {{
        const barHeight = (Math.abs(values[index]) / max) * height;
        const label = LABEL_COLUMN ? String(row[LABEL_COLUMN]) : String(index + 1);
        return (
          <g key={{index}} transform={{`translate(${{index * barWidth}}, 0)`}}>
            <rect
              x={{2}}
              y={{height - barHeight}}
              width={{Math.max(1, barWidth - 4)}}
              height={{barHeight}}
              fill="#4f7cff"
            >
              <title>{{`${{label}}: ${{values[index]}}`}}</title>
            </rect>
            <text x={{barWidth / 2}} y={{height + 16}} fontSize={{10}} textAnchor="middle">
              {{label.slice(0, 10)}}
            </text>
          </g>
        );
      }})}}
    </svg>
  );
}}

export default function App() {{
  const [metric, setMetric] = useState(NUMERIC_COLUMNS[0] ?? "");
  const total = useMemo(
    () => ROWS.reduce((sum, row) => sum + toNumber(row[metric]), 0),
    [metric],
  );
  return (
    <main style={{{{ fontFamily: "system-ui, sans-serif", padding: 24 }}}}>
      <h1>Dashboard</h1>
      <p>
        Data from {{SOURCE}}: {{ROWS.length}} rows, {{COLUMNS.length}} columns.
      </p>
      {{NUMERIC_COLUMNS.length > 0 ? (
        <section>
          <label>
            Metric{{" "}}
            <select value={{metric}} onChange={{(event) => setMetric(event.target.value)}}>
              {{NUMERIC_COLUMNS.map((column) => (
                <option key={{column}} value={{column}}>
                  {{column}}
                </option>
              ))}}
            </select>
          </label>
          <p>
            Total {{metric}}: {{total.toLocaleString()}} · Average:{{" "}}
            {{(total / Math.max(1, ROWS.length)).toLocaleString()}}
          </p>
          <BarChart rows={{ROWS}} metric={{metric}} />
        </section>
      ) : (
        <p>No numeric column to chart.</p>
      )}}
      <table>
        <thead>
          <tr>
            {{COLUMNS.map((column) => (
              <th key={{column}}>{{column}}</th>
            ))}}
          </tr>
        </thead>
        <tbody>
          {{ROWS.slice(0, 50).map((row, index) => (
            <tr key={{index}}>
              {{COLUMNS.map((column) => (
                <td key={{column}}>{{String(row[column] ?? "")}}</td>
              ))}}
            </tr>
          ))}}
        </tbody>
      </table>
    </main>
  );
}}
"""
