"""Soft caps as users see them, the ledger's contract on each backend, ledger trouble, models rules,
per-task budgets across subprocesses, and `budgets status`."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from decimal import Decimal
from typing import Any

import openai
import pytest

import otel_tokens
from otel_tokens import names as n
from otel_tokens.budgets.ledger import Charge, Hold
from otel_tokens.budgets.ledgers import open_ledger
from otel_tokens.fakellm import Reply
from tests.budgets.test_concurrency import INPUT, MAX_TOKENS, MODEL, MSGS, E
from tests.conftest import REPO, Telemetry


def _client(fake: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)


def _call(fake: Any, model: str = MODEL) -> None:
    _client(fake).chat.completions.create(model=model, messages=MSGS, max_tokens=MAX_TOKENS)


def test_a_soft_threshold_is_a_warning_a_span_event_a_counter_and_the_gauge(
    fake: Any, telemetry: Telemetry, use_budgets: Any, caplog: pytest.LogCaptureFixture
) -> None:
    use_budgets(
        f"budgets:\n  - {{name: team-soft, match: {{team: platform}}, limit_usd: {E * 4}, period: month,"
        " warn_at: [0.5, 1.0]}\n"
    )
    fake.enqueue(*[Reply.ok(input_tokens=INPUT, output_tokens=MAX_TOKENS) for _ in range(5)])
    with caplog.at_level(logging.WARNING, "otel_tokens"), otel_tokens.task("t", team="platform"):
        for _ in range(5):
            _call(fake)  # a soft cap never blocks: the fifth call goes past 100%
    spans = telemetry.llm_spans()
    events = [[(e.name, dict(e.attributes or {})) for e in s.events] for s in spans]
    assert [len(e) for e in events] == [0, 1, 0, 1, 0]  # on the 2nd (50%) and the 4th (100%) call
    name, attrs = events[1][0]
    assert name == n.EVENT_BUDGET_THRESHOLD
    assert attrs[n.BUDGET_NAME] == "team-soft" and attrs[n.BUDGET_SCOPE] == "team=platform"
    assert attrs[n.BUDGET_THRESHOLD] == 0.5
    assert attrs[n.BUDGET_SPENT] == pytest.approx(float(E * 2), abs=1e-9)
    assert attrs[n.BUDGET_LIMIT] == pytest.approx(float(E * 4))
    assert n.BUDGET_RESETS_AT in attrs
    lines = [r.getMessage() for r in caplog.records if "crossed" in r.getMessage()]
    assert len(lines) == 2 and "'team-soft' (team=platform) crossed 50% of its limit" in lines[0]
    assert "the period ends" in lines[0]
    assert telemetry.points(n.M_BUDGET_CROSSINGS) == [
        ({n.BUDGET_NAME: "team-soft", n.BUDGET_THRESHOLD: "0.5"}, 1),
        ({n.BUDGET_NAME: "team-soft", n.BUDGET_THRESHOLD: "1.0"}, 1),
    ]
    assert telemetry.points(n.M_BUDGET_UTILIZATION) == [({n.BUDGET_NAME: "team-soft"}, pytest.approx(1.25))]
    assert {s.attributes[n.OUTCOME] for s in spans} == {"success"}


def test_the_ledger_contract_holds_on_each_backend(ledger_url: str) -> None:
    ledger = open_ledger(ledger_url)
    key = ("b", "all", "d2026-12-03")
    now = time.time()
    far = now + 86400
    assert ledger.reserve("otherhost:1:a", [Hold(key, 60, 100, far)], now + 10, now) is None
    refusal = ledger.reserve("otherhost:1:b", [Hold(key, 50, 100, far)], now + 10, now)
    assert refusal is not None and (refusal.index, refusal.spent, refusal.held) == (0, 0, 60)
    # another host's process died holding 60: its hold expires after its TTL, not before
    assert ledger.reserve("otherhost:2:c", [Hold(key, 50, 100, far)], now + 10, now + 9) is not None
    assert ledger.reserve("otherhost:2:c", [Hold(key, 50, 100, far)], now + 30, now + 11) is None
    assert ledger.holders(key) == ["otherhost:2:c"]
    got = ledger.settle("otherhost:2:c", [Charge(key, 40, (50, 100), far)], now + 12)
    assert [(s.spent, s.crossed) for s in got] == [(40, 0)]
    got = ledger.settle("x:3:d", [Charge(key, 10, (50, 100), far)], now + 13)
    assert [(s.spent, s.crossed) for s in got] == [(50, 0b01)]
    got = ledger.settle("x:3:e", [Charge(key, 60, (50, 100), far)], now + 14)
    assert [(s.spent, s.crossed) for s in got] == [(110, 0b10)]  # 50% was reported already
    # an all-or-nothing reservation: one budget full means no hold on the other either
    other = ("c", "all", "d2026-12-03")
    refusal = ledger.reserve("x:3:f", [Hold(other, 5, 100, far), Hold(key, 5, 100, far)], now + 30, now + 15)
    assert refusal is not None and refusal.index == 1
    assert ledger.holders(other) == []
    ledger.release("x:3:f", [other, key])
    rows = ledger.rows("b", "d2026-12-03")
    assert [(r.scope, r.spent, r.held) for r in rows] == [("all", 110, 0)]
    ledger.close()


def test_a_ledger_that_is_down_allows_or_blocks_as_each_budget_says(
    fake: Any,
    telemetry: Telemetry,
    use_budgets: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("OTEL_TOKENS_LEDGER", "redis://127.0.0.1:1/0")  # nothing listens there
    use_budgets(
        "budgets:\n"
        "  - {name: lenient, match: {team: a}, limit_usd: 1, period: day, action: block}\n"
        "  - {name: strict, match: {team: b}, limit_usd: 1, period: day, action: block,"
        " on_ledger_error: block}\n"
    )
    with caplog.at_level(logging.WARNING, "otel_tokens"):
        with otel_tokens.task("t", team="a"):
            _call(fake)
            _call(fake)
        with otel_tokens.task("t", team="b"), pytest.raises(otel_tokens.BudgetExceeded) as info:
            _call(fake)
    assert len(fake.requests) == 2
    assert info.value.budget == "strict" and info.value.spent_usd is None
    assert "ledger" in str(info.value) and "on_ledger_error" in str(info.value)
    loud = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(loud) == 2  # one line for allow, one for block: not one per call
    errors = {a[n.BUDGET_NAME]: v for a, v in telemetry.points(n.M_BUDGET_LEDGER_ERRORS)}
    assert errors["lenient"] >= 2 and errors["strict"] == 1


def test_a_models_rule_warns_or_blocks(
    fake: Any, telemetry: Telemetry, use_budgets: Any, caplog: pytest.LogCaptureFixture
) -> None:
    use_budgets(
        "budgets: []\nmodels:\n"
        "  - {match: {task_size: S}, deny: ['gpt-4o'], action: block}\n"
        "  - {match: {task_size: M}, deny: ['gpt-4o*'], action: warn}\n"
    )
    with otel_tokens.task("t", size="S"):
        _call(fake, "gpt-4o-mini")
        with pytest.raises(otel_tokens.ModelDenied) as info:
            _call(fake, "gpt-4o")
    assert "denies 'gpt-4o'" in str(info.value) and "budgets.yaml:3" in str(info.value)
    with caplog.at_level(logging.WARNING, "otel_tokens"), otel_tokens.task("t", size="M"):
        _call(fake, "gpt-4o")
        _call(fake, "gpt-4o")
    assert len(fake.requests) == 3
    assert len([r for r in caplog.records if "denies" in r.getMessage()]) == 1


CHILD = """
import openai, otel_tokens
otel_tokens.instrument()
c = openai.OpenAI(base_url={url!r}, api_key="sk-test", max_retries=0)
try:
    c.chat.completions.create(model="gpt-4o-mini", messages={msgs!r}, max_tokens={max_tokens})
    print("admitted")
except otel_tokens.BudgetExceeded as exc:
    print("blocked", exc.scope)
"""


def test_a_per_task_budget_includes_the_task_s_subprocesses(
    fake: Any, telemetry: Telemetry, use_budgets: Any
) -> None:
    use_budgets(
        f"budgets:\n  - {{name: per-run, match: {{}}, limit_usd: {E * Decimal('2.5')}, period: task,"
        " action: block}\n"
    )
    fake.enqueue(*[Reply.ok(input_tokens=INPUT, output_tokens=MAX_TOKENS) for _ in range(3)])
    script = CHILD.format(url=fake.openai_base_url, msgs=MSGS, max_tokens=MAX_TOKENS)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with otel_tokens.task("job") as task:
        _call(fake)  # the parent spends E of 2.5 E
        outs = [
            subprocess.run(
                [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
            )
            for _ in range(2)
        ]
    assert [o.stdout.strip() for o in outs] == ["admitted", f"blocked task_id={task.id}"], [
        o.stderr for o in outs
    ]
    assert len(fake.requests) == 2  # the child did not get a fresh allowance


@pytest.mark.parametrize(
    ("spent", "since", "now", "end", "expected"),
    [
        (100, 0, 10, 1000, "exhausted"),
        (0, 0, 10, 1000, None),
        (25, 0, 100, 1000, "1970-01-01T00:06+00:00"),  # 25% in 100 s: the rest 300 s later
        (25, 0, 100, 350, None),  # ... but the period ends first
        (25, 50, 100, None, "1970-01-01T00:04+00:00"),  # a task run: its own start
    ],
)
def test_projected_exhaustion_is_the_period_s_burn_rate_extended(
    spent: int, since: float, now: float, end: float | None, expected: str | None
) -> None:
    from otel_tokens.budgets.policy import Budget
    from otel_tokens.cli.budgets import _projected

    budget = Budget("b", Decimal("0.0000001"))  # 100 nano-USD
    assert _projected(budget, spent, since, now, end) == expected


def test_budgets_status_reads_the_ledger(fake: Any, telemetry: Telemetry, use_budgets: Any) -> None:
    path = use_budgets(
        f"budgets:\n  - {{name: alice-daily, match: {{user: alice}}, limit_usd: {E * 10}, period: day,"
        " action: block}\n"
        "  - {name: quiet, match: {team: nobody}, limit_usd: 5, period: month}\n"
    )
    fake.enqueue(*[Reply.ok(input_tokens=INPUT, output_tokens=MAX_TOKENS) for _ in range(2)])
    with otel_tokens.task("t", user="alice"):
        _call(fake)
        _call(fake)
    done = subprocess.run(
        [sys.executable, "-m", "otel_tokens", "budgets", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "OTEL_TOKENS_BUDGETS": str(path)},
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(r["budget"], r["scope"], r["action"]) for r in rows] == [
        ("alice-daily", "user=alice", "block"),
        ("quiet", "-", "warn"),
    ]
    alice = rows[0]
    assert alice["spent_usd"] == pytest.approx(float(E * 2), abs=1e-9)
    assert alice["limit_usd"] == pytest.approx(float(E * 10))
    assert alice["percent"] == 20.0 and alice["reserved_usd"] == 0
    assert alice["period_end"].endswith("T00:00+00:00") and "projected_exhaustion" in alice
    table = subprocess.run(
        [sys.executable, "-m", "otel_tokens", "budgets", "status", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert table.returncode == 0 and "alice-daily" in table.stdout and "20.0" in table.stdout


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="needs docker-compose (scripts/test installs it)"
)
def test_docker_compose_has_the_redis_ledger() -> None:
    done = subprocess.run(
        ["docker-compose", "config", "-q"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    services = subprocess.run(
        ["docker-compose", "config", "--services"], cwd=REPO, capture_output=True, text=True, timeout=60
    ).stdout.split()
    assert "redis" in services
