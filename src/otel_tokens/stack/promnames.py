"""Every Prometheus metric and label name the stack's rules and dashboards use, in one place.

The collector translates OpenTelemetry names: dots become underscores, the unit is
appended in Prometheus' words (``s`` becomes ``seconds``, ``USD`` stays, units in braces
such as ``{call}`` add nothing), and counters get ``_total``. `metric()` and `label()`
apply that translation to the constants of `otel_tokens.names`, so if the real pipeline
translates differently (``deploy/PROM_NAMES.md`` records what it produces) the
correction is one edit here.

Recorded series follow the Prometheus convention ``level:metric:operations``: the level
says which labels are kept (``otel_tokens_team`` keeps the team, ``otel_tokens`` keeps
none), the operations say how it was computed (``rate5m``, ``zscore1d``).
"""

from __future__ import annotations

from typing import Final

from otel_tokens import names as n


def label(attribute: str) -> str:
    """The Prometheus label an OpenTelemetry attribute becomes."""
    return attribute.replace(".", "_")


_UNITS: Final = {"s": "seconds", "ms": "milliseconds", "By": "bytes"}  # UCUM -> Prometheus


def metric(name: str, unit: str = "", *, counter: bool = False) -> str:
    """The Prometheus metric name an OpenTelemetry instrument becomes (without histogram suffixes)."""
    out = name.replace(".", "_")
    if unit and not unit.startswith("{"):
        out += "_" + _UNITS.get(unit, unit)
    return out + "_total" if counter else out


# --- raw series, as exported by the collector ---------------------------------------------
COST: Final = metric(n.M_COST, n.UNIT_USD, counter=True)  # otel_tokens_cost_USD_total
TOKENS: Final = metric(n.M_TOKENS, n.UNIT_TOKEN, counter=True)
CALLS: Final = metric(n.M_CALLS, n.UNIT_CALL, counter=True)
RETRIES: Final = metric(n.M_RETRIES, "{retry}", counter=True)
LOOP_REPEATS: Final = metric(n.M_LOOP_REPEATS, n.UNIT_CALL, counter=True)
TASKS: Final = metric(n.M_TASKS, "{task}", counter=True)
CACHE_SAVINGS: Final = metric(n.M_CACHE_SAVINGS, n.UNIT_USD, counter=True)
TASK_COST: Final = metric(n.M_TASK_COST, n.UNIT_USD)  # histogram: add _bucket/_sum/_count
TASK_LLM_CALLS: Final = metric(n.M_TASK_LLM_CALLS, n.UNIT_CALL)  # histogram
OPERATION_DURATION: Final = metric(n.M_OPERATION_DURATION, n.UNIT_SECONDS)  # histogram
TOKEN_USAGE: Final = metric(n.M_TOKEN_USAGE, n.UNIT_TOKEN)  # histogram
# a gauge of unit "1" gets Prometheus' "_ratio" suffix
BUDGET_UTILIZATION: Final = metric(n.M_BUDGET_UTILIZATION) + "_ratio"
BUDGET_CROSSINGS: Final = metric(n.M_BUDGET_CROSSINGS, "{crossing}", counter=True)
BUDGET_LEDGER_ERRORS: Final = metric(n.M_BUDGET_LEDGER_ERRORS, "{error}", counter=True)

# --- labels ----------------------------------------------------------------------------------
JOB: Final = "job"  # service.namespace/service.name, set by the exporter
INSTANCE: Final = "instance"  # service.instance.id
LE: Final = "le"
PROVIDER: Final = label(n.GEN_AI_PROVIDER_NAME)
REQUEST_MODEL: Final = label(n.GEN_AI_REQUEST_MODEL)
RESPONSE_MODEL: Final = label(n.GEN_AI_RESPONSE_MODEL)
OPERATION: Final = label(n.GEN_AI_OPERATION_NAME)
TEAM: Final = label(n.TEAM)
USER: Final = label(n.USER_ID)
TASK_NAME: Final = label(n.TASK_NAME)
TASK_SIZE: Final = label(n.TASK_SIZE)
TASK_OUTCOME: Final = label(n.TASK_OUTCOME)
OUTCOME: Final = label(n.OUTCOME)
COST_STATUS: Final = label(n.COST_STATUS)
TOKEN_TYPE: Final = label(n.TOKEN_TYPE)
SOURCE: Final = label(n.SOURCE)  # claude_code, codex, gemini_cli; absent on SDK calls
RETRY_REASON: Final = label(n.RETRY_REASON)
PIPELINE: Final = label(n.CICD_PIPELINE_NAME)
PIPELINE_TASK: Final = label(n.CICD_PIPELINE_TASK_NAME)
TRIGGER: Final = label(n.TRIGGER)
AGENT: Final = label(n.GEN_AI_AGENT_NAME)
# labels the rules add to the alerts they raise
SEVERITY: Final = "severity"
BUDGET: Final = label(n.BUDGET_NAME)
BUDGET_THRESHOLD: Final = label(n.BUDGET_THRESHOLD)

# --- label values ----------------------------------------------------------------------------
COST_STATUS_PRICED: Final = "priced"
COST_STATUS_UNPRICED: Final = "unpriced"
COST_STATUS_UNKNOWN_USAGE: Final = "unknown_usage"
OUTCOME_BLOCKED: Final = n.OUTCOME_BLOCKED

# --- aggregation levels: recorded-series prefix and the labels kept ---------------------------
LEVEL_TOTAL: Final = ("otel_tokens", ())
LEVEL_PROVIDER: Final = ("otel_tokens_provider", (PROVIDER,))
LEVEL_MODEL: Final = ("otel_tokens_model", (PROVIDER, REQUEST_MODEL))
LEVEL_TEAM: Final = ("otel_tokens_team", (TEAM,))
LEVEL_TASK: Final = ("otel_tokens_task", (TASK_NAME,))
LEVEL_TASK_SIZE: Final = ("otel_tokens_task_size", (TASK_NAME, TASK_SIZE))
LEVEL_PIPELINE: Final = ("otel_tokens_pipeline", (PIPELINE, PIPELINE_TASK))
LEVEL_SERVICE: Final = ("otel_tokens_service", (JOB,))
SPEND_LEVELS: Final = (
    LEVEL_TOTAL, LEVEL_PROVIDER, LEVEL_MODEL, LEVEL_TEAM, LEVEL_TASK, LEVEL_PIPELINE, LEVEL_SERVICE,
)  # fmt: skip


def spend_per_second(level: tuple[str, tuple[str, ...]]) -> str:
    """USD per second over 5m at this level, e.g. ``otel_tokens_team:spend_usd_per_second:rate5m``."""
    return f"{level[0]}:spend_usd_per_second:rate5m"


def spend_per_hour(level: tuple[str, tuple[str, ...]]) -> str:
    """USD per hour over 5m at this level (the per-second rate times 3600)."""
    return f"{level[0]}:spend_usd_per_hour:rate5m"


# --- recorded series (otel_tokens.stack.rules writes the rules; dashboards read them) -------------------
SPEND_RATE: Final = spend_per_second(LEVEL_TOTAL)
SPEND_RATE_HOURLY: Final = spend_per_hour(LEVEL_TOTAL)
SPEND_RATE_1H: Final = "otel_tokens:spend_usd_per_second:rate1h"
TEAM_SPEND_RATE_1H: Final = "otel_tokens_team:spend_usd_per_second:rate1h"
SPEND_TODAY: Final = "otel_tokens:spend_usd:today"  # USD spent since 00:00 UTC
TEAM_SPEND_TODAY: Final = "otel_tokens_team:spend_usd:today"
DAY_OF_YEAR: Final = "otel_tokens:time:day_of_year"  # helper for the "today" rules
TEAM_SPEND_FILLED: Final = "otel_tokens_team:spend_usd_per_second:rate5m_or_zero"
TEAM_SPEND_AVG_1D: Final = "otel_tokens_team:spend_usd_per_second:avg_over_time1d"
TEAM_SPEND_STDDEV_1D: Final = "otel_tokens_team:spend_usd_per_second:stddev_over_time1d"
TEAM_SPEND_ZSCORE: Final = "otel_tokens_team:spend_usd_per_second:zscore1d"
MODEL_SPEND_FILLED: Final = "otel_tokens_model:spend_usd_per_second:rate5m_or_zero"
MODEL_SPEND_AVG_1D: Final = "otel_tokens_model:spend_usd_per_second:avg_over_time1d"
MODEL_SPEND_STDDEV_1D: Final = "otel_tokens_model:spend_usd_per_second:stddev_over_time1d"
MODEL_SPEND_ZSCORE: Final = "otel_tokens_model:spend_usd_per_second:zscore1d"
CALLS_RATE: Final = "otel_tokens:calls_per_second:rate5m"
CALLS_RATE_BY_STATUS: Final = "otel_tokens_status:calls_per_second:rate5m"  # outcome, cost status
MODEL_CALLS_RATE: Final = "otel_tokens_model:calls_per_second:rate5m"
MODEL_RETRIES_RATE: Final = "otel_tokens_model:retries_per_second:rate5m"
MODEL_RETRIES_PER_CALL: Final = "otel_tokens_model:retries_per_call:ratio_rate5m"
MODEL_UNSEEN_CALLS_30M: Final = "otel_tokens_model_status:unseen_cost_calls:increase30m"
TASK_LLM_CALLS_PER_TASK: Final = "otel_tokens_task_size:llm_calls_per_task:ratio_rate15m"
TASK_LLM_CALLS_PER_TASK_AVG_1D: Final = "otel_tokens_task_size:llm_calls_per_task:avg_over_time1d"
TASK_TASKS_15M: Final = "otel_tokens_task_size:finished_tasks:increase15m"
TASK_LOOP_REPEATS_RATE: Final = "otel_tokens_task:loop_repeats_per_second:rate5m"
TASKS_RATE: Final = "otel_tokens_task:tasks_per_second:rate5m"  # by task name and outcome
# budgets, by otel_tokens_budget_name (otel_tokens.stack.budget_rules)
BUDGET_UTIL: Final = "otel_tokens_budget:utilization:max"  # spent / limit, the freshest process's
BUDGET_UTIL_DERIV: Final = "otel_tokens_budget:utilization_per_second:deriv1h"
BUDGET_PROJECTED: Final = "otel_tokens_budget:utilization:projected_period_end"
BUDGET_BLOCKED_RATE: Final = "otel_tokens_budget:blocked_calls_per_second:rate5m"

# The levels the z-score and budget rules are computed at.
MODEL_LABELS: Final = LEVEL_MODEL[1]
TEAM_LABELS: Final = LEVEL_TEAM[1]
TASK_SIZE_LABELS: Final = LEVEL_TASK_SIZE[1]
