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


def _alice_runs_claude_code(
    fake: Any, tmp_path: Path, budget: str, task: str
) -> tuple[subprocess.CompletedProcess[str], dict[str, str], Path]:
    """``otel-tokens run --task TASK --user alice`` of Claude Code under a one-budget file; the
    finished run, its environment and home. The store is tmp_path/store.db."""
    home = tmp_path / "home"
    home.mkdir()
    run = RUNS["claude_code"](fake, home)
    fake.enqueue(*run.replies)
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(f"budgets:\n  - {budget}\n")
    env = clean_env(home, {**run.env, "OTEL_TOKENS_STORE": str(tmp_path / "store.db")})
    env["OTEL_TOKENS_BUDGETS"] = str(budgets)
    done = otel_tokens_run(["--task", task, "--user", "alice", "--", *run.command], env, home)
    return done, env, home


def test_a_users_agent_spend_counts_against_their_budget(fake: Any, tmp_path: Path) -> None:
    """A warn budget matching the user warns for the agent's calls (log line and span event)."""
    store = tmp_path / "store.db"
    done, _, _ = _alice_runs_claude_code(
        fake, tmp_path, "{name: alice-daily, match: {user: alice}, limit_usd: 0.005, period: day,"
        " warn_at: [0.5, 1.0], action: warn}", "budgeted",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    want = oracle(fake)
    assert want.cost > Decimal("0.005")  # both thresholds are crossed by the two agent calls
    assert "budget 'alice-daily' (user=alice) crossed 50% of its limit" in done.stderr, done.stderr
    assert "crossed 100% of its limit" in done.stderr
    with sqlite3.connect(store) as db:
        events = [
            json.loads(e) for (e,) in db.execute("SELECT events FROM llm_calls WHERE events IS NOT NULL")
        ]
    crossed = [ev["attrs"]["otel_tokens.budget.threshold"] for evs in events for ev in evs]
    assert sorted(crossed) == [0.5, 1.0]


def test_a_block_budget_exhausted_by_an_agent_refuses_the_next_sdk_call(fake: Any, tmp_path: Path) -> None:
    """A block budget cannot stop the agent (it has already called), but it refuses what comes next."""
    done, env, home = _alice_runs_claude_code(
        fake, tmp_path, "{name: alice-cap, match: {user: alice}, limit_usd: 0.005, period: day,"
        " action: block}", "capped",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # the agent's calls went through: we heard of them after
    sdk = (
        "import anthropic; anthropic.Anthropic().messages.create(model='claude-sonnet-4-6', max_tokens=8,"
        " messages=[{'role': 'user', 'content': 'hi'}])"
    )
    requests_before = len(fake.requests)
    after = otel_tokens_run(
        ["--task", "capped", "--user", "alice", "--", sys.executable, "-c", sdk], env, home
    )
    assert after.returncode != 0
    assert "BudgetExceeded" in after.stderr and "alice-cap" in after.stderr, after.stderr
    assert len(fake.requests) == requests_before  # refused before anything was sent
