"""The budget file, as the stack generator reads it: the same file the instrumentation enforces.

The parser is `otel_tokens.budgets.policy_file` (format in its docstring; the older
``{name, daily_usd, team?}`` entries still load as day budgets). From the policy the stack
renders two kinds of rules:

* the daily-burn alert (spend so far today from the cost counters plus the last hour's
  rate, `rules._budget_alert`) for every ``period: day`` budget whose match is everything
  or exactly one team: `Budget` is that view;
* utilisation, projection and blocked-call rules for every budget (`budget_rules`), from
  the ``otel_tokens.budget.utilization`` gauge the ledger feeds.

`otel-tokens stack generate --budgets FILE` reads FILE, else ``$OTEL_TOKENS_BUDGETS``, else
``$OTEL_TOKENS_BUDGET_FILE``, else the example file beside this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from otel_tokens import names as n
from otel_tokens.budgets.policy import Policy
from otel_tokens.budgets.policy_file import load_policy

ENV_BUDGET_FILE = n.ENV_BUDGET_FILE
EXAMPLE_FILE = Path(__file__).resolve().parent / "budgets.example.yaml"


@dataclass(frozen=True)
class Budget:
    """A daily-burn alert: USD per day, for one team or (team None) for all spend."""

    name: str
    daily_usd: float
    team: str | None = None


class BudgetError(ValueError):
    """Budget file problems, one line each naming the file, line and fix."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


def budget_file() -> Path:
    for env in (n.ENV_BUDGETS, ENV_BUDGET_FILE):
        value = os.environ.get(env, "").strip()
        if value:
            return Path(value).expanduser()
    return EXAMPLE_FILE


def load_stack_policy(path: Path) -> Policy:
    """The whole policy; raise `BudgetError` listing every problem (the stack needs all of it)."""
    policy, errors = load_policy(path)
    if errors:
        raise BudgetError(errors)
    return policy


def daily_budgets(policy: Policy) -> tuple[Budget, ...]:
    out: list[Budget] = []
    if policy.timezone.upper() != "UTC":  # the daily-burn rules count the UTC day
        return ()
    for b in policy.budgets:
        if b.period == "day" and b.per == () and (not b.match.fields or b.team() is not None):
            out.append(Budget(b.name, float(b.limit_usd), b.team()))
    return tuple(out)


def load_budgets(path: Path) -> tuple[Budget, ...]:
    """The daily-burn view of a budget file; raise `BudgetError` on any problem."""
    return daily_budgets(load_stack_policy(path))
