"""The SQL behind `report`, `top`, `trace` and `prune`.

Reports read `call_rollup` (sums per run, hour and dimension, kept by the exporter in
the same transaction as the raw rows), never scan `llm_calls` whole: a million calls are
~70k rollup rows. A ``--since`` cut inside an hour is exact: whole hours come from the
rollup and the first, partial hour from the raw rows through the `start_ns` index.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Final

from otel_tokens.store.schema import HOUR_NS, ROLLUP_KEY, ROLLUP_SELECT, ROLLUP_SUMS

# `report --by` choice -> rollup column.
GROUP_COLUMNS: Final = {
    "task": "task_name",
    "user": "user_id",
    "team": "team",
    "model": "model",
    "provider": "provider",
    "pipeline": "pipeline",
    "agent": "agent_name",
}
_COLS: Final = ", ".join((*ROLLUP_KEY, *ROLLUP_SUMS, "first_ns", "last_ns"))
_SUMS: Final = ", ".join(f"sum({c})" for c in ROLLUP_SUMS)


@dataclass(frozen=True, slots=True)
class Window:
    """Which calls a report covers: started at or after ``since_ns``, of task ``task``."""

    since_ns: int | None = None
    task: str | None = None


@dataclass(frozen=True, slots=True)
class Sums:
    calls: int
    priced_calls: int
    cost_pusd: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cache_savings_pusd: int
    retries: int
    loop_repeats: int
    failed_calls: int


@dataclass(frozen=True, slots=True)
class RunRow:
    """The sums of one run (a task, or a trace outside any task)."""

    group: str
    task_id: str  # '' for calls outside any task
    trace_id: bytes  # b'' for task runs
    task_name: str
    task_size: str
    sums: Sums
    first_ns: int


def _windowed(window: Window) -> tuple[str, list[object]]:
    """A CTE ``r`` with rollup-shaped rows for the window, and its parameters."""
    task_cond = " AND task_name = ?" if window.task is not None else ""
    task_param: list[object] = [window.task] if window.task is not None else []
    if window.since_ns is None:
        return f"WITH r AS (SELECT {_COLS} FROM call_rollup WHERE 1{task_cond})", task_param
    full_hour = -(-window.since_ns // HOUR_NS)  # first hour entirely inside the window
    raw = ROLLUP_SELECT.format(where="WHERE start_ns >= ? AND start_ns < ?" + task_cond)
    params = [full_hour, *task_param, window.since_ns, full_hour * HOUR_NS, *task_param]
    cte = f"WITH r AS (SELECT {_COLS} FROM call_rollup WHERE hour >= ?{task_cond} UNION ALL {raw})"
    return cte, params


def group_sums(conn: sqlite3.Connection, by: str, window: Window) -> list[tuple[str, Sums]]:
    """The sums of every group; each call is in exactly one group."""
    column = GROUP_COLUMNS[by]
    cte, params = _windowed(window)
    sql = f"{cte} SELECT {column}, {_SUMS} FROM r GROUP BY {column}"
    return [(row[0], Sums(*row[1:])) for row in conn.execute(sql, params)]


# A task's outcome: the outermost (earliest) span of that task id decides; a span with
# status ERROR and no explicit outcome counts as a failure. NULL: no task span recorded.
_OUTCOMES: Final = """
SELECT task_id, CASE WHEN outcome IS NULL AND status_code = 2 THEN 'failure' ELSE outcome END AS outcome,
    min(start_ns) FROM tasks GROUP BY task_id"""

TaskRun = tuple[str, str, str, str, int, int, "str | None"]
"""(group, task id, task name, size, calls, cost pico-USD, outcome) of a task within a group."""


def task_runs(conn: sqlite3.Connection, by: str, window: Window) -> list[TaskRun]:
    """One row per (group, task): a task can span groups (e.g. two models); plain tuples, 50k+ rows."""
    column = GROUP_COLUMNS[by]
    cte, params = _windowed(window)
    sql = (
        f"{cte}, runs AS (SELECT {column} AS g, task_id, max(task_name) AS name, max(task_size) AS size, "
        f"sum(calls) AS calls, sum(cost_pusd) AS cost FROM r WHERE task_id != '' "
        f"GROUP BY {column}, task_id), "
        f"o AS ({_OUTCOMES}) "
        "SELECT runs.g, runs.task_id, runs.name, runs.size, runs.calls, runs.cost, o.outcome "
        "FROM runs LEFT JOIN o ON o.task_id = runs.task_id"
    )
    return conn.execute(sql, params).fetchall()


def untasked_traces(conn: sqlite3.Connection, by: str, window: Window) -> dict[str, int]:
    """Per group, how many traces had calls outside any task (each such trace is a run)."""
    column = GROUP_COLUMNS[by]
    cte, params = _windowed(window)
    sql = f"{cte} SELECT {column}, count(DISTINCT trace_id) FROM r WHERE task_id = '' GROUP BY {column}"
    return dict(conn.execute(sql, params).fetchall())


@dataclass(frozen=True, slots=True)
class TaskSpan:
    outcome: str | None
    trace_id: bytes


def task_span(conn: sqlite3.Connection, task_id: str) -> TaskSpan | None:
    """The outermost recorded span of a task, if any."""
    row = conn.execute(
        "SELECT CASE WHEN outcome IS NULL AND status_code = 2 THEN 'failure' ELSE outcome END, trace_id "
        "FROM tasks WHERE task_id = ? ORDER BY start_ns LIMIT 1",
        (task_id,),
    ).fetchone()
    return TaskSpan(row[0], row[1]) if row else None


def top_runs(conn: sqlite3.Connection, window: Window, limit: int) -> list[RunRow]:
    """The most expensive runs (tasks, or traces outside tasks) in the window."""
    cte, params = _windowed(window)
    sql = (
        f"{cte} SELECT '', task_id, trace_id, max(task_name), max(task_size), {_SUMS}, min(first_ns) "
        f"FROM r GROUP BY task_id, trace_id ORDER BY sum(cost_pusd) DESC, min(first_ns) LIMIT ?"
    )
    return [
        RunRow(row[0], row[1], row[2], row[3], row[4], Sums(*row[5:17]), row[17])
        for row in conn.execute(sql, [*params, limit])
    ]


def traces_of(conn: sqlite3.Connection, ident: str) -> tuple[bool, list[bytes]]:
    """(is a task id, its trace ids oldest first) for a task id or a 32-hex-digit trace id."""
    traces: dict[bytes, int] = {}
    for table in ("tasks", "llm_calls"):
        for trace_id, start in conn.execute(
            f"SELECT trace_id, min(start_ns) FROM {table} WHERE task_id = ? GROUP BY trace_id", (ident,)
        ):
            traces[trace_id] = min(start, traces.get(trace_id, start))
    if not traces and len(ident) == 32:
        try:
            raw = bytes.fromhex(ident)
        except ValueError:
            return False, []
        for table in ("tasks", "llm_calls", "spans"):
            if conn.execute(f"SELECT 1 FROM {table} WHERE trace_id = ? LIMIT 1", (raw,)).fetchone():
                return False, [raw]
    return bool(traces), sorted(traces, key=lambda t: traces[t])


LLM_NODE_COLUMNS: Final = (
    "span_id", "parent_id", "start_ns", "end_ns", "operation", "provider", "request_model",
    "response_model", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "reasoning_tokens", "cost_pusd", "cost_status", "outcome", "error_type", "retries", "loop_repeat",
    "iteration", "agent_name", "events", "attrs",
)  # fmt: skip
TASK_NODE_COLUMNS: Final = (
    "span_id", "parent_id", "start_ns", "end_ns", "name", "task_id", "size", "outcome", "status_code",
    "user_id", "team", "attrs",
)  # fmt: skip
SPAN_NODE_COLUMNS: Final = (
    "span_id", "parent_id", "start_ns", "end_ns", "name", "kind", "operation", "agent_name",
    "status_code", "error_type", "attrs", "events",
)  # fmt: skip


def trace_rows(conn: sqlite3.Connection, trace_id: bytes) -> dict[str, list[sqlite3.Row]]:
    """All stored spans of one trace, by table."""
    conn.row_factory = sqlite3.Row
    try:
        return {
            table: conn.execute(
                f"SELECT {', '.join(cols)} FROM {table} WHERE trace_id = ?", (trace_id,)
            ).fetchall()
            for table, cols in (
                ("tasks", TASK_NODE_COLUMNS),
                ("llm_calls", LLM_NODE_COLUMNS),
                ("spans", SPAN_NODE_COLUMNS),
            )
        }
    finally:
        conn.row_factory = None


@dataclass(frozen=True, slots=True)
class Pruned:
    llm_calls: int
    tasks: int
    spans: int


def prune_cut(older_than_ns: int) -> int:
    """The instant `prune` cuts at: ``older_than_ns`` rounded down to a whole UTC hour (a
    local time with minutes in half-hour zones)."""
    return older_than_ns // HOUR_NS * HOUR_NS


def prunable(conn: sqlite3.Connection, older_than_ns: int) -> Pruned:
    """What `prune` would delete, counted by reading alone (no write lock)."""
    cut = prune_cut(older_than_ns)
    counts = [
        conn.execute(f"SELECT count(*) FROM {t} WHERE start_ns < ?", (cut,)).fetchone()[0]
        for t in ("llm_calls", "tasks", "spans")
    ]
    return Pruned(*counts)


def prune(conn: sqlite3.Connection, older_than_ns: int) -> Pruned:
    """Delete everything that started before ``older_than_ns`` rounded down to the hour.

    Rounding keeps the rollup exact: an hour is either wholly kept or wholly deleted.
    Runs inside the caller's write transaction.
    """
    hour = older_than_ns // HOUR_NS
    cut = hour * HOUR_NS
    counts = [
        conn.execute(f"DELETE FROM {t} WHERE start_ns < ?", (cut,)).rowcount
        for t in ("llm_calls", "tasks", "spans")
    ]
    conn.execute("DELETE FROM call_rollup WHERE hour < ?", (hour,))
    return Pruned(*counts)
