"""The store's tables, its version, and the checks that tell our file from a foreign one.

Layout (schema version 1):

* ``llm_calls``: one row per LLM call span (``gen_ai.operation.name`` chat/embeddings).
  The attributes reports group and sum by are columns; everything else is in ``attrs``
  (JSON object, NULL when empty) and span events (retries) in ``events`` (JSON array).
* ``tasks``: one row per task span (``invoke_workflow``) with its rollup attributes.
* ``spans``: every other span (agents, tools, ``otel-tokens run``, subprocesses), kept
  so ``otel-tokens trace`` can draw the whole tree.
* ``meta``: ``application`` = ``otel-tokens`` and ``schema_version``.

Ids are raw bytes (trace 16, span 8). Times are Unix nanoseconds. Money is an integer
number of **pico-USD** (1e-12 USD): a span's float cost is read through its shortest
decimal representation (``repr``) and quantised to 1e-12, which is exact for any price
with up to six decimals per million tokens, so SQL ``sum()`` over integers gives totals
that equal the sum of the recorded span costs to the last digit.
"""

from __future__ import annotations

import os
import sqlite3
from typing import Final

from otel_tokens import names as n

SCHEMA_VERSION: Final = 1
APPLICATION: Final = "otel-tokens"
# PRAGMA application_id: "otkn" as a big-endian int, so `file` and sqlite tools can tell.
APPLICATION_ID: Final = 0x6F746B6E
SQLITE_MAGIC: Final = b"SQLite format 3\x00"

PICO_PER_USD: Final = 10**12

# Shared by the three span tables, in this order, at the start of each row.
_SPAN_COLUMNS: Final = """
    trace_id BLOB NOT NULL,
    span_id BLOB NOT NULL,
    parent_id BLOB,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL"""

LLM_CALL_COLUMNS: Final = (
    "trace_id", "span_id", "parent_id", "start_ns", "end_ns",
    "operation", "provider", "request_model", "response_model",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
    "cost_pusd", "cost_status", "cache_savings_pusd", "outcome", "error_type",
    "retries", "loop_repeat", "iteration",
    "user_id", "team", "task_name", "task_id", "task_size", "agent_name",
    "pipeline", "pipeline_task", "run_id", "trigger", "attrs", "events",
)  # fmt: skip

TASK_COLUMNS: Final = (
    "trace_id", "span_id", "parent_id", "start_ns", "end_ns",
    "name", "task_id", "size", "user_id", "team", "outcome", "status_code",
    "cost_pusd", "llm_calls", "retries", "unpriced_calls",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens",
    "pipeline", "pipeline_task", "run_id", "trigger", "attrs", "events",
)  # fmt: skip

SPAN_COLUMNS: Final = (
    "trace_id", "span_id", "parent_id", "start_ns", "end_ns",
    "name", "kind", "operation", "agent_name", "status_code", "error_type", "attrs", "events",
)  # fmt: skip

# `call_rollup` holds the sums of `llm_calls` per run (task id, or trace for calls outside
# any task), hour and every dimension `report --by` offers. The exporter updates it in the
# same transaction as the raw rows, so reports read ~1 row per task-hour instead of every
# call. Missing dimensions are '' (primary-key columns cannot be NULL in SQLite).
HOUR_NS: Final = 3_600_000_000_000
ROLLUP_KEY: Final = (
    "task_id", "trace_id", "hour", "task_name", "task_size", "user_id", "team",
    "provider", "model", "agent_name", "pipeline",
)  # fmt: skip
ROLLUP_SUMS: Final = (
    "calls", "priced_calls", "cost_pusd", "input_tokens", "output_tokens", "cache_read_tokens",
    "cache_write_tokens", "reasoning_tokens", "cache_savings_pusd", "retries", "loop_repeats",
    "failed_calls",
)  # fmt: skip
ROLLUP_SUMS_DDL: Final = ", ".join(f"{c} INTEGER NOT NULL" for c in ROLLUP_SUMS) + (
    ", first_ns INTEGER NOT NULL, last_ns INTEGER NOT NULL"
)
# The rollup row shape computed from raw `llm_calls` rows; {where} selects the rows.
ROLLUP_SELECT: Final = f"""
SELECT coalesce(task_id, ''), CASE WHEN task_id IS NULL THEN trace_id ELSE x'' END,
    start_ns / {HOUR_NS}, coalesce(task_name, ''), coalesce(task_size, ''), coalesce(user_id, ''),
    coalesce(team, ''), coalesce(provider, ''), coalesce(response_model, request_model, ''),
    coalesce(agent_name, ''), coalesce(pipeline, ''),
    count(*), count(cost_pusd), coalesce(sum(cost_pusd), 0), coalesce(sum(input_tokens), 0),
    coalesce(sum(output_tokens), 0), coalesce(sum(cache_read_tokens), 0),
    coalesce(sum(cache_write_tokens), 0), coalesce(sum(reasoning_tokens), 0),
    coalesce(sum(cache_savings_pusd), 0), coalesce(sum(retries), 0),
    coalesce(sum(loop_repeat), 0), sum(coalesce(outcome, 'success') != 'success'),
    min(start_ns), max(start_ns)
FROM llm_calls {{where}}
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11"""
_ROLLUP_COLS: Final = (*ROLLUP_KEY, *ROLLUP_SUMS, "first_ns", "last_ns")
ROLLUP_UPSERT: Final = (
    f"INSERT INTO call_rollup ({', '.join(_ROLLUP_COLS)})"
    + ROLLUP_SELECT.format(where="WHERE rowid > ?")
    + f" ON CONFLICT ({', '.join(ROLLUP_KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = {c} + excluded.{c}" for c in ROLLUP_SUMS)
    + ", first_ns = min(first_ns, excluded.first_ns), last_ns = max(last_ns, excluded.last_ns)"
)

DDL: Final = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS llm_calls ({_SPAN_COLUMNS},
    operation TEXT, provider TEXT, request_model TEXT, response_model TEXT,
    input_tokens INTEGER, output_tokens INTEGER, cache_read_tokens INTEGER,
    cache_write_tokens INTEGER, reasoning_tokens INTEGER,
    cost_pusd INTEGER, cost_status TEXT, cache_savings_pusd INTEGER,
    outcome TEXT, error_type TEXT, retries INTEGER, loop_repeat INTEGER, iteration INTEGER,
    user_id TEXT, team TEXT, task_name TEXT, task_id TEXT, task_size TEXT, agent_name TEXT,
    pipeline TEXT, pipeline_task TEXT, run_id TEXT, trigger TEXT, attrs TEXT, events TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS llm_calls_span ON llm_calls (trace_id, span_id);
CREATE INDEX IF NOT EXISTS llm_calls_task ON llm_calls (task_id);
CREATE INDEX IF NOT EXISTS llm_calls_start ON llm_calls (start_ns);
CREATE TABLE IF NOT EXISTS tasks ({_SPAN_COLUMNS},
    name TEXT, task_id TEXT, size TEXT, user_id TEXT, team TEXT, outcome TEXT, status_code INTEGER,
    cost_pusd INTEGER, llm_calls INTEGER, retries INTEGER, unpriced_calls INTEGER,
    input_tokens INTEGER, output_tokens INTEGER, cache_read_tokens INTEGER,
    cache_write_tokens INTEGER, reasoning_tokens INTEGER,
    pipeline TEXT, pipeline_task TEXT, run_id TEXT, trigger TEXT, attrs TEXT, events TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS tasks_span ON tasks (trace_id, span_id);
CREATE INDEX IF NOT EXISTS tasks_task ON tasks (task_id);
CREATE INDEX IF NOT EXISTS tasks_start ON tasks (start_ns);
CREATE TABLE IF NOT EXISTS spans ({_SPAN_COLUMNS},
    name TEXT, kind INTEGER, operation TEXT, agent_name TEXT, status_code INTEGER,
    error_type TEXT, attrs TEXT, events TEXT);
CREATE UNIQUE INDEX IF NOT EXISTS spans_span ON spans (trace_id, span_id);
CREATE INDEX IF NOT EXISTS spans_start ON spans (start_ns);
CREATE TABLE IF NOT EXISTS call_rollup (
    task_id TEXT NOT NULL, trace_id BLOB NOT NULL, hour INTEGER NOT NULL,
    task_name TEXT NOT NULL, task_size TEXT NOT NULL, user_id TEXT NOT NULL, team TEXT NOT NULL,
    provider TEXT NOT NULL, model TEXT NOT NULL, agent_name TEXT NOT NULL, pipeline TEXT NOT NULL,
    {ROLLUP_SUMS_DDL},
    PRIMARY KEY ({", ".join(ROLLUP_KEY)})
) WITHOUT ROWID;
"""

# Statements that take a store from version N to N+1. Empty until version 2 exists.
MIGRATIONS: Final[dict[int, tuple[str, ...]]] = {}


class StoreError(Exception):
    """A store that cannot be used: missing, foreign, corrupt or from a newer version.

    The message is one line that names the file and what to do.
    """


def insert_sql(table: str, columns: tuple[str, ...], rows: int = 1) -> str:
    marks = "(" + ", ".join("?" * len(columns)) + ")"
    return f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([marks] * rows)


def looks_like_sqlite(path: str) -> bool:
    """True for an SQLite file and for an empty file (SQLite treats those as new)."""
    with open(path, "rb") as fh:
        head = fh.read(len(SQLITE_MAGIC))
    return head == SQLITE_MAGIC or head == b""


def fix_for(problem: str, path: str) -> str:
    """The fix to suggest for an SQLite error text met while creating or writing a store."""
    elsewhere = f"or point ${n.ENV_STORE} at another file"
    directory, name = os.path.dirname(path) or ".", os.path.basename(path)
    text = problem.lower()
    if "readonly" in text or "permission" in text or "read-only" in text:
        return f"(fix: make {directory} and the file writable, {elsewhere})"
    if "disk i/o" in text or "full" in text or "no space" in text or "too large" in text:
        return f"(fix: free disk space on the file system of {directory}, {elsewhere})"
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return f"(fix: move the damaged {name} aside and a new store is created, {elsewhere})"
    return f"(fix: check {path}, {elsewhere})"


def stored_version(conn: sqlite3.Connection, path: str) -> int | None:
    """The schema version of an otel-tokens store; None for a blank database.

    Raises StoreError for an SQLite database that belongs to something else.
    """
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        if "readonly" in str(exc):  # a WAL store needs its -shm file writable even to read
            raise StoreError(f"cannot open store {path} ({exc}) {fix_for(str(exc), path)}") from None
        raise StoreError(f"{path} is not an otel-tokens store ({exc})") from None
    if not tables and app_id == 0:
        return None
    if app_id != APPLICATION_ID or "meta" not in tables:
        raise StoreError(
            f"{path} is an SQLite database but not an otel-tokens store; "
            f"point --store or ${n.ENV_STORE} at an otel-tokens store"
        )
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or not str(row[0]).isdigit():
        raise StoreError(f"{path} has no schema version; it was not written by otel-tokens")
    return int(row[0])


def check_version(version: int, path: str) -> None:
    """Refuse stores from a newer release and versions we have no migration for."""
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} has schema version {version}, newer than this otel-tokens "
            f"understands ({SCHEMA_VERSION}); upgrade otel-tokens"
        )
    missing = [v for v in range(version, SCHEMA_VERSION) if v not in MIGRATIONS]
    if missing:
        raise StoreError(f"{path} has schema version {version} and no migration to {SCHEMA_VERSION}")


def create_or_migrate(conn: sqlite3.Connection, path: str) -> None:
    """Inside a write transaction: create a blank store or bring an old one up to date."""
    version = stored_version(conn, path)
    if version is None:
        for statement in DDL.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [("application", APPLICATION), ("schema_version", str(SCHEMA_VERSION))],
        )
        return
    check_version(version, path)
    for v in range(version, SCHEMA_VERSION):
        for statement in MIGRATIONS[v]:
            conn.execute(statement)
    if version != SCHEMA_VERSION:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
