"""One task, two kinds of caller: a Python SDK agent that also starts `claude -p` is one task
with both kinds of call and one total, on the embedded default."""

from __future__ import annotations

import json
import sqlite3
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from otel_tokens.fakellm import Reply
from tests.agents.agent_runs import oracle
from tests.agents.conftest import agent_bin, clean_env, otel_tokens_run

pytestmark = pytest.mark.slow

SCRIPT = """
import subprocess, sys
import anthropic

client = anthropic.Anthropic()
messages = [{"role": "user", "content": "plan"}]
client.messages.create(model="claude-sonnet-4-6", max_tokens=64, messages=messages)
sys.exit(subprocess.run([sys.argv[1], "-p", "list the txt files", "--model", "claude-sonnet-4-6"]).returncode)
"""


def test_sdk_agent_and_claude_child_are_one_task(fake: Any, tmp_path: Path) -> None:
    claude = agent_bin("claude")
    home = tmp_path / "home"
    home.mkdir()
    script = tmp_path / "agent.py"
    script.write_text(SCRIPT)
    fake.enqueue(
        Reply.ok(1200, 80, text="plan: look for txt files"),  # the SDK call
        Reply.ok(
            3000, 40, cache_read=2000, cache_write=500, tool_name="Glob", tool_args='{"pattern":"*.txt"}'
        ),
        Reply.ok(3100, 12, cache_read=2500, text="done"),
    )
    store = tmp_path / "store.db"
    env = clean_env(
        home,
        {
            "ANTHROPIC_BASE_URL": fake.anthropic_base_url,
            "ANTHROPIC_API_KEY": "sk-test",
            "OTEL_TOKENS_STORE": str(store),
        },
    )
    done = otel_tokens_run(
        ["--task", "mixed", "--size", "S", "--", sys.executable, str(script), claude], env, home
    )
    assert done.returncode == 0, done.stderr
    want = oracle(fake)
    assert want.calls >= 3
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT attrs, task_id, cost_pusd FROM llm_calls").fetchall()
        tasks = db.execute(
            "SELECT task_id, cost_pusd, llm_calls FROM tasks WHERE parent_id IS NULL"
        ).fetchall()
    sources = sorted((json.loads(a or "{}").get("otel_tokens.source", "sdk")) for a, _, _ in rows)
    assert sources == ["claude_code"] * (want.calls - 1) + ["sdk"]
    ((task_id, task_cost, task_calls),) = tasks
    assert {t for _, t, _ in rows} == {task_id}
    assert task_calls == want.calls
    assert Decimal(task_cost) / 10**12 == want.cost
    assert Decimal(sum(c for _, _, c in rows)) / 10**12 == want.cost
