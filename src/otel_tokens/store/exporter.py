"""`SQLiteSpanExporter`: an OpenTelemetry span exporter that writes to the local store.

Put it behind a `BatchSpanProcessor`, never a simple one: it runs on the processor's
worker thread, one transaction per batch, so the app's LLM calls never wait for disk.
It never raises into the SDK: a store that cannot be used (foreign file, no permission)
is reported once on the ``otel_tokens.store`` logger and the batches are dropped.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import os
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_tokens import names as n
from otel_tokens.store import schema
from otel_tokens.store.db import open_for_writing, write_tx
from otel_tokens.store.paths import default_store_path
from otel_tokens.store.schema import StoreError, fix_for

logger = logging.getLogger("otel_tokens.store")

_LLM_OPERATIONS: Final = frozenset((n.OP_CHAT, n.OP_EMBEDDINGS))
_PICO: Final = Decimal(1)
_COLUMNS: Final = {
    "llm_calls": schema.LLM_CALL_COLUMNS,
    "tasks": schema.TASK_COLUMNS,
    "spans": schema.SPAN_COLUMNS,
}
# Rows per INSERT statement. sqlite3 releases the GIL around every statement step, and
# getting it back from a busy app thread can take a whole switch interval (5 ms), so one
# statement per row would stall the export for seconds. 256 rows of the widest table use
# 8,704 of SQLite's 32,766 parameters; a 512-span batch is 2 statements.
_ROWS_PER_INSERT: Final = 256

# Attribute per `llm_calls` column after the ids, in schema order.
_LLM_KEYS: Final = (
    n.GEN_AI_OPERATION_NAME, n.GEN_AI_PROVIDER_NAME, n.GEN_AI_REQUEST_MODEL, n.GEN_AI_RESPONSE_MODEL,
    n.GEN_AI_USAGE_INPUT_TOKENS, n.GEN_AI_USAGE_OUTPUT_TOKENS, n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
    n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
    n.GEN_AI_USAGE_COST, n.COST_STATUS, n.CACHE_SAVINGS, n.OUTCOME, n.ERROR_TYPE,
    n.RETRY_COUNT, n.LOOP_REPEAT, n.AGENT_ITERATION,
    n.USER_ID, n.TEAM, n.TASK_NAME, n.TASK_ID, n.TASK_SIZE, n.GEN_AI_AGENT_NAME,
    n.CICD_PIPELINE_NAME, n.CICD_PIPELINE_TASK_NAME, n.CICD_PIPELINE_RUN_ID, n.TRIGGER,
)  # fmt: skip
# Attributes that become columns (and so are not repeated in the JSON `attrs` column)
_LLM_ATTRS: Final = frozenset(_LLM_KEYS)
_TASK_ATTRS: Final = frozenset((
    n.GEN_AI_OPERATION_NAME, n.GEN_AI_WORKFLOW_NAME, n.TASK_NAME, n.TASK_ID, n.TASK_SIZE, n.USER_ID,
    n.TEAM, n.TASK_OUTCOME, n.TASK_COST, n.TASK_LLM_CALLS, n.TASK_RETRIES, n.TASK_UNPRICED_CALLS,
    n.TASK_INPUT_TOKENS, n.TASK_OUTPUT_TOKENS, n.TASK_CACHE_READ_TOKENS, n.TASK_CACHE_WRITE_TOKENS,
    n.TASK_REASONING_TOKENS, n.CICD_PIPELINE_NAME, n.CICD_PIPELINE_TASK_NAME, n.CICD_PIPELINE_RUN_ID,
    n.TRIGGER,
))  # fmt: skip
_SPAN_ATTRS: Final = frozenset((n.GEN_AI_OPERATION_NAME, n.GEN_AI_AGENT_NAME, n.ERROR_TYPE))


def to_pico_usd(value: object) -> int | None:
    """A span's USD amount as integer pico-USD, read through its shortest decimal repr."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        exact = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        return int(exact.scaleb(12).quantize(_PICO, rounding=ROUND_HALF_EVEN))
    except (InvalidOperation, ValueError):
        return None


def _int(value: object) -> int | None:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return None


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _rest(
    attrs: Mapping[str, Any], taken: frozenset[str], extra: Mapping[str, Any] | None = None
) -> str | None:
    rest = {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.items() if k not in taken}
    if extra:
        rest.update(extra)
    return json.dumps(rest, separators=(",", ":"), sort_keys=True) if rest else None


def _events(span: ReadableSpan) -> str | None:
    if not span.events:
        return None
    start = span.start_time or 0
    out = [
        {
            "name": ev.name,
            "offset_ns": ev.timestamp - start,
            "attrs": {k: list(v) if isinstance(v, tuple) else v for k, v in (ev.attributes or {}).items()},
        }
        for ev in span.events
    ]
    return json.dumps(out, separators=(",", ":"))


def plain_attributes(span: ReadableSpan) -> Mapping[str, Any]:
    """The span's attributes as a plain dict, without the SDK's read-only wrapper (10x faster)."""
    inner = getattr(getattr(span, "_attributes", None), "_dict", None)
    if isinstance(inner, dict):
        return inner
    return dict(span.attributes or {})


def _ids(span: ReadableSpan) -> tuple[bytes, bytes, bytes | None, int, int]:
    ctx = span.get_span_context()
    assert ctx is not None
    parent = span.parent.span_id.to_bytes(8, "big") if span.parent is not None else None
    start = span.start_time or 0
    end = span.end_time or start
    return ctx.trace_id.to_bytes(16, "big"), ctx.span_id.to_bytes(8, "big"), parent, start, end


_COST_AT: Final = _LLM_KEYS.index(n.GEN_AI_USAGE_COST)
_SAVINGS_AT: Final = _LLM_KEYS.index(n.CACHE_SAVINGS)
_INPUT_AT: Final = _LLM_KEYS.index(n.GEN_AI_USAGE_INPUT_TOKENS)
_CACHE_READ_AT: Final = _LLM_KEYS.index(n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS)
_CACHE_WRITE_AT: Final = _LLM_KEYS.index(n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS)
_RETRIES_AT: Final = _LLM_KEYS.index(n.RETRY_COUNT)
_SCALARS: Final = frozenset((str, int, float, bool, type(None)))


def llm_row(span: ReadableSpan, a: Mapping[str, Any]) -> tuple[object, ...]:
    # Hot path (one per LLM call): plain gets; SQLite's column affinity does the typing.
    values = [a.get(k) for k in _LLM_KEYS]
    if values[_INPUT_AT] is not None:  # spans leave out zero cache counts; the store keeps 0
        if values[_CACHE_READ_AT] is None:
            values[_CACHE_READ_AT] = 0
        if values[_CACHE_WRITE_AT] is None:
            values[_CACHE_WRITE_AT] = 0
    if values[_RETRIES_AT] is None:  # and a call without retries has no retry count
        values[_RETRIES_AT] = 0
    values[_COST_AT] = to_pico_usd(values[_COST_AT])
    values[_SAVINGS_AT] = to_pico_usd(values[_SAVINGS_AT])
    if not _SCALARS.issuperset(map(type, values)):  # a sequence where a scalar belongs
        values = [v if type(v) in _SCALARS else _str(v) for v in values]
    return (*_ids(span), *values, _rest(a, _LLM_ATTRS), _events(span))


def task_row(span: ReadableSpan, a: Mapping[str, Any], pid: int) -> tuple[object, ...]:
    g = a.get
    ids = _ids(span)
    return (
        *ids,
        _str(g(n.GEN_AI_WORKFLOW_NAME) or g(n.TASK_NAME) or span.name),
        _str(g(n.TASK_ID)) or ids[1].hex(), _str(g(n.TASK_SIZE)), _str(g(n.USER_ID)), _str(g(n.TEAM)),
        _str(g(n.TASK_OUTCOME)), span.status.status_code.value,
        to_pico_usd(g(n.TASK_COST)), _int(g(n.TASK_LLM_CALLS)), _int(g(n.TASK_RETRIES)),
        _int(g(n.TASK_UNPRICED_CALLS)),
        _int(g(n.TASK_INPUT_TOKENS)), _int(g(n.TASK_OUTPUT_TOKENS)), _int(g(n.TASK_CACHE_READ_TOKENS)),
        _int(g(n.TASK_CACHE_WRITE_TOKENS)), _int(g(n.TASK_REASONING_TOKENS)),
        _str(g(n.CICD_PIPELINE_NAME)), _str(g(n.CICD_PIPELINE_TASK_NAME)),
        _str(g(n.CICD_PIPELINE_RUN_ID)), _str(g(n.TRIGGER)),
        _rest(a, _TASK_ATTRS, {n.PROCESS_PID: pid}), _events(span),
    )  # fmt: skip


def span_row(span: ReadableSpan, a: Mapping[str, Any], pid: int) -> tuple[object, ...]:
    g = a.get
    return (
        *_ids(span),
        span.name, span.kind.value, _str(g(n.GEN_AI_OPERATION_NAME)), _str(g(n.GEN_AI_AGENT_NAME)),
        span.status.status_code.value, _str(g(n.ERROR_TYPE)),
        _rest(a, _SPAN_ATTRS, {n.PROCESS_PID: pid}), _events(span),
    )  # fmt: skip


@functools.lru_cache(maxsize=32)
def _insert_sql(table: str, rows: int) -> str:
    return schema.insert_sql(table, _COLUMNS[table], rows)


def insert_rows(conn: sqlite3.Connection, table: str, rows: Sequence[tuple[object, ...]]) -> None:
    """Insert rows (already in column order), up to _ROWS_PER_INSERT per statement."""
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        conn.execute(_insert_sql(table, len(chunk)), list(itertools.chain.from_iterable(chunk)))


class SQLiteSpanExporter(SpanExporter):
    """Write finished spans to the local SQLite store (see `otel_tokens.store.schema`)."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, busy_deadline_s: float = 30.0) -> None:
        self.path = Path(path).expanduser() if path is not None else default_store_path()
        self._deadline = busy_deadline_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._broken: str | None = None
        self._shutdown = False
        self._write_errors: set[str] = set()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = open_for_writing(self.path, self._deadline)
        return self._conn

    def _after_fork(self) -> None:
        # A connection must not cross fork(); keep the parent's object alive and unused.
        if self._conn is not None:
            _ABANDONED.append(self._conn)
        self._conn = None
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def _dropped(self, count: int, exc: Exception) -> None:
        """Say once per kind of write failure (a full disk fails every batch) what to do."""
        problem = str(exc)
        if problem in self._write_errors:
            logger.debug("otel-tokens: dropped %d spans, store %s: %s", count, self.path, problem)
            return
        self._write_errors.add(problem)
        logger.warning(
            "otel-tokens: cannot write the local store %s (%s); dropped %d spans, and later batches "
            "are dropped while it lasts %s",
            self.path,
            problem,
            count,
            fix_for(problem, str(self.path)),
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown or self._broken is not None:
            return SpanExportResult.FAILURE
        if os.getpid() != self._pid:
            self._after_fork()
        llm: list[tuple[object, ...]] = []
        tasks: list[tuple[object, ...]] = []
        other: list[tuple[object, ...]] = []
        for span in spans:
            try:
                attrs = plain_attributes(span)
                op = attrs.get(n.GEN_AI_OPERATION_NAME)
                if op in _LLM_OPERATIONS:
                    llm.append(llm_row(span, attrs))
                elif op == n.OP_INVOKE_WORKFLOW:
                    tasks.append(task_row(span, attrs, self._pid))
                else:
                    other.append(span_row(span, attrs, self._pid))
            except Exception:  # one odd span must not cost the batch
                logger.debug("otel-tokens: skipped a span the store cannot read", exc_info=True)

        def insert(conn: sqlite3.Connection) -> None:
            if llm:
                last = conn.execute("SELECT coalesce(max(rowid), 0) FROM llm_calls").fetchone()[0]
                insert_rows(conn, "llm_calls", llm)
                conn.execute(schema.ROLLUP_UPSERT, (last,))
            if tasks:
                insert_rows(conn, "tasks", tasks)
            if other:
                insert_rows(conn, "spans", other)

        try:
            with self._lock:
                write_tx(self._connection(), insert, self._deadline)
        except StoreError as exc:
            self._broken = str(exc)
            logger.error("otel-tokens: local store disabled: %s", exc)
            return SpanExportResult.FAILURE
        except Exception as exc:
            self._dropped(len(spans), exc)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        self._shutdown = True
        with self._lock:
            if self._conn is not None and os.getpid() == self._pid:
                self._conn.close()
            self._conn = None


_ABANDONED: list[sqlite3.Connection] = []

QUEUE_SIZE: Final = 8192
SCHEDULE_DELAY_MS: Final = 1000


def store_span_processor(path: str | os.PathLike[str] | None = None) -> BatchSpanProcessor:
    """The batch processor to put the store behind.

    Deeper queue than the SDK default (8,192 spans instead of 2,048: ~1.6 s of calls at
    5,000/s) so a busy disk, a checkpoint or a lock held by another process does not make
    the processor drop spans; a 1 s schedule so a killed process loses at most about a
    second of calls. ``OTEL_BSP_MAX_QUEUE_SIZE`` / ``OTEL_BSP_SCHEDULE_DELAY`` still win.
    """
    return BatchSpanProcessor(
        SQLiteSpanExporter(path),
        max_queue_size=None if os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE") else QUEUE_SIZE,
        schedule_delay_millis=None if os.environ.get("OTEL_BSP_SCHEDULE_DELAY") else SCHEDULE_DELAY_MS,
    )
