"""promtool scenarios for the budget rules of the budget file, on noisy utilisation series.

Each budget's ``otel_tokens_budget_utilization_ratio`` comes from two processes: one that
settles calls as they happen and one that reports the same ledger three minutes late. A
normal morning spends at a noisy rate that projects to 40% of the limit at the period's
end (silent); from 10:00 a surge uses the rest by 15:00, so the projection fires within
its ``for`` and each threshold fires at the first minute the freshest value reaches it.
One hard budget refuses calls from 12:00 (the blocked-calls alert).
"""

from __future__ import annotations

import random

from otel_tokens.budgets.policy import Budget, Policy
from otel_tokens.stack import promnames as p
from otel_tokens.stack import scenarios
from otel_tokens.stack.budget_rules import _offset_s
from otel_tokens.stack.ruledefs import Alert, Thresholds, number
from otel_tokens.stack.ruletests import _group, _series, _t, cumulative, increments, never_fired

SCALE = 1_000_000
SURGE, FULL, BLOCKED = 600, 900, 720  # minutes after 1970-01-01 00:00 UTC, a Thursday
LAG = 3
NORMAL = 0.4  # the normal rate's projection at the period's end


def _seconds_left_at_zero(period: str, offset_s: int) -> float:
    if period == "day":
        return 86400 - offset_s % 86400
    if period == "week":
        return 604800 - (offset_s + 259200) % 604800
    return 31 * 86400 - offset_s % 86400  # January 1970


def _utilisation(rng: random.Random, budget: Budget, offset_s: int, minutes: int) -> list[float]:
    if budget.period == "task":
        horizon = 86400.0
    else:
        horizon = _seconds_left_at_zero(budget.period, offset_s)
    normal = NORMAL / horizon * 60  # per minute
    at_surge = normal * SURGE
    surge = (1.05 - at_surge) / (FULL - SURGE)

    def mean(m: int) -> float:
        return surge if m >= SURGE else normal

    return increments(rng, minutes, mean)


def _sample(alert: Alert, at: int) -> dict[str, object]:
    labels = {"alertname": alert.name, "alertstate": "firing", **alert.all_labels()}
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    match = ", ".join(f'{k}="{v}"' for k, v in labels.items() if k != p.SEVERITY)
    return {
        "expr": f"ALERTS{{{match}}}",
        "eval_time": _t(at),
        "exp_samples": [{"labels": f"ALERTS{{{inner}}}", "value": 1}],
    }


def budget_rules(alerts: dict[str, Alert], t: Thresholds, policy: Policy) -> list[object]:
    if not policy.budgets:
        return []
    rng = random.Random(scenarios.SEED + 12)
    offset = _offset_s(policy)
    n = FULL + 120
    series: list[dict[str, str]] = []
    exprs: list[object] = []
    by_budget: dict[str, list[Alert]] = {}
    for alert in alerts.values():
        name = dict(alert.labels).get(p.BUDGET)
        if name is not None and alert.name in (
            "OtelTokensBudgetThreshold",
            "OtelTokensBudgetExhaustionProjected",
        ):
            by_budget.setdefault(name, []).append(alert)
    for budget in policy.budgets:
        steps = _utilisation(rng, budget, offset, n)
        fresh = cumulative(steps, SCALE)
        late = [None] * LAG + fresh[:-LAG]
        labels = {p.BUDGET: budget.name, p.JOB: "svc/app"}
        series.append(_series(p.BUDGET_UTILIZATION, {**labels, p.INSTANCE: "a"}, fresh, SCALE))
        series.append(_series(p.BUDGET_UTILIZATION, {**labels, p.INSTANCE: "b"}, late, SCALE))
        for alert in by_budget.get(budget.name, []):
            matcher = f'{p.BUDGET}="{budget.name}"'
            if alert.name == "OtelTokensBudgetThreshold":
                at = float(dict(alert.labels)[p.BUDGET_THRESHOLD])
                first = next(m for m, v in enumerate(fresh) if v is not None and v >= round(at * SCALE))
                matcher += f', {p.BUDGET_THRESHOLD}="{number(at)}"'
                exprs += [never_fired(alert.name, first - 1, matcher), _sample(alert, first + 1)]
            else:
                exprs += [never_fired(alert.name, SURGE, matcher), _sample(alert, SURGE + 120)]
    hard = next((b for b in policy.budgets if b.blocks), policy.budgets[0])
    refused = [0.0] * BLOCKED + [2.0] * (n - BLOCKED)
    calls = cumulative(increments(rng, n, lambda m: refused[m], integer=True), 1)
    series.append(
        _series(
            p.CALLS,
            {p.JOB: "svc/app", p.OUTCOME: p.OUTCOME_BLOCKED, p.BUDGET: hard.name, p.COST_STATUS: "not_sent"},
            calls,
        )
    )
    blocked = alerts["otel-tokens-budget-blocked-calls"]
    exprs += [never_fired(blocked.name, BLOCKED - 1), _sample_blocked(blocked, hard.name, BLOCKED + 10)]
    return [
        _group(
            "budgets: a noisy normal pace stays silent; a surge crosses every threshold once, is projected"
            " to exhaust the budget before its period ends, and a hard budget's refusals alert",
            series,
            [],
            exprs,
        )
    ]


def _sample_blocked(alert: Alert, budget: str, at: int) -> dict[str, object]:
    labels = {"alertname": alert.name, "alertstate": "firing", p.BUDGET: budget, **alert.all_labels()}
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {
        "expr": f'ALERTS{{alertname="{alert.name}", alertstate="firing"}}',
        "eval_time": _t(at),
        "exp_samples": [{"labels": f"ALERTS{{{inner}}}", "value": 1}],
    }
