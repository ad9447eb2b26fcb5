"""The promtool test scenarios, one function per test file (see `otel_tokens.stack.ruletests`)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from otel_tokens.stack import promnames as p
from otel_tokens.stack.rules import Alert, Thresholds, number
from otel_tokens.stack.ruletests import (
    DAY,
    Labels,
    _alert_test,
    _group,
    _minutes,
    _series,
    cumulative,
    diurnal,
    happened,
    increments,
    never_fired,
)

SEED = 5100  # the RNG seed of every scenario (seed + scenario number); any seed must pass
USD = 1_000_000  # counters in micro-dollars, written as decimals
Mean = Callable[[int], float]


def _call(team: str, provider: str, model: str, job: str, **extra: str) -> Labels:
    return {
        p.JOB: job,
        p.INSTANCE: f"{job.split('/')[-1]}-1",
        p.OPERATION: "chat",
        p.PROVIDER: provider,
        p.REQUEST_MODEL: model,
        p.RESPONSE_MODEL: model,
        p.TEAM: team,
        p.OUTCOME: "success",
        p.COST_STATUS: p.COST_STATUS_PRICED,
        **extra,
    }


def _window(mean: Mean, start: int, end: int, factor: float) -> Mean:
    return lambda m: mean(m) * (factor if start <= m < end else 1.0)


def _counter(
    rng: random.Random,
    name: str,
    labels: Labels,
    mean: Mean,
    minutes: int,
    *,
    resets: tuple[int, ...] = (),
    start: int = 0,
) -> dict[str, str]:
    scale = USD if name == p.COST else 1
    steps = increments(rng, minutes, mean, integer=scale == 1)
    return _series(name, labels, cumulative(steps, scale, resets=resets, start=start), scale)


def spend_spike(alerts: dict[str, Alert], t: Thresholds) -> list[object]:
    rng = random.Random(SEED + 1)
    team, model = alerts["otel-tokens-spend-spike-team"], alerts["otel-tokens-spend-spike-model"]
    spike, end = DAY + 600, DAY + 640  # 10:00 UTC on day 2, after the night and the morning ramp
    check = spike + _minutes(t.spike_for) + 20
    floor = t.spike_min_usd_per_hour / 60  # USD per minute

    def daily(base: float) -> Mean:
        return lambda m: base * diurnal(m)

    busy = _window(_window(daily(2.4 * floor), 400, 420, 1.4), 1000, 1030, 1.4)  # normal batch jobs
    n = end + 1
    series = [
        _counter(
            rng,
            p.COST,
            _call("search", "openai", "gpt-4o", "web/search-api"),
            _window(daily(3 * floor), spike, end, 8),
            n,
        ),
        _counter(
            rng,
            p.COST,
            _call("search", "anthropic", "claude-haiku-4-5", "web/search-api"),
            daily(0.5 * floor),
            n,
        ),
        _counter(
            rng,
            p.COST,
            _call("billing", "anthropic", "claude-sonnet-4-5", "ops/billing-bot"),
            busy,
            n,
            resets=(700,),
        ),  # a restart
        _counter(
            rng,
            p.COST,
            _call("hobby", "openai", "gpt-4o-mini", "lab/hobby"),
            _window(daily(0.005 * floor), spike, end, 20),
            n,
        ),  # a tiny service's spike
    ]
    quiet = 'gen_ai_request_model=~"claude-sonnet-4-5|claude-haiku-4-5|gpt-4o-mini"'
    return [
        _group(
            "spend spike: a team and a model spike 8x; noise, daily cycle, bursts, a restart and a tiny"
            " service's 20x spike stay silent",
            series,
            [
                _alert_test(team, spike - 1, []),
                _alert_test(model, spike - 1, []),
                _alert_test(team, check, [{p.TEAM: "search"}]),
                _alert_test(model, check, [{p.PROVIDER: "openai", p.REQUEST_MODEL: "gpt-4o"}]),
            ],
            [
                never_fired(team.name, spike - 1),
                never_fired(model.name, spike - 1),
                never_fired(team.name, end, f'{p.TEAM}=~"billing|hobby"'),
                never_fired(model.name, end, quiet),
                # the floor, not the z-score, keeps the tiny service quiet
                happened(f'{p.TEAM_SPEND_ZSCORE}{{{p.TEAM}="hobby"}} > {number(t.spike_zscore)}', check),
                happened(
                    f'{p.MODEL_SPEND_ZSCORE}{{{p.REQUEST_MODEL}="gpt-4o-mini"}} > {number(t.spike_zscore)}',
                    check,
                ),
            ],
        )
    ]


def _tasks(
    rng: random.Random, n: int, per_minute: float, calls: Callable[[int], int]
) -> tuple[list[int | None], list[int | None]]:
    """Histogram _sum and _count samples: tasks finishing per minute (daily cycle), LLM calls of each."""
    sums: list[int | None] = []
    counts: list[int | None] = []
    total_calls = total_tasks = 0
    for m, k in enumerate(increments(rng, n, lambda m: per_minute * diurnal(m), integer=True)):
        sums.append(total_calls)
        counts.append(total_tasks)
        total_tasks += int(k)
        total_calls += sum(calls(m) for _ in range(int(k)))
    return sums, counts


def runaway_loop(alerts: dict[str, Alert], t: Thresholds) -> list[object]:
    rng = random.Random(SEED + 2)
    alert = alerts["otel-tokens-runaway-agent-loop"]
    spike, end = DAY + 60, DAY + 100
    check = spike + _minutes(t.loop_for) + 25
    n = end + 1

    def triage(m: int) -> int:
        return rng.randint(25, 45) if m >= spike else rng.randint(3, 8)

    def summarise(m: int) -> int:  # a long tail of legitimately long tasks
        return rng.randint(20, 30) if rng.random() < 0.05 else rng.randint(8, 14)

    def lookup(m: int) -> int:  # 5x more calls, but still fewer than the floor
        return rng.randint(6, 9) if m >= spike else rng.randint(1, 2)

    series: list[dict[str, str]] = []
    kinds: tuple[tuple[str, str, str, float, Callable[[int], int]], ...] = (
        ("triage", "M", "success", 2.0, triage),
        ("triage", "M", "failure", 0.2, lambda m: rng.randint(3, 10)),
        ("summarise", "L", "success", 0.3, summarise),
        ("lookup", "S", "success", 1.0, lookup),
    )
    for name, size, outcome, per_minute, calls in kinds:
        labels = {p.JOB: "agents/worker", p.TASK_NAME: name, p.TASK_SIZE: size, p.TASK_OUTCOME: outcome}
        sums, counts = _tasks(rng, n, per_minute, calls)
        series += [
            _series(f"{p.TASK_LLM_CALLS}_sum", labels, sums),
            _series(f"{p.TASK_LLM_CALLS}_count", labels, counts),
        ]
    lookup_jump = (
        f'{p.TASK_LLM_CALLS_PER_TASK}{{{p.TASK_NAME}="lookup"}}'
        f" > {number(t.loop_factor)} * {p.TASK_LLM_CALLS_PER_TASK_AVG_1D}"
    )
    return [
        _group(
            "runaway loop: triage tasks jump from ~5 to ~35 LLM calls; a long tail and a small task's 5x"
            " stay silent",
            series,
            [
                _alert_test(alert, spike - 1, []),
                _alert_test(alert, check, [{p.TASK_NAME: "triage", p.TASK_SIZE: "M"}]),
            ],
            [
                never_fired(alert.name, spike - 1),
                never_fired(alert.name, end, f'{p.TASK_NAME}=~"summarise|lookup"'),
                happened(lookup_jump, check),  # the floor keeps it quiet
            ],
        )
    ]


def repeated_requests(alerts: dict[str, Alert], t: Thresholds) -> list[object]:
    rng = random.Random(SEED + 3)
    alert = alerts["otel-tokens-repeated-requests"]
    stuck, n = 180, 241
    check = stuck + _minutes(t.repeats_for) + 15
    per_minute = t.repeats_per_minute
    series = [
        _counter(
            rng,
            p.LOOP_REPEATS,
            _call("search", "openai", "gpt-4o", "agents/worker", **{p.TASK_NAME: "triage"}),
            lambda m: 2.5 * per_minute if m >= stuck else 0.1 * per_minute,
            n,
        ),
        _counter(
            rng,
            p.LOOP_REPEATS,
            _call("search", "openai", "gpt-4o", "agents/worker", **{p.TASK_NAME: "lookup"}),
            lambda m: 0.4 * per_minute,
            n,
        ),
    ]
    return [
        _group(
            "repeated requests: a stuck triage agent repeats its request; occasional repeats stay silent",
            series,
            [_alert_test(alert, stuck - 1, []), _alert_test(alert, check, [{p.TASK_NAME: "triage"}])],
            [never_fired(alert.name, stuck - 1), never_fired(alert.name, n - 1, f'{p.TASK_NAME}="lookup"')],
        )
    ]


def retry_storm(alerts: dict[str, Alert], t: Thresholds) -> list[object]:
    rng = random.Random(SEED + 4)
    alert = alerts["otel-tokens-retry-storm"]
    storm, n = 180, 241
    check = storm + _minutes(t.retry_for) + 15
    gpt4o = _call("search", "openai", "gpt-4o", "web/search-api")
    sonnet = _call("billing", "anthropic", "claude-sonnet-4-5", "ops/billing-bot")
    mini = _call("hobby", "openai", "gpt-4o-mini", "lab/hobby")
    every = math.ceil(3 / t.retry_min_calls_per_minute)  # minutes between its calls
    calls = 20.0
    series = [
        _counter(rng, p.CALLS, gpt4o, lambda m: calls, n),
        _counter(
            rng,
            p.RETRIES,
            {**gpt4o, p.RETRY_REASON: "rate_limit"},
            lambda m: 4 * t.retry_ratio * calls if m >= storm else 0.02 * calls,
            n,
        ),
        _counter(
            rng,
            p.RETRIES,
            {**gpt4o, p.RETRY_REASON: "server_error"},  # a 3-minute blip
            lambda m: 1.6 * t.retry_ratio * calls if 60 <= m < 63 else 0.0,
            n,
        ),
        _counter(rng, p.CALLS, sonnet, lambda m: 10.0, n),  # never retried: no retries series at all
        # a batch job calls the rarely used model every few minutes, like clockwork
        _series(p.CALLS, mini, cumulative([float(m % every == 0) for m in range(n)], 1)),
        _series(
            p.RETRIES,
            {**mini, p.RETRY_REASON: "rate_limit"},
            cumulative([2.0 * (m % every == 0 and m >= storm) for m in range(n)], 1),
        ),
    ]
    rare = f'{p.MODEL_RETRIES_PER_CALL}{{{p.REQUEST_MODEL}="gpt-4o-mini"}} > {number(t.retry_ratio)}'
    return [
        _group(
            "retry storm: gpt-4o calls retry once on average; 2% retries, a 3-minute blip and a rarely"
            " used model stay silent",
            series,
            [
                _alert_test(alert, storm - 1, []),
                _alert_test(alert, check, [{p.PROVIDER: "openai", p.REQUEST_MODEL: "gpt-4o"}]),
            ],
            [
                never_fired(alert.name, storm - 1),
                never_fired(alert.name, n - 1, f'{p.REQUEST_MODEL}=~"claude-sonnet-4-5|gpt-4o-mini"'),
                happened(rare, n - 1, within=60),  # the minimum call rate keeps it quiet
            ],
        )
    ]


def unpriced_model(alerts: dict[str, Alert], t: Thresholds) -> list[object]:
    rng = random.Random(SEED + 5)
    alert = alerts["otel-tokens-unpriced-model-in-use"]
    start, n = 60, 181
    check = start + _minutes(t.unpriced_for) + 25
    ft = "ft:gpt-4o-mini:acme"
    unpriced = _call("search", "openai", ft, "web/search-api", **{p.COST_STATUS: p.COST_STATUS_UNPRICED})
    one_off = _call(
        "billing",
        "anthropic",
        "claude-sonnet-4-5",
        "ops/billing-bot",
        **{p.COST_STATUS: p.COST_STATUS_UNKNOWN_USAGE},
    )
    series = [
        _counter(rng, p.CALLS, _call("search", "openai", "gpt-4o", "web/search-api"), lambda m: 15.0, n),
        _counter(rng, p.CALLS, unpriced, lambda m: 2.0, n, start=start),
        _series(p.CALLS, one_off, [None] * 30 + [1] * (n - 30)),  # one call, long ago
    ]
    firing = {k: unpriced[k] for k in (p.PROVIDER, p.REQUEST_MODEL, p.RESPONSE_MODEL, p.COST_STATUS)}
    return [
        _group(
            "unpriced model: a fine-tuned model without a price comes into use; a single old call stays"
            " silent",
            series,
            [_alert_test(alert, start - 1, []), _alert_test(alert, check, [firing])],
            [
                never_fired(alert.name, start - 1),
                never_fired(alert.name, n - 1, f'{p.COST_STATUS}="unknown_usage"'),
            ],
        )
    ]
