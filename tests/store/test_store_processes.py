"""Real processes writing to one store: 8 writers at once, a writer killed mid-run, and a
subprocess whose spans join its parent's trace."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_tokens import names as n
from otel_tokens.store.exporter import SQLiteSpanExporter
from tests.store_helpers import REPO, Call, Recorder, Run, cli, cli_env

WRITER = str(Path(__file__).parents[1] / "store_writer.py")
PICO_PER_CALL = 1_000_000_000  # each writer call costs 0.001 USD


def _writer(db: Path, tag: str, calls: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WRITER, str(db), tag, str(calls), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(), cwd=REPO,
    )  # fmt: skip


def test_eight_processes_write_sixteen_thousand_calls_without_loss(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    start = time.monotonic()
    writers = [_writer(db, f"w{i}", 2000) for i in range(8)]
    results = [(w.wait(timeout=120), *w.communicate()) for w in writers]
    elapsed = time.monotonic() - start
    assert [(code, err) for code, _, err in results] == [(0, "")] * 8  # no "database is locked", no warning
    conn = sqlite3.connect(db)
    stored = conn.execute(
        "SELECT count(*), count(DISTINCT span_id), sum(cost_pusd) FROM llm_calls"
    ).fetchone()
    assert stored == (16_000, 16_000, 16_000 * PICO_PER_CALL)
    per_writer = dict(conn.execute("SELECT task_id, count(*) FROM llm_calls GROUP BY task_id").fetchall())
    assert per_writer == {f"w{i}": 2000 for i in range(8)}
    assert conn.execute("SELECT sum(calls), sum(cost_pusd) FROM call_rollup").fetchone() == (
        16_000, 16_000 * PICO_PER_CALL)  # fmt: skip
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert elapsed < 60, f"8 x 2000 calls took {elapsed:.1f}s"


def test_a_killed_writer_loses_at_most_its_unflushed_batch_and_corrupts_nothing(tmp_path: Path) -> None:
    db = tmp_path / "killed.db"
    victim = _writer(db, "victim", 0, "--forever")
    neighbour = _writer(db, "neighbour", 3000)
    assert victim.stdout is not None
    flushed = 0
    for line in victim.stdout:  # wait until the victim has committed a few batches
        flushed = int(line.split()[1])
        if flushed >= 500:
            break
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert neighbour.wait(timeout=120) == 0
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    stored = conn.execute("SELECT count(*) FROM llm_calls WHERE task_id = 'victim'").fetchone()[0]
    assert stored >= flushed  # everything flushed before the kill is there
    # Whatever was committed is whole: the rollup agrees with the raw rows, no half-written row.
    for task in ("victim", "neighbour"):
        raw = conn.execute(
            "SELECT count(*), sum(cost_pusd) FROM llm_calls WHERE task_id = ? AND cost_pusd IS NOT NULL "
            "AND input_tokens IS NOT NULL AND iteration IS NOT NULL", (task,)).fetchone()  # fmt: skip
        rolled = conn.execute(
            "SELECT sum(calls), sum(cost_pusd) FROM call_rollup WHERE task_id = ?", (task,)
        ).fetchone()
        assert raw == rolled
    assert rolled == (3000, 3000 * PICO_PER_CALL)
    iterations = [
        r[0] for r in conn.execute("SELECT iteration FROM llm_calls WHERE task_id = 'victim' ORDER BY 1")
    ]
    assert iterations == list(range(1, stored + 1))  # committed batches are a prefix, no gaps
    # The store keeps working for the next process and for the CLI.
    assert _writer(db, "after", 100).wait(timeout=60) == 0
    assert cli("report", "--store", str(db), "--json").returncode == 0


def test_spans_of_a_subprocess_join_the_parent_tree(tmp_path: Path) -> None:
    db = tmp_path / "tree.db"
    rec = Recorder(db)
    run = Run("parent-task", "orchestrate", "M", "u", "t", "success", ())
    now = time.time_ns()
    attrs = {n.GEN_AI_OPERATION_NAME: n.OP_INVOKE_WORKFLOW, n.GEN_AI_WORKFLOW_NAME: "orchestrate",
             n.TASK_ID: "parent-task"}  # fmt: skip
    with rec.span("invoke_workflow orchestrate", attrs, now, now + 10**10):
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier)
        rec.call(Call(0.5), run, now + 1000, 1)
        child = _writer(db, "parent-task", 3, "--traceparent", carrier["traceparent"])
        assert child.wait(timeout=60) == 0
    rec.close()
    out = cli("trace", "parent-task", "--store", str(db)).stdout
    lines = out.splitlines()
    proc = next(line for line in lines if "child-process" in line)
    assert f"(subprocess pid {child.pid})" in proc and "$0.003" in proc and "3 calls" in proc
    assert lines[0].endswith("$0.503  4 LLM calls")
    assert os.getpid() != child.pid


def _export_one(exporter: SQLiteSpanExporter, tag: str) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    attrs = {n.GEN_AI_OPERATION_NAME: n.OP_CHAT, n.TASK_ID: tag, n.GEN_AI_USAGE_COST: 0.25}
    provider.get_tracer(n.SCOPE).start_span("chat", attributes=attrs).end()


def test_an_exporter_inherited_across_fork_opens_its_own_connection(tmp_path: Path) -> None:
    exporter = SQLiteSpanExporter(tmp_path / "fork.db")
    _export_one(exporter, "parent-before")  # the parent's connection is open now
    child = multiprocessing.get_context("fork").Process(target=_export_one, args=(exporter, "child"))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    _export_one(exporter, "parent-after")
    conn = sqlite3.connect(tmp_path / "fork.db")
    rows = conn.execute("SELECT task_id, cost_pusd FROM llm_calls ORDER BY rowid").fetchall()
    assert sorted(rows) == [("child", 250_000_000_000), ("parent-after", 250_000_000_000),
                            ("parent-before", 250_000_000_000)]  # fmt: skip
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
