"""Budget rules from the budget file: utilisation at each threshold, projected exhaustion, refusals.

Every instrumented process exports ``otel_tokens.budget.utilization`` (spent / limit in the
current period, read from the shared ledger at each settlement) by budget name. Prometheus
keeps the highest value across processes (the freshest: spend only grows within a period);
its 1-hour slope, extended to the end of the period, is the projection. Period ends are
computed in the file's timezone at its standard (January) UTC offset: around a daylight
saving change a day ends up to an hour off. A budget with ``period: task`` has no calendar
end: it gets threshold alerts (on the latest task run a process saw), no projection.

Limits, by design: a budget no process has touched in the period has no series (nothing to
alert on); the gauge disappears 5 minutes after the last process that exported it exits.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime

from otel_tokens.budgets.policy import Budget, Policy, zone
from otel_tokens.stack import promnames as p
from otel_tokens.stack.ruledefs import Alert, Recording, Thresholds, number

_RUNBOOK = (
    "`otel-tokens budgets status` shows spent, reserved and the projection per scope; the Budgets"
    " dashboard shows who spends it. Limits come from the budget file (OTEL_TOKENS_BUDGETS)."
)


def _offset_s(policy: Policy) -> int:
    delta = zone(policy.timezone).utcoffset(datetime(2000, 1, 1))
    return int(delta.total_seconds()) if delta is not None else 0


def seconds_left(period: str, offset_s: int) -> str:
    """PromQL: seconds until the current day/week/month ends, at a fixed UTC offset."""
    now = f"(time() + {offset_s})" if offset_s else "time()"
    if period == "day":
        return f"(86400 - {now} % 86400)"
    if period == "week":  # 1970-01-01 was a Thursday: Monday 00:00 is 3 days before it
        return f"(604800 - ({now} + 259200) % 604800)"
    if period == "month":
        stamp = f"vector({now})"
        return (
            f"((scalar(days_in_month({stamp})) - scalar(day_of_month({stamp}))) * 86400"
            f" + 86400 - {now} % 86400)"
        )
    raise ValueError(period)


def _sel(budget: Budget) -> str:
    return f'{{{p.BUDGET}="{budget.name}"}}'


def recording_rules(policy: Policy) -> tuple[Recording, ...]:
    out = [
        Recording(p.BUDGET_UTIL, f"max by ({p.BUDGET}) ({p.BUDGET_UTILIZATION})"),
        Recording(p.BUDGET_UTIL_DERIV, f"clamp_min(deriv({p.BUDGET_UTIL}[1h]), 0)"),
        Recording(
            p.BUDGET_BLOCKED_RATE,
            f'sum by ({p.BUDGET}) (rate({p.CALLS}{{{p.OUTCOME}="{p.OUTCOME_BLOCKED}"}}[5m]))',
        ),
    ]
    offset = _offset_s(policy)
    parts = [
        f"({p.BUDGET_UTIL}{_sel(b)}\n + {p.BUDGET_UTIL_DERIV}{_sel(b)} * {seconds_left(b.period, offset)})"
        for b in policy.budgets
        if b.period != "task"
    ]
    if parts:  # one rule (one series per budget), each budget with its own period's end
        out.append(Recording(p.BUDGET_PROJECTED, "\nor ".join(parts)))
    return tuple(out)


def _uid(*parts: str) -> str:
    uid = re.sub(r"[^a-z0-9-]", "-", "otel-tokens-budget-" + "-".join(parts))
    if len(uid) <= 40:
        return uid
    return uid[:31] + "-" + hashlib.sha1(uid.encode()).hexdigest()[:8]


def alert_rules(policy: Policy, t: Thresholds) -> tuple[Alert, ...]:
    out: list[Alert] = []
    for b in policy.budgets:
        labels: tuple[tuple[str, str], ...] = ((p.BUDGET, b.name),)
        kind = "hard" if b.blocks else "soft"
        for at in b.warn_at:
            pct = number(float(at * 100))
            out.append(
                Alert(
                    "OtelTokensBudgetThreshold",
                    _uid(b.name, pct),
                    f"{p.BUDGET_UTIL}{_sel(b)} >= {number(float(at))}",
                    "0m",
                    "critical" if at >= 1 else "warning",
                    f"Budget {b.name} has used {pct}% of its ${number(float(b.limit_usd))} per {b.period}",
                    f"The {kind} budget {b.name} ({b.period}, ${number(float(b.limit_usd))}) has reached"
                    f" {pct}% of its limit"
                    + ("; calls that would pass it are refused." if b.blocks else "; nothing is blocked."),
                    _RUNBOOK,
                    (*labels, (p.BUDGET_THRESHOLD, number(float(at)))),
                )
            )
        if b.period != "task":
            out.append(
                Alert(
                    "OtelTokensBudgetExhaustionProjected",
                    _uid(b.name, "projected"),
                    f"{p.BUDGET_PROJECTED}{_sel(b)} >= 1\nand {p.BUDGET_UTIL}{_sel(b)} < 1",
                    t.budget_for,
                    "warning",
                    f"Budget {b.name} will run out before the {b.period} ends",
                    f"At the last hour's burn rate the {kind} budget {b.name}"
                    f" (${number(float(b.limit_usd))} per {b.period}) is used up before its period ends.",
                    _RUNBOOK,
                    labels,
                )
            )
    if policy.budgets:
        out.append(
            Alert(
                "OtelTokensBudgetBlockedCalls",
                "otel-tokens-budget-blocked-calls",
                f"{p.BUDGET_BLOCKED_RATE} > 0",
                "0m",
                "warning",
                f"Budget {{{{ $labels.{p.BUDGET} }}}} is refusing LLM calls",
                f"Calls were refused in the last 5 minutes by the hard budget {{{{ $labels.{p.BUDGET} }}}}"
                " (otel_tokens.outcome=blocked): the callers got BudgetExceeded.",
                "Traces with a blocked call are always kept: search otel_tokens.outcome=blocked. " + _RUNBOOK,
            )
        )
    return tuple(out)
