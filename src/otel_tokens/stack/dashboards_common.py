"""Building blocks shared by the generated dashboards.

Every PromQL expression a panel runs is built here from `otel_tokens.stack.promnames`, so label
filters are applied the same way everywhere: a query over a series filters on every
dashboard variable whose label that series carries (`FILTERS`), and on no other.

Counters from short-lived processes (CLI runs, CI jobs) are the common case for LLM spend,
and Prometheus' `increase()` does not count a series' first sample: a CI job whose first
export already carries its whole spend would show $0. `spent()` therefore takes, per
series, the last value in the window minus the value at the window's start, or the whole
last value for a series that started inside the window. It is exact for counters that do
not reset inside the window: the collector adds every process's deltas into one long-lived
series per service and label set, which resets only when that collector restarts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol, Self, TypeVar

from grafana_foundation_sdk.builders import common, prometheus, tempo, timeseries
from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import prometheus as prom_models
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
    VariableHide,
    VariableModel,
    VariableOption,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.tempo import SearchTableType

from otel_tokens.stack import promnames as pn

PROMETHEUS: Final = DataSourceRef(type_val="prometheus", uid="prometheus")
TEMPO: Final = DataSourceRef(type_val="tempo", uid="tempo")
DATASOURCE_UIDS: Final = frozenset({"prometheus", "tempo"})

# --- template variables: name -> the Prometheus label it filters -----------------------------
VARIABLES: Final[Mapping[str, str]] = {
    "service": pn.JOB,
    "team": pn.TEAM,
    "model": pn.REQUEST_MODEL,
    "pipeline": pn.PIPELINE,
}
ALL_VALUE: Final = ".*"

# Which variable labels each family of series carries (see otel_tokens.telemetry.recorder and
# otel_tokens.attribution.scopes): the per-call counters carry the scope's attribution and the
# model; the semantic-convention histograms carry the model but no attribution; the
# per-task series carry attribution but no model.
CALL_FILTERS: Final = (pn.JOB, pn.TEAM, pn.REQUEST_MODEL, pn.PIPELINE)
SEMCONV_FILTERS: Final = (pn.JOB, pn.REQUEST_MODEL)
TASK_FILTERS: Final = (pn.JOB, pn.TEAM, pn.PIPELINE)
FILTERS: Final[Mapping[str, tuple[str, ...]]] = {
    pn.COST: CALL_FILTERS,
    pn.TOKENS: CALL_FILTERS,
    pn.CALLS: CALL_FILTERS,
    pn.RETRIES: CALL_FILTERS,
    pn.LOOP_REPEATS: CALL_FILTERS,
    pn.CACHE_SAVINGS: CALL_FILTERS,
    pn.OPERATION_DURATION + "_bucket": SEMCONV_FILTERS,
    pn.TOKEN_USAGE + "_bucket": SEMCONV_FILTERS,
    pn.TASKS: TASK_FILTERS,
    **{pn.TASK_COST + suffix: TASK_FILTERS for suffix in ("_bucket", "_sum", "_count")},
    **{pn.TASK_LLM_CALLS + suffix: TASK_FILTERS for suffix in ("_bucket", "_sum", "_count")},
    # budget series carry the budget name and the service, never a scope value
    pn.BUDGET_UTILIZATION: (pn.JOB,),
    pn.BUDGET_CROSSINGS: (pn.JOB,),
    pn.BUDGET_LEDGER_ERRORS: (pn.JOB,),
}


def level_filters(level: tuple[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The variable labels a recorded series at this aggregation level keeps."""
    return tuple(lbl for lbl in VARIABLES.values() if lbl in level[1])


def recorded_filters(series: str) -> tuple[str, ...]:
    """The variable labels a recorded series keeps, from its ``level:`` prefix."""
    prefix = series.split(":", 1)[0]
    for level in (*pn.SPEND_LEVELS, pn.LEVEL_TASK_SIZE):
        if level[0] == prefix:
            return level_filters(level)
    return level_filters(_EXTRA_LEVELS[prefix])


_EXTRA_LEVELS: Final[Mapping[str, tuple[str, tuple[str, ...]]]] = {
    "otel_tokens_status": ("otel_tokens_status", (pn.OUTCOME, pn.COST_STATUS)),
    "otel_tokens_model_status": ("otel_tokens_model_status", (*pn.MODEL_LABELS, pn.COST_STATUS)),
    "otel_tokens_budget": ("otel_tokens_budget", (pn.BUDGET,)),
}


def sel(series: str, *matchers: str, filters: Sequence[str] | None = None) -> str:
    """``series{<variable filters>, <matchers>}``; filters default to the series' family."""
    if filters is None:
        filters = FILTERS[series] if series in FILTERS else recorded_filters(series)
    var_of = {lbl: var for var, lbl in VARIABLES.items()}
    parts = [f'{lbl}=~"${var_of[lbl]}"' for lbl in filters] + list(matchers)
    return f"{series}{{{', '.join(parts)}}}" if parts else series


def legend(*labels: str, sep: str = " ") -> str:
    """Grafana legend format showing these labels: ``{{a}} {{b}}``."""
    return sep.join("{{" + lbl + "}}" for lbl in labels)


def by(labels: Iterable[str]) -> str:
    return f" by ({', '.join(labels)})" if labels else ""


def spent(selector: str, window: str) -> str:
    """Per-series growth of a counter over `window`, counting series born inside it (module doc)."""
    last = f"max_over_time({selector}[{window}])"
    return f"(({last} - {selector} offset {window}) or {last})"


def sum_spent(selector: str, window: str = "$__range", labels: Sequence[str] = ()) -> str:
    return f"sum{by(labels)} {spent(selector, window)}"


def sum_rate(selector: str, labels: Sequence[str] = (), window: str = "$__rate_interval") -> str:
    return f"sum{by(labels)} (rate({selector}[{window}]))"


def quantile(q: float, bucket_selector: str, labels: Sequence[str] = (), window: str = "$__range") -> str:
    """`histogram_quantile` over the buckets' growth in `window` (series born inside counted)."""
    return f"histogram_quantile({q}, {sum_spent(bucket_selector, window, (pn.LE, *labels))})"


# --- queries -----------------------------------------------------------------------------------
def prom(
    expr: str,
    legend: str = "",
    *,
    instant: bool = False,
    table: bool = False,
    heatmap: bool = False,
    exemplar: bool = False,
) -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).datasource(PROMETHEUS)
    q = q.instant() if instant else q.range()
    if legend:
        q = q.legend_format(legend)
    if table:
        q = q.format(prom_models.PromQueryFormat.TABLE)
    elif heatmap:
        q = q.format(prom_models.PromQueryFormat.HEATMAP)
    return q.exemplar(exemplar)


def traceql(query: str, limit: int = 20) -> tempo.TempoQuery:
    return (
        tempo.TempoQuery()
        .datasource(TEMPO)
        .query_type("traceql")
        .query(query)
        .limit(limit)
        .table_type(SearchTableType.TRACES)
    )


class _Panel(Protocol):
    def with_target(self, target: Any) -> Self: ...


P = TypeVar("P", bound=_Panel)


def with_targets(panel: P, targets: Sequence[prometheus.Dataquery | tempo.TempoQuery]) -> P:
    """Attach targets with refIds A, B, C... in order."""
    for i, target in enumerate(targets):
        panel = panel.with_target(target.ref_id(chr(ord("A") + i)))
    return panel


def prom_timeseries(title: str, description: str, unit: str) -> timeseries.Panel:
    """A Prometheus time series panel whose axis starts at zero: the base of the rate panels."""
    return timeseries.Panel().title(title).description(description).datasource(PROMETHEUS).unit(unit).min(0)


def last_value() -> common.ReduceDataOptions:
    """Stat/bar gauge reduction: each series' last value (instant queries return one)."""
    return common.ReduceDataOptions().values(False).calcs(["lastNotNull"])


def thresholds(*steps: tuple[float | None, str]) -> gd.ThresholdsConfig:
    return (
        gd.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=v, color=c) for v, c in steps])
    )


# --- template variables -------------------------------------------------------------------------
def variables() -> list[cogbuilder.Builder[VariableModel]]:
    """service, team, model, pipeline: multi-value with "All" (regex `.*`, also matching series
    that do not carry the label at all, e.g. local runs without a pipeline)."""
    source = pn.CALLS
    out: list[cogbuilder.Builder[VariableModel]] = []
    for var, lbl in VARIABLES.items():
        match = "" if lbl == pn.JOB else f'{{{pn.JOB}=~"$service"}}'
        query = f"label_values({source}{match}, {lbl})"
        out.append(
            gd.QueryVariable(var)
            .label(var.capitalize())
            .datasource(PROMETHEUS)
            .query(query)
            .multi(True)
            .include_all(True)
            .all_value(ALL_VALUE)
            .current(VariableOption(selected=True, text="All", value="$__all"))
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
            .hide(VariableHide.DONT_HIDE)
        )
    return out


# --- substitution (for tests and for running panel queries outside Grafana) -------------------
_BUILTINS: Final[Mapping[str, str]] = {
    "__range": "1h",
    "__rate_interval": "1m",
    "__interval": "30s",
    "__range_s": "3600",
}
_VAR_RE: Final = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def substitute(expr: str, values: Mapping[str, str] | None = None) -> str:
    """Replace Grafana variables (``$team``, ``${team}``, ``${team:regex}``, ``$__range``...).

    Dashboard variables default to the "All" value; built-ins to `_BUILTINS`. An unknown
    variable raises `KeyError`, so a query cannot silently keep a ``$``.
    """
    merged = {**_BUILTINS, **{v: ALL_VALUE for v in VARIABLES}, **(values or {})}

    def repl(m: re.Match[str]) -> str:
        return merged[m.group(1) or m.group(2)]

    return _VAR_RE.sub(repl, expr)
