"""Scenarios over the UTC day: the daily budget alert and the exact recording-rule values."""

from __future__ import annotations

import random

from otel_tokens.stack import promnames as p
from otel_tokens.stack import scenarios
from otel_tokens.stack.budgets import Budget
from otel_tokens.stack.rules import Alert, Thresholds, default_budgets
from otel_tokens.stack.ruletests import (
    DAY,
    Labels,
    _group,
    _minutes,
    _series,
    _t,
    diurnal,
    exact,
    never_fired,
)
from otel_tokens.stack.scenarios import USD, _call, _counter

DAILY_BURN = "OtelTokensDailyBudgetBurn"


def _alerts_sample(alert: Alert, at: int) -> dict[str, object]:
    labels = {"alertname": alert.name, "alertstate": "firing", **alert.all_labels()}
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {
        "expr": f'ALERTS{{alertname="{alert.name}", {p.BUDGET}="{dict(alert.labels)[p.BUDGET]}"}}',
        "eval_time": _t(at),
        "exp_samples": [{"labels": f"ALERTS{{{inner}}}", "value": 1}],
    }


def daily_budget(
    alerts: dict[str, Alert], t: Thresholds, budgets: tuple[Budget, ...] | None = None
) -> list[object]:
    """One spender per budget (its team, or "platform"). A normal day loads every budget with
    at most 40% of its amount, counting all the spenders it covers; at 16:00 UTC each spender
    surges to 4x its own budget by midnight, so every budget's alert fires."""
    budgets = budgets if budgets is not None else default_budgets()
    if not budgets:
        return []
    rng = random.Random(scenarios.SEED + 6)
    surge = 960  # 16:00 UTC, after the day's peak
    check = surge + _minutes(t.budget_for) + 45
    n = check + 1
    teams = [b.team or "platform" for b in budgets]

    def covered(b: Budget) -> float:
        return sum(o.daily_usd for o, team in zip(budgets, teams, strict=True) if b.team in (None, team))

    load = 0.4 / max(covered(b) / b.daily_usd for b in budgets)
    series, exprs = [], []
    for budget, team in zip(budgets, teams, strict=True):
        base = load * budget.daily_usd / DAY
        rate = 4 * budget.daily_usd / (DAY - surge)

        def mean(m: int, base: float = base, rate: float = rate) -> float:
            return rate if m >= surge else base * diurnal(m)

        series.append(_counter(rng, p.COST, _call(team, "openai", "gpt-4o", f"web/{budget.name}"), mean, n))
        alert = next(
            a for a in alerts.values() if a.name == DAILY_BURN and dict(a.labels).get(p.BUDGET) == budget.name
        )
        exprs += [
            never_fired(alert.name, surge - 1, f'{p.BUDGET}="{budget.name}"'),
            _alerts_sample(alert, check),
        ]
    return [
        _group(
            "daily budgets: a normal day at most 40% of each budget stays silent through its peak;"
            " a surge in the afternoon fires every budget",
            series,
            [],
            exprs,
        )
    ]


def recording(alerts: dict[str, Alert], t: Thresholds) -> list[object]:
    """Linear series, so every recorded value is known exactly."""
    n, at = DAY + 121, DAY + 120  # 02:00 UTC on day 2
    a = _call("a", "openai", "m1", "svc/a", **{p.TASK_NAME: "t1", p.PIPELINE: "ci", p.PIPELINE_TASK: "test"})
    b = _call("b", "anthropic", "m2", "svc/b", **{p.TASK_NAME: "t2"})
    c = _call("b", "openai", "m3", "svc/b", **{p.COST_STATUS: p.COST_STATUS_UNPRICED})
    task = {p.JOB: "svc/a", p.TASK_NAME: "t1", p.TASK_SIZE: "S", p.TASK_OUTCOME: "success"}

    def line(name: str, labels: Labels, step: int, scale: int = 1) -> dict[str, str]:
        return _series(name, labels, [step * i for i in range(n)], scale)

    series = [
        line(p.COST, a, 600_000, USD),  # $0.60 per minute
        line(p.COST, b, 300_000, USD),
        line(p.CALLS, a, 4),
        line(p.CALLS, b, 2),
        line(p.CALLS, c, 1),
        line(p.RETRIES, {**a, p.RETRY_REASON: "rate_limit"}, 1),
        line(f"{p.TASK_LLM_CALLS}_sum", task, 30),
        line(f"{p.TASK_LLM_CALLS}_count", task, 5),
        line(p.LOOP_REPEATS, a, 2),
        line(p.TASKS, task, 5),
    ]
    spend: dict[str, list[tuple[Labels, float]]] = {
        p.spend_per_second(p.LEVEL_TOTAL): [({}, 0.015)],
        p.spend_per_hour(p.LEVEL_TOTAL): [({}, 54)],
        p.spend_per_second(p.LEVEL_PROVIDER): [
            ({p.PROVIDER: "anthropic"}, 0.005),
            ({p.PROVIDER: "openai"}, 0.01),
        ],
        p.spend_per_hour(p.LEVEL_MODEL): [
            ({p.PROVIDER: "anthropic", p.REQUEST_MODEL: "m2"}, 18),
            ({p.PROVIDER: "openai", p.REQUEST_MODEL: "m1"}, 36),
        ],
        p.spend_per_hour(p.LEVEL_TEAM): [({p.TEAM: "a"}, 36), ({p.TEAM: "b"}, 18)],
        p.spend_per_hour(p.LEVEL_TASK): [({p.TASK_NAME: "t1"}, 36), ({p.TASK_NAME: "t2"}, 18)],
        p.spend_per_hour(p.LEVEL_PIPELINE): [({}, 18), ({p.PIPELINE: "ci", p.PIPELINE_TASK: "test"}, 36)],
        p.spend_per_hour(p.LEVEL_SERVICE): [({p.JOB: "svc/a"}, 36), ({p.JOB: "svc/b"}, 18)],
        p.SPEND_RATE_1H: [({}, 0.015)],
        p.SPEND_TODAY: [({}, 0.9 * 120)],  # 02:00 UTC: two hours at $0.90/min since midnight
        p.TEAM_SPEND_TODAY: [({p.TEAM: "a"}, 72), ({p.TEAM: "b"}, 36)],
        p.TEAM_SPEND_ZSCORE: [],  # a flat rate has no z-score
        p.MODEL_SPEND_ZSCORE: [],
        p.CALLS_RATE: [({}, 0.116667)],
        p.MODEL_RETRIES_PER_CALL: [
            ({p.PROVIDER: "anthropic", p.REQUEST_MODEL: "m2"}, 0),
            ({p.PROVIDER: "openai", p.REQUEST_MODEL: "m1"}, 0.25),
            ({p.PROVIDER: "openai", p.REQUEST_MODEL: "m3"}, 0),
        ],
        p.MODEL_UNSEEN_CALLS_30M: [
            (
                {
                    p.PROVIDER: "openai",
                    p.REQUEST_MODEL: "m3",
                    p.RESPONSE_MODEL: "m3",
                    p.COST_STATUS: "unpriced",
                },
                30,
            )
        ],
        p.TASK_LLM_CALLS_PER_TASK: [({p.TASK_NAME: "t1", p.TASK_SIZE: "S"}, 6)],
        p.TASK_TASKS_15M: [({p.TASK_NAME: "t1", p.TASK_SIZE: "S"}, 75)],
        f"60 * {p.TASK_LOOP_REPEATS_RATE}": [({p.TASK_NAME: "t1"}, 2)],
        p.DAY_OF_YEAR: [({}, 2)],
    }
    exprs = [exact(expr, at, samples) for expr, samples in spend.items()]
    exprs.append(exact(p.SPEND_TODAY, DAY + 5, [({}, 4.5)]))  # reset at midnight: 5 minutes of today
    # the budget formula: spent today + last hour's rate x seconds left today
    daily = (a for a in alerts.values() if a.name == DAILY_BURN and p.TEAM not in dict(a.labels))
    for alert in daily:
        projected = 108 + 0.015 * (86400 - 7200)
        limit = float(alert.expr.rsplit(">", 1)[1])
        exprs.append(exact(alert.expr, at, [({}, projected)] if projected > limit else []))
    return [_group("recording rules: exact values on linear series", series, [], exprs)]
