"""What `otel-tokens report` and `top` compute, independent of how it is printed.

Money stays in integer pico-USD (1e-12 USD, see `otel_tokens.store.schema`) until it is
printed, so group totals are exact sums of the recorded span costs. The only rounded
figures are ratios (cost per successful task), quantised to 1e-12 USD.

Outliers: a task run whose cost is more than ``OUTLIER_FACTOR`` times the median cost of
its peers (runs of the same task name *and* size in the window), when there are at least
``MIN_PEERS`` such runs. Comparing like with like is the point: an L migration is not an
outlier next to S typo fixes, and people are never ranked against each other.
"""

from __future__ import annotations

import sqlite3
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

from otel_tokens.store.queries import (
    RunRow,
    Sums,
    TaskRun,
    Window,
    group_sums,
    task_runs,
    task_span,
    top_runs,
    untasked_traces,
)

OUTLIER_FACTOR: Final = 3
MIN_PEERS: Final = 4
SUCCESS: Final = "success"
_SUM_FIELDS: Final = tuple(f.name for f in fields(Sums))


def pico_to_usd(pico: int | Decimal) -> Decimal:
    """Exact USD amount of an integer pico-USD value (a ratio is rounded to 1e-12 first)."""
    value = Decimal(pico).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return value.scaleb(-12).normalize() if value else Decimal(0)


@dataclass(frozen=True, slots=True)
class Outlier:
    task_id: str
    task_name: str
    size: str
    cost_pusd: int
    peer_median_pusd: Decimal
    peers: int

    @property
    def ratio(self) -> Decimal:
        return Decimal(self.cost_pusd) / self.peer_median_pusd


@dataclass(slots=True)
class Group:
    """One row of a report: the sums of a group plus per-run figures."""

    key: str  # '' when the dimension was not set on the calls
    sums: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_SUM_FIELDS, 0))
    runs: int = 0
    tasks: int = 0
    successful_tasks: int = 0
    failed_tasks: int = 0
    success_cost_pusd: int = 0
    failed_cost_pusd: int = 0
    loop_depths: list[int] = field(default_factory=list)
    sizes: set[str] = field(default_factory=set)
    outliers: list[Outlier] = field(default_factory=list)

    @property
    def unpriced_calls(self) -> int:
        return self.sums["calls"] - self.sums["priced_calls"]

    @property
    def cost_per_successful_task_pusd(self) -> Decimal | None:
        if not self.successful_tasks:
            return None
        return Decimal(self.success_cost_pusd) / self.successful_tasks

    @property
    def loop_depth_median(self) -> Decimal | None:
        return Decimal(statistics.median(self.loop_depths)) if self.loop_depths else None

    @property
    def loop_depth_max(self) -> int | None:
        return max(self.loop_depths) if self.loop_depths else None


@dataclass(frozen=True, slots=True)
class Report:
    by: str
    window: Window
    groups: list[Group]
    total: Group


def _add_task(group: Group, size: str, calls: int, cost: int, outcome: str | None) -> None:
    group.tasks += 1
    group.runs += 1
    group.loop_depths.append(calls)
    if size:
        group.sizes.add(size)
    if outcome is None:
        return
    if outcome == SUCCESS:
        group.successful_tasks += 1
        group.success_cost_pusd += cost
    else:
        group.failed_tasks += 1
        group.failed_cost_pusd += cost


def find_outliers(runs: list[TaskRun]) -> list[Outlier]:
    """Task runs costing more than OUTLIER_FACTOR x the median of same name+size peers."""
    costs: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for _, task_id, name, size, _, cost, _ in runs:
        costs[(name, size)][task_id] += cost
    found: list[Outlier] = []
    for (name, size), by_task in costs.items():
        if len(by_task) < MIN_PEERS:
            continue
        median = Decimal(statistics.median(by_task.values()))
        if median <= 0:
            continue
        for task_id, cost in by_task.items():
            if cost > OUTLIER_FACTOR * median:
                found.append(Outlier(task_id, name, size, cost, median, len(by_task)))
    found.sort(key=lambda o: (-o.ratio, o.task_id))
    return found


def build_report(conn: sqlite3.Connection, by: str, window: Window) -> Report:
    groups = {key: Group(key, sums=asdict(sums)) for key, sums in group_sums(conn, by, window)}
    total = Group("")
    for group in groups.values():
        for name, value in group.sums.items():
            total.sums[name] += value
    runs = task_runs(conn, by, window)
    for key, _, _, size, calls, cost, outcome in runs:
        _add_task(groups[key], size, calls, cost, outcome)
    if by == "task":  # each task is in exactly one group
        for _, _, _, size, calls, cost, outcome in runs:
            _add_task(total, size, calls, cost, outcome)
    else:  # a task may span groups (two models): count it once, whole
        whole: dict[str, list[Any]] = {}
        for _, task_id, _, size, calls, cost, outcome in runs:
            acc = whole.get(task_id)
            if acc is None:
                whole[task_id] = [size, calls, cost, outcome]
            else:
                acc[1] += calls
                acc[2] += cost
        for size, calls, cost, outcome in whole.values():
            _add_task(total, size, calls, cost, outcome)
    for key, traces in untasked_traces(conn, by, window).items():
        groups[key].runs += traces
        total.runs += traces
    ordered = list(groups.values())
    if by == "task":
        outliers = find_outliers(runs)
        for outlier in outliers:
            groups[outlier.task_name].outliers.append(outlier)
        total.outliers = outliers
    if by in ("user", "team"):
        ordered.sort(key=lambda g: (g.key == "", g.key))  # by name: this is not a ranking
    else:
        ordered.sort(key=lambda g: (-g.sums["cost_pusd"], g.key))
    return Report(by, window, ordered, total)


@dataclass(frozen=True, slots=True)
class TopRun:
    run: RunRow
    outcome: str | None
    trace_id: bytes  # the run's (first) trace, for tasks too

    @property
    def ident(self) -> str:
        """What to pass to `otel-tokens trace`."""
        return self.run.task_id or self.run.trace_id.hex()


def build_top(conn: sqlite3.Connection, window: Window, limit: int) -> list[TopRun]:
    out = []
    for run in top_runs(conn, window, limit):
        if not run.task_id:
            out.append(TopRun(run, None, run.trace_id))
            continue
        span = task_span(conn, run.task_id)
        if span is not None:
            out.append(TopRun(run, span.outcome, span.trace_id))
            continue
        row = conn.execute(
            "SELECT trace_id FROM llm_calls WHERE task_id = ? ORDER BY start_ns LIMIT 1", (run.task_id,)
        ).fetchone()
        out.append(TopRun(run, None, row[0] if row else b""))
    return out
