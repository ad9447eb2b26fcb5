"""The store: paths and permissions, what the exporter writes, exact money, rollups,
foreign files, windows and pruning."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, StatusCode

from otel_tokens import names as n
from otel_tokens.store import schema
from otel_tokens.store.db import open_for_reading, open_for_writing
from otel_tokens.store.exporter import SQLiteSpanExporter, to_pico_usd
from otel_tokens.store.paths import default_store_path
from otel_tokens.store.schema import StoreError
from tests.store_helpers import Call, Run, cli, cli_env, record


@pytest.mark.parametrize(
    ("value", "pico"),
    [
        (0.001234, 1_234_000_000),
        (3.75e-08, 37_500),  # a price with 4 decimals per million tokens, one token
        (0.1, 100_000_000_000),
        (0.30000000000000004, 300_000_000_000),  # float noise beyond 1e-12 is rounded away
        (5e-13, 0),  # half a pico rounds to even
        (1.5e-12, 2),
        (7, 7_000_000_000_000),
        (0.0, 0),
        (float("nan"), None),
        (float("inf"), None),
        (True, None),
        ("0.1", None),
        (None, None),
    ],
)
def test_costs_are_stored_as_exact_pico_usd(value: object, pico: int | None) -> None:
    assert to_pico_usd(value) == pico


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"OTEL_TOKENS_STORE": "/data/x.db", "XDG_DATA_HOME": "/xdg"}, "/data/x.db"),
        ({"OTEL_TOKENS_STORE": "~/t.db"}, "{home}/t.db"),
        ({"XDG_DATA_HOME": "/xdg"}, "/xdg/otel-tokens/telemetry.db"),
        ({}, "{home}/.local/share/otel-tokens/telemetry.db"),
        ({"OTEL_TOKENS_STORE": "  ", "XDG_DATA_HOME": ""}, "{home}/.local/share/otel-tokens/telemetry.db"),
    ],
)
def test_default_store_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(n.ENV_STORE, raising=False)
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert default_store_path() == Path(expected.format(home=tmp_path))


def test_store_is_created_owner_only_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "telemetry.db"
    conn = open_for_writing(path)
    conn.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert check.execute("PRAGMA application_id").fetchone() == (schema.APPLICATION_ID,)
    assert dict(check.execute("SELECT key, value FROM meta")) == {
        "application": "otel-tokens",
        "schema_version": str(schema.SCHEMA_VERSION),
    }


def _rows(path: Path, table: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    return [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY start_ns")]


def test_exporter_writes_one_row_per_call_task_and_other_span(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SQLiteSpanExporter(path)))
    tracer = provider.get_tracer(n.SCOPE)
    task_attrs = {
        n.GEN_AI_OPERATION_NAME: n.OP_INVOKE_WORKFLOW, n.GEN_AI_WORKFLOW_NAME: "fix-bug", n.TASK_ID: "t-1",
        n.TASK_SIZE: "M", n.USER_ID: "u1", n.TEAM: "core", n.TASK_OUTCOME: "success", n.TASK_COST: 0.0123,
        n.TASK_LLM_CALLS: 1, n.TASK_RETRIES: 1, n.TRIGGER: "local",
    }  # fmt: skip
    agent_attrs = {n.GEN_AI_OPERATION_NAME: n.OP_INVOKE_AGENT, n.GEN_AI_AGENT_NAME: "coder"}
    call_attrs = {
        n.GEN_AI_OPERATION_NAME: n.OP_CHAT, n.GEN_AI_PROVIDER_NAME: "anthropic",
        n.GEN_AI_REQUEST_MODEL: "claude-sonnet-4-5", n.GEN_AI_RESPONSE_MODEL: "claude-sonnet-4-5-20250929",
        n.GEN_AI_USAGE_INPUT_TOKENS: 2000, n.GEN_AI_USAGE_OUTPUT_TOKENS: 100,
        n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 1500, n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: 300,
        n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 40, n.GEN_AI_USAGE_COST: 0.0123,
        n.COST_STATUS: "priced", n.CACHE_SAVINGS: 0.00405, n.OUTCOME: "success", n.RETRY_COUNT: 1,
        n.LOOP_REPEAT: True, n.AGENT_ITERATION: 3, n.USER_ID: "u1", n.TEAM: "core", n.TASK_NAME: "fix-bug",
        n.TASK_ID: "t-1", n.TASK_SIZE: "M", n.GEN_AI_AGENT_NAME: "coder", n.CICD_PIPELINE_NAME: "ci",
        n.CICD_PIPELINE_TASK_NAME: "test", n.CICD_PIPELINE_RUN_ID: "42", n.TRIGGER: "ci",
        n.SERVER_ADDRESS: "api.anthropic.com", n.GEN_AI_RESPONSE_FINISH_REASONS: ("end_turn",),
    }  # fmt: skip
    with tracer.start_as_current_span(
        "invoke_workflow fix-bug", attributes=task_attrs, start_time=1_000
    ) as task:
        with tracer.start_as_current_span(
            "invoke_agent coder", start_time=2_000, attributes=agent_attrs
        ) as agent:
            with tracer.start_as_current_span("chat", kind=SpanKind.CLIENT, attributes=call_attrs,
                                              start_time=3_000, end_on_exit=False) as call:  # fmt: skip
                call.add_event(n.EVENT_RETRY, {n.EVENT_ATTEMPT_STATUS: 429, n.EVENT_RETRY_WAIT: 0.25}, 3_500)
                call.end(end_time=9_000)
            with tracer.start_as_current_span("run_tests", start_time=9_500, end_on_exit=False) as tool:
                tool.set_status(StatusCode.ERROR)
                tool.end(end_time=9_900)
    provider.shutdown()
    trace_id = task.get_span_context().trace_id.to_bytes(16, "big")
    sid = {s: s.get_span_context().span_id.to_bytes(8, "big") for s in (task, agent, call, tool)}  # type: ignore[misc]
    (row,) = _rows(path, "llm_calls")
    row["attrs"], row["events"] = json.loads(row["attrs"]), json.loads(row["events"])
    assert {k: v for k, v in row.items() if k not in ("end_ns",)} == {
        "trace_id": trace_id, "span_id": sid[call], "parent_id": sid[agent], "start_ns": 3_000,
        "operation": "chat", "provider": "anthropic", "request_model": "claude-sonnet-4-5",
        "response_model": "claude-sonnet-4-5-20250929", "input_tokens": 2000, "output_tokens": 100,
        "cache_read_tokens": 1500, "cache_write_tokens": 300, "reasoning_tokens": 40,
        "cost_pusd": 12_300_000_000, "cost_status": "priced", "cache_savings_pusd": 4_050_000_000,
        "outcome": "success", "error_type": None, "retries": 1, "loop_repeat": 1, "iteration": 3,
        "user_id": "u1", "team": "core", "task_name": "fix-bug", "task_id": "t-1", "task_size": "M",
        "agent_name": "coder", "pipeline": "ci", "pipeline_task": "test", "run_id": "42", "trigger": "ci",
        "attrs": {n.GEN_AI_RESPONSE_FINISH_REASONS: ["end_turn"], n.SERVER_ADDRESS: "api.anthropic.com"},
        "events": [{"name": n.EVENT_RETRY, "offset_ns": 500,
                    "attrs": {n.EVENT_ATTEMPT_STATUS: 429, n.EVENT_RETRY_WAIT: 0.25}}],
    }  # fmt: skip
    assert row["end_ns"] == 9_000
    (t,) = _rows(path, "tasks")
    assert (
        t["name"],
        t["task_id"],
        t["size"],
        t["outcome"],
        t["cost_pusd"],
        t["llm_calls"],
        t["retries"],
    ) == ("fix-bug", "t-1", "M", "success", 12_300_000_000, 1, 1)
    assert t["parent_id"] is None
    task_row = t
    assert json.loads(task_row["attrs"]) == {n.PROCESS_PID: os.getpid()}
    others = _rows(path, "spans")
    assert [
        (s["name"], s["operation"], s["agent_name"], s["status_code"], s["parent_id"]) for s in others
    ] == [
        ("invoke_agent coder", n.OP_INVOKE_AGENT, "coder", 0, sid[task]),
        ("run_tests", None, None, StatusCode.ERROR.value, sid[agent]),
    ]
    (rollup,) = _rows_unordered(path, "call_rollup")
    assert (rollup["task_id"], rollup["model"], rollup["calls"], rollup["cost_pusd"], rollup["retries"],
            rollup["loop_repeats"], rollup["cache_savings_pusd"]) == (
        "t-1", "claude-sonnet-4-5-20250929", 1, 12_300_000_000, 1, 1, 4_050_000_000)  # fmt: skip


def _rows_unordered(path: Path, table: str) -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    return [dict(r) for r in conn.execute(f"SELECT * FROM {table}")]


def test_rollup_equals_the_raw_rows(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    runs = [
        Run(f"t{i}", f"name{i % 3}", "SML"[i % 3], f"u{i % 4}", "team", "success",
            tuple(Call(0.001 * (j + 1), model=f"m{j % 2}", retries=j % 2) for j in range(i % 5 + 1)),
            ago_s=3600 * i)
        for i in range(20)
    ]  # fmt: skip
    record(path, runs)
    conn = sqlite3.connect(path)
    raw = conn.execute(
        "SELECT task_id, coalesce(response_model, request_model), start_ns / ?, count(*), sum(cost_pusd), "
        "sum(retries), sum(input_tokens) FROM llm_calls GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        (schema.HOUR_NS,),
    ).fetchall()
    rolled = conn.execute(
        "SELECT task_id, model, hour, calls, cost_pusd, retries, input_tokens FROM call_rollup "
        "ORDER BY 1, 2, 3"
    ).fetchall()
    assert rolled == raw
    assert sum(r[3] for r in rolled) == sum(len(r.calls) for r in runs) == 60


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b"hello, this is not a database at all" * 10,
            "is not an otel-tokens store (not an SQLite file); check --store/$OTEL_TOKENS_STORE",
        ),
        (
            "sqlite-other",
            "is an SQLite database but not an otel-tokens store; "
            "point --store or $OTEL_TOKENS_STORE at an otel-tokens store",
        ),
        ("newer", "has schema version 99, newer than this otel-tokens understands (1); upgrade otel-tokens"),
    ],
)
def test_foreign_or_newer_store_is_refused_and_left_alone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes | str, message: str
) -> None:
    path = tmp_path / "x.db"
    if content == "sqlite-other":
        other = sqlite3.connect(path)
        other.execute("CREATE TABLE notes (body TEXT)")
        other.commit()
        other.close()
    elif content == "newer":
        open_for_writing(path).close()
        conn = sqlite3.connect(path)
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        conn.commit()
        conn.close()
    else:
        assert isinstance(content, bytes)
        path.write_bytes(content)
    before = path.read_bytes()
    with pytest.raises(StoreError) as raised:
        open_for_reading(path)
    assert str(raised.value) == f"{path} {message}"
    exporter = SQLiteSpanExporter(path)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with caplog.at_level(logging.ERROR, logger="otel_tokens.store"):
        for _ in range(3):
            provider.get_tracer("t").start_span("x").end()  # never raises into the app
    provider.shutdown()
    assert [r.getMessage() for r in caplog.records] == [
        f"otel-tokens: local store disabled: {path} {message}"
    ]
    assert path.read_bytes() == before
    result = cli("report", "--store", str(path))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"otel-tokens: {path} {message}\n"


TIMED = [
    Run(f"ago-{label}", "timed", "S", "u", "t", "success", (Call(cost),), ago_s=seconds)
    for label, seconds, cost in [
        ("10m", 600, 0.01), ("50m", 3000, 0.02), ("70m", 4200, 0.04), ("3h", 10800, 0.08),
        ("30h", 108000, 0.16), ("40d", 40 * 86400, 0.32),
    ]
]  # fmt: skip


@pytest.fixture
def timed_store(tmp_path: Path) -> Path:
    path = tmp_path / "timed.db"
    record(path, TIMED, now_ns=time.time_ns())  # at use: a loaded suite reaches this minutes after import
    return path


def _cost(path: Path, *args: str) -> Decimal:
    result = cli("report", "--store", str(path), "--json", *args)
    assert result.returncode == 0, result.stderr
    return sum((Decimal(r["cost_usd"]) for r in json.loads(result.stdout, parse_float=Decimal)), Decimal(0))


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        ("1h", "0.03"),  # cuts inside an hour: the partial hour comes from the raw rows
        ("2h", "0.07"),
        ("4h", "0.15"),
        ("2d", "0.31"),
        ("60d", "0.63"),
        (None, "0.63"),
    ],
)
def test_since_windows_are_exact(timed_store: Path, since: str | None, expected: str) -> None:
    args = ("--since", since) if since else ()
    assert _cost(timed_store, *args) == Decimal(expected)


def test_since_accepts_a_date(timed_store: Path) -> None:
    from datetime import datetime, timedelta

    day = (datetime.fromtimestamp(time.time()) - timedelta(days=3)).date().isoformat()
    assert _cost(timed_store, "--since", day) == Decimal("0.31")


@pytest.mark.parametrize("tz", ["UTC", "Asia/Kolkata", "Australia/Adelaide", "America/St_Johns"])
def test_prune_names_the_instant_it_cuts_at_in_local_time(timed_store: Path, tz: str) -> None:
    """The cut is a whole UTC hour; in a half-hour zone that is HH:30 local, not HH:00."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    before = time.time_ns()
    dry = cli("prune", "--store", str(timed_store), "--older-than", "30d", "--dry-run", env=cli_env(TZ=tz))
    after = time.time_ns()
    assert dry.returncode == 0, dry.stderr
    said = dry.stdout.split("that started before ")[1].split(" from ")[0]
    hour = 3_600_000_000_000
    candidates = {
        datetime.fromtimestamp((t - 30 * 86_400_000_000_000) // hour * hour / 1e9, ZoneInfo(tz)).strftime(
            "%Y-%m-%d %H:%M"
        )
        for t in (before, after)
    }
    assert said in candidates


def test_prune_dry_run_takes_no_write_lock(timed_store: Path) -> None:
    """An app writing to the store holds the write lock; a dry run only reads, at once."""
    writer = sqlite3.connect(timed_store, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        dry = cli("prune", "--store", str(timed_store), "--older-than", "30d", "--dry-run", timeout=120)
        took = time.monotonic() - started
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would delete 1 LLM calls, 1 tasks and 0 other spans")
    assert took < 5


def test_prune_deletes_old_runs_and_keeps_reports_exact(timed_store: Path) -> None:
    dry = cli("prune", "--store", str(timed_store), "--older-than", "30d", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would delete 1 LLM calls, 1 tasks and 0 other spans that started before ")
    assert _cost(timed_store) == Decimal("0.63")
    done = cli("prune", "--store", str(timed_store), "--older-than", "30d", "--vacuum")
    assert done.stdout.startswith("deleted 1 LLM calls, 1 tasks and 0 other spans")
    assert _cost(timed_store) == Decimal("0.31")
    again = cli("prune", "--store", str(timed_store), "--older-than", "2h")
    assert again.stdout.startswith("deleted ")
    conn = sqlite3.connect(timed_store)
    assert conn.execute("SELECT sum(calls), sum(cost_pusd) FROM call_rollup").fetchone() == conn.execute(
        "SELECT count(*), sum(cost_pusd) FROM llm_calls").fetchone()  # fmt: skip
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
