"""The real coding-agent CLIs through `otel-tokens run` into the real collector and Prometheus:
the collector alone (collector/agents.yaml: OTTL normalisation, generated genai-prices rates,
signal_to_metrics) makes otel_tokens.cost equal to the sum of the calls' genai-prices costs."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.agents.agent_runs import RUNS, oracle
from tests.agents.conftest import clean_env, otel_tokens_run
from tests.stack.conftest import Stack
from tests.stack.test_collector import wait_until

pytestmark = [pytest.mark.stack, pytest.mark.slow]


@pytest.mark.parametrize("source", sorted(RUNS))
def test_agent_spend_through_the_collector(source: str, stack: Stack, fake: Any, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    run = RUNS[source](fake, home)
    fake.enqueue(*run.replies)
    task = f"collector-{source}"
    env = clean_env(home, {**run.env, "OTEL_EXPORTER_OTLP_ENDPOINT": stack.otlp_endpoint})
    args = ["--task", task, "--size", "L", "--user", "bob", "--team", "infra", "--"]
    done = otel_tokens_run([*args, *run.command], env, home)
    assert done.returncode == 0, done.stderr
    want = oracle(fake)
    assert want.calls >= 2
    sel = f'otel_tokens_task_name="{task}"'
    cost = f"sum(otel_tokens_cost_USD_total{{{sel}}})"
    calls = f"sum(otel_tokens_calls_total{{{sel}}})"
    wait_until(lambda: stack.value(calls) == want.calls and stack.value(cost) is not None, 30)
    got = stack.value(cost)
    assert got is not None
    assert abs(Decimal(repr(got)) - want.cost) <= want.cost * Decimal("1e-9"), (got, want.cost)
    assert stack.value(calls) == want.calls
    tokens = {
        s["metric"]["otel_tokens_token_type"]: float(s["value"][1])
        for s in stack.query(f"sum by (otel_tokens_token_type) (otel_tokens_tokens_total{{{sel}}})")
    }
    assert tokens["input"] == want.input_tokens
    assert tokens["output"] == want.output_tokens
    assert tokens.get("cache_read", 0) == want.cache_read_tokens
    (series,) = stack.query(f"otel_tokens_cost_USD_total{{{sel}}}")
    labels = series["metric"]
    assert labels["otel_tokens_source"] == source
    assert (labels["user_id"], labels["otel_tokens_team"], labels["otel_tokens_task_size"]) == (
        "bob",
        "infra",
        "L",
    )
    assert labels["otel_tokens_cost_status"] == "priced"
    assert not {
        k for k in labels if "session" in k or "conversation" in k or (k.endswith("_id") and k != "user_id")
    }


def test_agents_own_metrics_carry_no_session_ids(stack: Stack) -> None:
    """Runs above exported the agents' own metrics too; none reaches Prometheus with an id label."""
    wait_until(lambda: bool(stack.query('count({__name__=~"claude_code_.*|codex_.*|gemini_cli_.*"})')), 20)
    native = stack.query('{__name__=~"claude_code_.*|codex_.*|gemini_cli_.*"}')
    assert native, "no agent-native metrics arrived: the check below would prove nothing"
    ids = {k for s in native for k in s["metric"] if k in ("session_id", "conversation_id", "prompt_id")}
    assert ids == set()


def test_claude_pointed_at_the_collector_without_otel_tokens_run_is_counted(
    stack: Stack, fake: Any, tmp_path: Path
) -> None:
    """An engineer who only sets Claude Code's telemetry variables is counted under their user."""
    home = tmp_path / "home"
    home.mkdir()
    run = RUNS["claude_code"](fake, home)
    fake.enqueue(*run.replies)
    env = clean_env(
        home,
        {
            **run.env,
            "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": stack.otlp_endpoint,
            "OTEL_RESOURCE_ATTRIBUTES": "user.id=carol,otel_tokens.team=search",
        },
    )
    import subprocess

    done = subprocess.run(run.command, env=env, cwd=home, capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, done.stderr
    want = oracle(fake)
    sel = 'user_id="carol",otel_tokens_source="claude_code"'
    wait_until(lambda: stack.value(f"sum(otel_tokens_calls_total{{{sel}}})") == want.calls, 30)
    got = stack.value(f"sum(otel_tokens_cost_USD_total{{{sel}}})")
    assert got is not None and abs(Decimal(repr(got)) - want.cost) <= want.cost * Decimal("1e-9")
    (series,) = stack.query(f"otel_tokens_cost_USD_total{{{sel}}}")
    assert series["metric"]["otel_tokens_team"] == "search"
    assert "otel_tokens_task_name" not in series["metric"]
