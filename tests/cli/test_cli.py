"""`otel-tokens report`, `top` and `trace` through a subprocess over a store recorded by the
real OTel SDK. Expected figures are computed here from the recorded calls, independently of
the report code: costs as exact decimals of the span attributes."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from otel_tokens import names as n
from tests.store_helpers import Call, Run, cli, cli_env, record

C = Call
RUNS = [
    # fix-bug M: six runs; 0.9 is over 3x the median (0.175), 0.44 is not.
    Run("fb-m1", "fix-bug", "M", "bob", "payments", "success", (C(0.05, agent="cod"), C(0.05, agent="cod"))),
    Run("fb-m2", "fix-bug", "M", "alice", "payments", "success", (C(0.12, cache_read=600, savings=0.0015),)),
    Run("fb-m3", "fix-bug", "M", "carol", "search", "success",
        (C(0.1, model="claude-sonnet-4-5", provider=n.PROVIDER_ANTHROPIC, cache_write=300), C(0.05))),
    Run("fb-m4", "fix-bug", "M", "bob", "payments", "success", (C(0.1), C(0.1, retries=2))),
    Run("fb-m5", "fix-bug", "M", "alice", "payments", "failure", (C(0.22), C(0.22, outcome="error"))),
    Run("fb-m6", "fix-bug", "M", "carol", "search", "success",
        (C(0.3, agent="coder"), C(0.3, agent="coder"), C(0.3, agent="reviewer"))),
    # fix-bug L: far above the M median but not above 3x their own peers' median.
    Run("fb-l1", "fix-bug", "L", "bob", "payments", "success", (C(1.0), C(1.0))),
    Run("fb-l2", "fix-bug", "L", "bob", "payments", "success", (C(2.2),)),
    Run("fb-l3", "fix-bug", "L", "bob", "payments", "success", (C(1.9, reasoning=150, output_tokens=400),)),
    Run("fb-l4", "fix-bug", "L", "bob", "payments", "success", (C(2.1),), pipeline="ci.yml"),
    # review-pr S: two runs, too few peers to flag anything.
    Run("rp-1", "review-pr", "S", "alice", "search", "success",
        (C(0.01, model="gpt-4o-mini"), C(None, model="my-finetune"))),
    Run("rp-2", "review-pr", "S", "alice", "search", None,
        (C(0.1, model="gpt-4o-mini"), C(3.75e-08, model="text-embedding-3-small"), C(1.1e-05))),
    # calls outside any task
    Run(None, None, None, "bob", "payments", None,
        (C(0.000123), C(None, status="unknown_usage", input_tokens=0, output_tokens=0))),
]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "telemetry.db"
    record(path, RUNS)
    return path


def report(store: Path, *args: str) -> list[dict[str, Any]]:
    result = cli("report", "--store", str(store), "--json", *args)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, Any]] = json.loads(result.stdout, parse_float=Decimal)
    return rows


def pico(value: Decimal) -> Decimal:
    return value.quantize(Decimal("1e-12")).normalize()


KEYS: dict[str, Callable[[Run, Call], str | None]] = {
    "task": lambda r, c: r.name,
    "user": lambda r, c: r.user,
    "team": lambda r, c: r.team,
    "model": lambda r, c: c.model,
    "provider": lambda r, c: c.provider,
    "agent": lambda r, c: c.agent,
    "pipeline": lambda r, c: r.pipeline,
}


def expected_rows(by: str) -> dict[str | None, dict[str, Any]]:
    """The report computed the slow, obvious way from RUNS."""
    rows: dict[str | None, dict[str, Any]] = {}
    task_calls: dict[str | None, dict[str, list[Call]]] = defaultdict(lambda: defaultdict(list))
    outcome = {r.task_id: r.outcome for r in RUNS}
    for run in RUNS:
        for call in run.calls:
            key = KEYS[by](run, call)
            row = rows.setdefault(
                key, defaultdict(int) | {"cost_usd": Decimal(0), "cache_savings_usd": Decimal(0)}
            )
            row["cost_usd"] += call.exact_cost
            row["calls"] += 1
            row["input_tokens"] += call.input_tokens
            row["output_tokens"] += call.output_tokens
            row["cache_read_tokens"] += call.cache_read
            row["cache_write_tokens"] += call.cache_write
            row["reasoning_tokens"] += call.reasoning
            row["cache_savings_usd"] += Decimal(repr(call.savings)) if call.savings else 0
            row["retries"] += call.retries
            row["failed_calls"] += call.outcome != "success"
            row["unpriced_calls"] += call.cost is None
            if run.task_id:
                task_calls[key][run.task_id].append(call)
    for key, row in rows.items():
        tasks = task_calls[key]
        ok = [t for t in tasks if outcome[t] == "success"]
        failed = [t for t in tasks if outcome[t] not in (None, "success")]
        cost = {t: sum((c.exact_cost for c in calls), Decimal(0)) for t, calls in tasks.items()}
        row["tasks"] = len(tasks)
        row["successful_tasks"] = len(ok)
        row["failed_tasks"] = len(failed)
        row["failed_task_spend_usd"] = sum((cost[t] for t in failed), Decimal(0))
        row["cost_per_successful_task_usd"] = (
            pico(sum((cost[t] for t in ok), Decimal(0)) / len(ok)) if ok else None
        )
        depths = [len(calls) for calls in tasks.values()]
        row["loop_depth_median"] = Decimal(statistics.median(depths)) if depths else None
        row["loop_depth_max"] = max(depths) if depths else None
        row["cost_usd"] = row["cost_usd"].normalize()
    return rows


@pytest.mark.parametrize("by", ["task", "user", "team", "model", "provider", "agent", "pipeline"])
def test_report_json_equals_the_recorded_spans(store: Path, by: str) -> None:
    rows = report(store, "--by", by)
    expected = expected_rows(by)
    assert sorted(map(str, (r[by] for r in rows))) == sorted(map(str, expected))
    for row in rows:
        want = expected[row[by]]
        got = {k: row[k] for k in want}
        assert got == dict(want), row[by]
    # The grand total is the exact decimal sum of every span's cost (no float on the way).
    total = sum((c.exact_cost for r in RUNS for c in r.calls), Decimal(0))
    assert sum(r["cost_usd"] for r in rows) == total == Decimal("10.2201340375")


def test_report_flags_outliers_against_same_task_and_size_only(store: Path) -> None:
    rows = {r["task"]: r for r in report(store)}
    assert 0.3 + 0.3 + 0.3 != 0.9  # the outlier's calls: a float sum would not give 0.9
    assert rows["fix-bug"]["outlier_runs"] == 1
    assert rows["fix-bug"]["outliers"] == [
        {
            "task_id": "fb-m6",
            "size": "M",
            "cost_usd": Decimal("0.9"),
            "peer_median_usd": Decimal("0.175"),
            "peers": 6,
        }
    ]
    assert rows["review-pr"]["outliers"] == []  # 2 runs: too few peers to judge
    assert rows[None]["outliers"] == []


def test_report_by_user_is_sorted_by_name_not_cost(store: Path) -> None:
    rows = report(store, "--by", "user")
    assert [r["user"] for r in rows] == ["alice", "bob", "carol"]
    by_cost = sorted(rows, key=lambda r: -r["cost_usd"])
    assert [r["user"] for r in by_cost] != ["alice", "bob", "carol"]
    text = cli("report", "--store", str(store), "--by", "user").stdout
    assert "Sorted by user name, not by cost" in text
    assert "Outlier" not in text


def test_report_task_filter_and_csv(store: Path) -> None:
    rows = report(store, "--task", "review-pr")
    assert [r["task"] for r in rows] == ["review-pr"]
    assert rows[0]["cost_usd"] == Decimal("0.1100110375")
    result = cli("report", "--store", str(store), "--csv", "--by", "model")
    assert result.returncode == 0, result.stderr
    parsed = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["model"]: Decimal(r["cost_usd"]) for r in parsed} == {
        k: v["cost_usd"] for k, v in expected_rows("model").items()
    }
    assert "outliers" not in parsed[0]


def test_report_human_output(store: Path) -> None:
    result = cli("report", "--store", str(store))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "\x1b[" not in out  # no colour when stdout is not a terminal
    assert "AI spend by task, all recorded time" in out
    assert "$10.22" in out  # total, readable currency
    assert "5.1x fix-bug [M] $0.900 vs median $0.175 of 6 runs   otel-tokens trace fb-m6" in out
    row = (
        "fix-bug     $10.11    17    10      2 / 3    $1.07 $0.440 (1)  17.0k  3,600 $0.0015       2        0"
    )
    assert row + "        1" in out
    assert "2 calls have no price" in out
    colour = cli("report", "--store", str(store), env=cli_env(FORCE_COLOR="1"))
    assert "\x1b[" in colour.stdout


def test_top_lists_runs_by_cost_with_ids_for_trace(store: Path) -> None:
    result = cli("top", "--store", str(store), "--json", "--limit", "5")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout, parse_float=Decimal)
    assert [(r["id"], r["cost_usd"]) for r in rows] == [
        ("fb-l2", Decimal("2.2")), ("fb-l4", Decimal("2.1")), ("fb-l1", Decimal("2")),
        ("fb-l3", Decimal("1.9")), ("fb-m6", Decimal("0.9")),
    ]  # fmt: skip
    everything = json.loads(cli("top", "--store", str(store), "--json", "--limit", "100").stdout)
    assert len(everything) == len(RUNS)
    untasked = [r for r in everything if r["kind"] == "trace"]
    assert (
        len(untasked) == 1 and untasked[0]["id"] == untasked[0]["trace_id"] and len(untasked[0]["id"]) == 32
    )
    text = cli("top", "--store", str(store), "--limit", "2").stdout
    assert "fb-l2" in text and "fb-l4" in text and "fb-l1" not in text


def test_trace_of_a_task_shows_agents_calls_and_the_expensive_path(store: Path) -> None:
    result = cli("trace", "fb-m6", "--store", str(store))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("task fb-m6  trace ") and lines[0].endswith("$0.900  3 LLM calls")
    assert "▶ task fix-bug [M] fb-m6 success  $0.900" in lines[1]
    coder = next(line for line in lines if "invoke_agent coder" in line)
    reviewer = next(line for line in lines if "invoke_agent reviewer" in line)
    assert "▶ agent invoke_agent coder  $0.600" in coder and "2 calls" in coder and "1 call " in reviewer
    assert "▶" not in reviewer and "$0.300" in reviewer
    assert sum("chat gpt-4o  $0.300" in line for line in lines) == 3


def test_trace_shows_retries_and_traces_without_task(store: Path) -> None:
    out = cli("trace", "fb-m4", "--store", str(store)).stdout
    assert "2 retries" in out
    assert out.count("↻ retry status_code=429 wait_s=0.5") == 2
    top = json.loads(cli("top", "--store", str(store), "--json", "--limit", "100").stdout)
    trace_id = next(r["id"] for r in top if r["kind"] == "trace")
    out = cli("trace", trace_id, "--store", str(store)).stdout
    assert out.startswith(f"trace {trace_id}  $0.00012  2 LLM calls\n")
    assert "script" in out and "unpriced" in out
