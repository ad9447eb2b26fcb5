"""The rule data model: thresholds, recording and alert rules, groups (rendered by `rules`,
`budget_rules` and `grafana_alerts`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from otel_tokens.stack import promnames as p


@dataclass(frozen=True)
class Thresholds:
    """Alert parameters. Rates are per second unless the name says otherwise."""

    spike_zscore: float = 4.0  # standard deviations above the 1-day mean of the 5m spend rate
    spike_min_usd_per_hour: float = 2.0  # floor: below this spend rate nobody is paged
    spike_for: str = "10m"
    spike_min_history_hours: float = 18.0  # of the 1-day baseline, before a z-score exists
    loop_factor: float = 3.0  # LLM calls per task vs its 1-day average
    loop_min_calls_per_task: float = 10.0  # floor for the runaway-loop alert
    loop_min_tasks: float = 3.0  # finished tasks of that name and size in the 15m window
    loop_for: str = "5m"
    repeats_per_minute: float = 3.0  # identical requests repeated within a task
    repeats_for: str = "5m"
    retry_ratio: float = 0.25  # SDK retries per LLM call
    retry_min_calls_per_minute: float = 1.0
    retry_for: str = "10m"
    unpriced_for: str = "15m"
    budget_for: str = "15m"


DEFAULTS = Thresholds()
EVAL_INTERVAL_MINUTES = 1  # rule groups' evaluation interval
MIN_RELATIVE_STDDEV = 0.01  # z-scores need a baseline stddev of at least 1% of its mean


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str


@dataclass(frozen=True)
class Alert:
    name: str
    uid: str  # Grafana rule uid, unique, [a-z0-9-], at most 40 characters
    expr: str
    for_: str
    severity: str
    summary: str  # may use {{ $labels.NAME }}
    description: str
    runbook: str
    labels: tuple[tuple[str, str], ...] = ()  # static labels besides severity

    def all_labels(self) -> dict[str, str]:
        return {p.SEVERITY: self.severity, **dict(self.labels)}

    def annotations(self) -> dict[str, str]:
        return {"summary": self.summary, "description": self.description, "runbook": self.runbook}


@dataclass(frozen=True)
class Group:
    name: str
    interval: str
    rules: tuple[Recording | Alert, ...] = field(default=())


def number(value: float) -> str:
    """A threshold as PromQL shows it: 4 not 4.0."""
    return repr(float(value)).removesuffix(".0")
