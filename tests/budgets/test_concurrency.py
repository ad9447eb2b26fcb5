"""Exact under concurrency, with each ledger: many processes, one budget, real HTTP.

Every call here costs exactly its estimate E (the fake answers with input = the request's
bytes and output = max_tokens), so with a limit of 137.5 E exactly 137 calls fit, whatever
the interleaving: more admitted means the ledger let spend past the limit, fewer means it
refused calls that fit.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import otel_tokens
from otel_tokens import names as n
from otel_tokens.budgets.ledgers import open_ledger
from otel_tokens.budgets.policy import period_bounds, to_nano
from otel_tokens.fakellm import Reply
from tests.budgets.budget_worker import MAX_TOKENS, MSGS
from tests.conftest import REPO, Telemetry

MODEL = "gpt-4o-mini"
PROCESSES = 8
CALLS = 50
INPUT = len(json.dumps({"messages": MSGS, "max_tokens": MAX_TOKENS}, ensure_ascii=False).encode())


def _price(inp: int, out: int) -> Decimal:
    import genai_prices

    usage = genai_prices.Usage(input_tokens=inp, output_tokens=out)
    total: Decimal = genai_prices.calc_price(usage, MODEL, provider_id="openai").total_price
    return total


E = _price(INPUT, MAX_TOKENS)


def _budget_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "budgets.yaml"
    path.write_text(text)
    return path


def _run_workers(fake: Any, tmp_path: Path, budgets: Path, count: int, calls: int) -> list[dict[str, Any]]:
    go = tmp_path / "go"
    env = {
        **os.environ,
        "OTEL_TOKENS_BUDGETS": str(budgets),
        "OTEL_TOKENS_USER": "alice",
        "PYTHONPATH": str(REPO),
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.budgets.budget_worker",
                fake.openai_base_url,
                str(calls),
                str(calls),
                str(go),
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("go.*.ready"))) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    go.touch()  # every process is imported and instrumented: start the race
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def _today() -> str:
    return period_bounds("day", datetime.now(UTC), UTC)[0]


@pytest.mark.slow
def test_many_processes_never_spend_past_a_user_budget(fake: Any, tmp_path: Path, ledger_url: str) -> None:
    limit = E * Decimal("137.5")
    budgets = _budget_file(
        tmp_path,
        f"budgets:\n  - {{name: alice-daily, match: {{user: alice}}, limit_usd: {limit}, period: day,"
        " action: block}\n",
    )
    fake.latency = 0.02  # calls overlap: reservations are held while others check
    fake.enqueue(*[Reply.ok(input_tokens=INPUT, output_tokens=MAX_TOKENS) for _ in range(PROCESSES * CALLS)])
    started = time.monotonic()
    try:
        results = _run_workers(fake, tmp_path, budgets, PROCESSES, CALLS)
    finally:
        fake.latency = 0.0
    elapsed = time.monotonic() - started
    admitted = sum(r["admitted"] for r in results)
    blocked = sum(r["blocked"] for r in results)
    assert [e for r in results for e in r["errors"]] == []
    ledger = open_ledger(ledger_url)
    (row,) = ledger.rows("alice-daily", _today())
    ledger.close()
    print(
        f"\n{ledger_url.split(':')[0]}: {PROCESSES}x{CALLS} calls, limit ${limit} = 137.5 x ${E}:"
        f" admitted {admitted}, blocked {blocked}, settled ${Decimal(row.spent) / Decimal(10**9)},"
        f" held {row.held}, per process {[r['admitted'] for r in results]}, {elapsed:.1f}s"
        f" (calling: {max(r['race_s'] for r in results):.1f}s)"
    )
    assert (admitted, blocked) == (137, PROCESSES * CALLS - 137)
    assert len(fake.requests) == 137  # refused calls never reached the provider
    assert row.spent == 137 * to_nano(E) <= to_nano(limit)
    assert row.held == 0


@pytest.mark.slow
def test_each_threshold_is_reported_once_a_period_across_processes(
    fake: Any, tmp_path: Path, ledger_url: str
) -> None:
    budgets = _budget_file(
        tmp_path,
        f"budgets:\n  - {{name: alice-soft, match: {{user: alice}}, limit_usd: {E * 40}, period: day,"
        " warn_at: [0.25, 0.5, 0.75, 1.0], action: warn}\n",
    )
    fake.enqueue(*[Reply.ok(input_tokens=INPUT, output_tokens=MAX_TOKENS) for _ in range(80)])
    results = _run_workers(fake, tmp_path, budgets, PROCESSES, 10)  # 80 calls: 200% of the limit
    assert sum(r["admitted"] for r in results) == 80
    events = sorted(e for r in results for e in r["events"])
    assert events == [0.25, 0.5, 0.75, 1.0]
    counted: Counter[str] = Counter()
    for r in results:
        counted.update(r["crossings"])
    assert dict(counted) == {"0.25": 1, "0.5": 1, "0.75": 1, "1.0": 1}
    warnings = [w for r in results for w in r["warnings"]]
    assert len(warnings) == 4 and all("'alice-soft' (user=alice)" in w for w in warnings)


def test_a_killed_process_s_reservation_is_released_and_spend_stays_exact(
    fake: Any, telemetry: Telemetry, tmp_path: Path, ledger_url: str, use_budgets: Any
) -> None:
    small = (10, 10)
    c = _price(*small)
    assert c < E / 2
    budgets = use_budgets(
        f"budgets:\n  - {{name: alice-daily, match: {{user: alice}}, limit_usd: {E * Decimal('1.5')},"
        " period: day, action: block}\n"
    )
    fake.enqueue(
        Reply.ok(input_tokens=small[0], output_tokens=small[1]),
        Reply.ok(input_tokens=small[0], output_tokens=small[1], latency=8.0),  # the victim's call
        Reply.ok(input_tokens=small[0], output_tokens=small[1]),
    )
    import openai

    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)
    with otel_tokens.task("t", user="alice"):
        client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=MAX_TOKENS)
    go = tmp_path / "go"
    go.touch()
    victim = subprocess.Popen(
        [sys.executable, "-m", "tests.budgets.budget_worker", fake.openai_base_url, "1", "1", str(go)],
        env={
            **os.environ,
            "OTEL_TOKENS_BUDGETS": str(budgets),
            "OTEL_TOKENS_USER": "alice",
            "PYTHONPATH": str(REPO),
        },
        stdout=subprocess.DEVNULL,
    )
    ledger = open_ledger(ledger_url)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(fake.requests) < 2:
        time.sleep(0.05)
    assert len(fake.requests) == 2  # the victim's call is in flight, its estimate held
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    (row,) = ledger.rows("alice-daily", _today())
    assert (row.spent, row.held) == (to_nano(c), to_nano(E))  # the dead process still holds E
    with otel_tokens.task("t", user="alice"):  # needs the dead hold gone: c + E + E > 1.5 E
        client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=MAX_TOKENS)
    (row,) = ledger.rows("alice-daily", _today())
    ledger.close()
    assert (row.spent, row.held) == (2 * to_nano(c), 0)  # nothing lost, nothing counted twice
    assert [s.attributes[n.OUTCOME] for s in telemetry.llm_spans()] == ["success", "success"]
