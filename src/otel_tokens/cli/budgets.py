"""`otel-tokens budgets check FILE` and `otel-tokens budgets status [--json]`."""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from otel_tokens import names as n
from otel_tokens.budgets.ledger import LedgerError
from otel_tokens.budgets.ledgers import ledger_url, open_ledger
from otel_tokens.budgets.policy import Budget, Policy, from_nano, period_bounds
from otel_tokens.budgets.policy_file import load_policy

EXIT_USAGE = 2
TASK_ROWS = 10  # task runs shown per `period: task` budget, most recent first


def check(path: str) -> int:
    policy, errors = load_policy(Path(path).expanduser())
    for error in errors:
        print(f"otel-tokens: {error}", file=sys.stderr)
    if errors:
        return EXIT_USAGE
    hard = sum(1 for b in policy.budgets if b.blocks)
    print(
        f"{path}: {len(policy.budgets)} budgets ({hard} hard, {len(policy.budgets) - hard} soft),"
        f" {len(policy.models)} model rules, all valid"
    )
    return 0


@dataclass(frozen=True)
class Line:
    budget: str
    scope: str
    period: str
    action: str
    spent_usd: float
    limit_usd: float
    percent: float
    reserved_usd: float
    period_end: str | None
    projected_exhaustion: str | None  # when spend reaches the limit at the period's burn rate

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _projected(budget: Budget, spent: int, since: float, now: float, end: float | None) -> str | None:
    limit = budget.limit_nano
    if spent >= limit:
        return "exhausted"
    elapsed = now - since
    if spent <= 0 or elapsed <= 0:
        return None
    at = now + (limit - spent) / (spent / elapsed)
    if end is not None and at >= end:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="minutes")


def lines(policy: Policy, now: float | None = None) -> list[Line]:
    now = time.time() if now is None else now
    ledger = open_ledger()
    out: list[Line] = []
    try:
        for budget in policy.budgets:
            if budget.period == "task":
                rows = sorted(ledger.rows(budget.name, "t%"), key=lambda r: -r.updated)[:TASK_ROWS]
                start = end = None
                period = "task"
            else:
                period, s, e = period_bounds(budget.period, datetime.fromtimestamp(now, UTC), policy.tz())
                rows = ledger.rows(budget.name, period)
                start, end = s.timestamp(), e.timestamp()
            limit = float(budget.limit_usd)
            if not rows:
                end_text = datetime.fromtimestamp(end, UTC).isoformat(timespec="minutes") if end else None
                out.append(
                    Line(budget.name, "-", period, budget.action, 0.0, limit, 0.0, 0.0, end_text, None)
                )
            for row in rows:
                since = start if start is not None else row.first
                out.append(
                    Line(
                        budget.name,
                        row.scope,
                        period,
                        budget.action,
                        float(from_nano(row.spent)),
                        limit,
                        round(100 * row.spent / budget.limit_nano, 2),
                        float(from_nano(row.held)),
                        datetime.fromtimestamp(end, UTC).isoformat(timespec="minutes") if end else None,
                        _projected(budget, row.spent, since, now, end),
                    )
                )
    finally:
        ledger.close()
    return out


def status(file: str | None, as_json: bool) -> int:
    path = file or os.environ.get(n.ENV_BUDGETS, "").strip()
    if not path:
        print(f"otel-tokens: no budget file (fix: set {n.ENV_BUDGETS}=FILE or pass FILE)", file=sys.stderr)
        return EXIT_USAGE
    policy, errors = load_policy(Path(path).expanduser())
    for error in errors:
        print(f"otel-tokens: {error}", file=sys.stderr)
    try:
        result = lines(policy)
    except LedgerError as exc:
        print(f"otel-tokens: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if as_json:
        print(json.dumps([line.as_dict() for line in result], indent=2))
        return 0
    print(f"ledger: {ledger_url()}")
    header = ("budget", "scope", "period", "action", "spent", "limit", "%", "reserved", "ends", "exhausts")
    table = [header] + [
        (
            x.budget,
            x.scope,
            x.period,
            x.action,
            f"${x.spent_usd:.4f}",
            f"${x.limit_usd:g}",
            f"{x.percent:.1f}",
            f"${x.reserved_usd:.4f}",
            x.period_end or "-",
            x.projected_exhaustion or "-",
        )
        for x in result
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0
