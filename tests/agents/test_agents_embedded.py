"""The real Claude Code, Codex and Gemini CLIs through `otel-tokens run` on the embedded default:
the report's task row has the exact calls, tokens and cost (genai-prices over what was served)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.agents.agent_runs import RUNS, oracle
from tests.agents.conftest import clean_env, otel_tokens_run

pytestmark = pytest.mark.slow


def _report(store: Path, *args: str) -> Any:
    out = subprocess.run(
        [sys.executable, "-m", "otel_tokens", "report", "--json", *args],
        env={"OTEL_TOKENS_STORE": str(store), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return json.loads(out.stdout)


@pytest.mark.parametrize("source", sorted(RUNS))
def test_agent_run_is_one_task_with_exact_spend(source: str, fake: Any, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    run = RUNS[source](fake, home)
    fake.enqueue(*run.replies)
    store = tmp_path / "store.db"
    env = clean_env(home, {**run.env, "OTEL_TOKENS_STORE": str(store)})
    args = ["--task", f"fix-{source}", "--size", "M", "--user", "alice", "--team", "platform"]
    done = otel_tokens_run([*args, "--", *run.command], env, home)
    assert done.returncode == 0, done.stderr
    want = oracle(fake)
    assert want.calls >= 2, [r.path for r in fake.requests]
    (row,) = _report(store)
    assert row["task"] == f"fix-{source}"
    assert row["calls"] == want.calls
    assert row["input_tokens"] == want.input_tokens
    assert row["output_tokens"] == want.output_tokens
    assert row["cache_read_tokens"] == want.cache_read_tokens
    assert row["unpriced_calls"] == 0
    assert Decimal(str(row["cost_usd"])) == want.cost
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT attrs, user_id, team, task_size, cost_pusd FROM llm_calls").fetchall()
        (task_cost, task_id) = db.execute("SELECT cost_pusd, task_id FROM tasks").fetchone()
    assert {json.loads(a)["otel_tokens.source"] for a, *_ in rows} == {source}
    assert {(u, t, s) for _, u, t, s, _ in rows} == {("alice", "platform", "M")}
    assert Decimal(task_cost) / 10**12 == want.cost  # the task span's rollup counts the agent's calls
    (by_agent,) = _report(store, "--by", "agent")
    assert (by_agent["agent"], by_agent["calls"]) == (source, want.calls)
    traced = subprocess.run(
        [sys.executable, "-m", "otel_tokens", "trace", task_id],
        env={"OTEL_TOKENS_STORE": str(store), "PATH": "/usr/bin:/bin", "COLUMNS": "200"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert traced.returncode == 0, traced.stderr
    trace = traced.stdout
    assert trace.count(f"via {source}") == want.calls, trace
    if source == "claude_code":  # the agent's own figure is kept apart from ours
        assert all("otel_tokens.agent.cost_usd" in json.loads(a) for a, *_ in rows)
