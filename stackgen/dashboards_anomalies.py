"""Dashboard 3, Anomalies and alerts: the scores the alert rules compute, their states, the raw series."""

from __future__ import annotations

from grafana_foundation_sdk.builders import common, prometheus, statetimeline, timeseries
from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.models.common import GraphThresholdsStyleMode
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync

from stackgen import promnames as pn
from stackgen import rules
from stackgen.dashboards_common import (
    PROMETHEUS,
    legend,
    prom,
    sel,
    sum_rate,
    thresholds,
    variables,
    with_targets,
)

UID = "otel-tokens-anomalies"
TITLE = "otel-tokens / Anomalies and alerts"

T = rules.DEFAULTS
ALERT_PREFIX = "OtelTokens"
ALERT_KEY = (
    "alertname",
    "alertstate",
    pn.TEAM,
    pn.PROVIDER,
    pn.REQUEST_MODEL,
    pn.TASK_NAME,
    pn.TASK_SIZE,
    pn.BUDGET,
)
ALERT_STATES = f'sum by ({", ".join(ALERT_KEY)}) (ALERTS{{alertname=~"{ALERT_PREFIX}.*"}})'
TEAM_LEGEND = legend(pn.TEAM)
MODEL_LEGEND = legend(pn.PROVIDER, pn.REQUEST_MODEL, sep="/")
TASK_LEGEND = legend(pn.TASK_NAME, pn.TASK_SIZE)


def _series(
    title: str,
    description: str,
    targets: list[prometheus.Dataquery],
    unit: str,
    threshold: float | None = None,
) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).description(description).datasource(PROMETHEUS).unit(unit)
    if threshold is not None:
        panel = panel.thresholds(thresholds((None, "green"), (threshold, "red"))).thresholds_style(
            common.GraphThresholdsStyleConfig().mode(GraphThresholdsStyleMode.LINE)
        )
    return with_targets(panel.height(8).span(12), targets)


def _alert_list() -> gd.Panel:
    """Grafana-managed alert rules (provisioned from the same definitions as the Prometheus rules).
    The alert list panel has no query and therefore no datasource."""
    return (
        gd.Panel()
        .type("alertlist")
        .title("Grafana alerts (otel-tokens rules)")
        .description("Firing and pending Grafana-managed alerts generated from stackgen/rules.py.")
        .options(
            {
                "alertInstanceLabelFilter": "",
                "alertName": ALERT_PREFIX,
                "dashboardAlerts": False,
                "groupBy": [],
                "groupMode": "default",
                "maxItems": 20,
                "showInstances": True,
                "sortOrder": 1,
                "stateFilter": {
                    "error": True,
                    "firing": True,
                    "noData": False,
                    "normal": False,
                    "pending": True,
                },
                "viewMode": "list",
            }
        )
        .height(9)
        .span(8)
    )


def build() -> gd.Dashboard:
    team_rate = sel(pn.spend_per_hour(pn.LEVEL_TEAM))
    model_rate = sel(pn.spend_per_hour(pn.LEVEL_MODEL))
    z = f"{T.spike_zscore:g}"
    spike = (
        f"The spend-spike alerts fire when this score stays above {z} for {T.spike_for} and the spend"
        f" rate is above ${T.spike_min_usd_per_hour:g}/h (the floor that keeps idle services quiet)."
    )
    d = (
        gd.Dashboard(TITLE)
        .uid(UID)
        .tags(["otel-tokens", "llm", "cost", "alerts"])
        .description("Anomaly scores behind the otel-tokens alert rules, alert states, and the raw series.")
        .time("now-6h", "now")
        .refresh("30s")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .variables(variables())
    )
    d = (
        d.with_row(gd.Row("Alert states"))
        .with_panel(_alert_list())
        .with_panel(
            with_targets(
                statetimeline.Panel()
                .title("Prometheus alert states")
                .description(
                    "ALERTS from the Prometheus rules (deploy/prometheus/rules): pending, then firing."
                    " Not filtered by the dashboard variables: an alert concerns the whole fleet."
                )
                .datasource(PROMETHEUS)
                .height(9)
                .span(16),
                [
                    prom(
                        ALERT_STATES,
                        legend(
                            "alertname", "alertstate", pn.TEAM, pn.PROVIDER, pn.REQUEST_MODEL, pn.TASK_NAME
                        ),
                    )
                ],
            )
        )
    )

    d = (
        d.with_row(gd.Row("Spend spikes"))
        .with_panel(
            _series(
                "Spend anomaly score by team (z-score)",
                "(5m spend rate - its 1-day mean) / its 1-day standard deviation, per team. " + spike,
                [prom(sel(pn.TEAM_SPEND_ZSCORE), TEAM_LEGEND)],
                "short",
                T.spike_zscore,
            )
        )
        .with_panel(
            _series(
                "Spend anomaly score by model (z-score)",
                "The same score per provider and model. " + spike,
                [prom(sel(pn.MODEL_SPEND_ZSCORE), MODEL_LEGEND)],
                "short",
                T.spike_zscore,
            )
        )
        .with_panel(
            _series(
                "Team spend rate vs its 1-day baseline",
                "USD per hour: the 5m rate the rule sees, its 1-day mean, and the alert level (mean + "
                f"{z} standard deviations).",
                [
                    prom(team_rate, f"{TEAM_LEGEND} 5m rate"),
                    prom(f"3600 * {sel(pn.TEAM_SPEND_AVG_1D)}", f"{TEAM_LEGEND} 1-day mean"),
                    prom(
                        f"3600 * ({sel(pn.TEAM_SPEND_AVG_1D)} + {z} * {sel(pn.TEAM_SPEND_STDDEV_1D)})",
                        f"{TEAM_LEGEND} alert level",
                    ),
                ],
                "currencyUSD",
                T.spike_min_usd_per_hour,
            )
        )
        .with_panel(
            _series(
                "Model spend rate vs its 1-day baseline",
                f"USD per hour per provider/model: 5m rate, 1-day mean and the alert level (mean + {z} sd).",
                [
                    prom(model_rate, f"{MODEL_LEGEND} 5m rate"),
                    prom(f"3600 * {sel(pn.MODEL_SPEND_AVG_1D)}", f"{MODEL_LEGEND} 1-day mean"),
                    prom(
                        f"3600 * ({sel(pn.MODEL_SPEND_AVG_1D)} + {z} * {sel(pn.MODEL_SPEND_STDDEV_1D)})",
                        f"{MODEL_LEGEND} alert level",
                    ),
                ],
                "currencyUSD",
                T.spike_min_usd_per_hour,
            )
        )
        .with_panel(
            _series(
                "Spend rate by team and model, with exemplars",
                "The raw series under the scores. Exemplar dots link a spike to the trace of a call in it.",
                [
                    prom(
                        f"3600 * {sum_rate(sel(pn.COST), (pn.TEAM, pn.PROVIDER, pn.REQUEST_MODEL))}",
                        f"{TEAM_LEGEND} {MODEL_LEGEND}",
                        exemplar=True,
                    )
                ],
                "currencyUSD",
            ).span(24)
        )
    )

    d = (
        d.with_row(gd.Row("Runaway loops and retries"))
        .with_panel(
            _series(
                "LLM calls per task vs its 1-day average",
                f"Per task name and size over 15m. The runaway-loop alert fires above {T.loop_factor:g}x the"
                f" average and above {T.loop_min_calls_per_task:g} calls per task, with at least"
                f" {T.loop_min_tasks:g} finished tasks.",
                [
                    prom(sel(pn.TASK_LLM_CALLS_PER_TASK), f"{TASK_LEGEND} calls/task"),
                    prom(
                        f"{T.loop_factor:g} * {sel(pn.TASK_LLM_CALLS_PER_TASK_AVG_1D)}",
                        f"{TASK_LEGEND} alert level",
                    ),
                    prom(sel(pn.TASK_TASKS_15M), f"{TASK_LEGEND} tasks in 15m"),
                ],
                "short",
                T.loop_min_calls_per_task,
            )
        )
        .with_panel(
            _series(
                "Repeated identical requests per minute",
                "Requests repeating an earlier one of the same task; the alert fires above"
                f" {T.repeats_per_minute:g}/min. The raw series has exemplars linking to a repeating trace.",
                [
                    prom(f"60 * {sel(pn.TASK_LOOP_REPEATS_RATE)}", legend(pn.TASK_NAME)),
                    prom(
                        f"60 * {sum_rate(sel(pn.LOOP_REPEATS), (pn.TASK_NAME,))}",
                        legend(pn.TASK_NAME) + " (raw)",
                        exemplar=True,
                    ),
                ],
                "short",
                T.repeats_per_minute,
            )
        )
        .with_panel(
            _series(
                "SDK retries per call by model",
                f"Retries per LLM call over 5m; the retry-storm alert fires above {T.retry_ratio:g}.",
                [
                    prom(sel(pn.MODEL_RETRIES_PER_CALL), MODEL_LEGEND),
                    prom(
                        sum_rate(sel(pn.RETRIES), (pn.PROVIDER, pn.REQUEST_MODEL)),
                        f"{MODEL_LEGEND} retries/s (raw)",
                        exemplar=True,
                    ),
                ],
                "short",
                T.retry_ratio,
            )
        )
        .with_panel(
            _series(
                "Calls without a cost by model (30m)",
                "Calls whose spend is invisible: cost status unpriced (no price for the model) or"
                " unknown_usage (no usage in the response). The unpriced-model alert fires above 0.",
                [prom(sel(pn.MODEL_UNSEEN_CALLS_30M), f"{MODEL_LEGEND} {{{{{pn.COST_STATUS}}}}}")],
                "short",
                1,
            )
        )
    )

    d = (
        d.with_row(gd.Row("Daily budget burn"))
        .with_panel(
            _series(
                "Spend today and projected end of day",
                "USD since 00:00 UTC, and that plus the last hour's rate times the time left today:"
                " the daily-budget alerts (deploy/budget.example.yaml) fire when the projection"
                " exceeds a budget.",
                [
                    prom(pn.SPEND_TODAY, "spent today"),
                    prom(
                        f"{pn.SPEND_TODAY} + {pn.SPEND_RATE_1H} * (86400 - time() % 86400)",
                        "projected end of day",
                    ),
                ],
                "currencyUSD",
            )
        )
        .with_panel(
            _series(
                "Team spend today and projected end of day",
                "Per team: USD since 00:00 UTC and the end-of-day projection.",
                [
                    prom(sel(pn.TEAM_SPEND_TODAY), f"{TEAM_LEGEND} spent today"),
                    prom(
                        f"{sel(pn.TEAM_SPEND_TODAY)} + on ({pn.TEAM}) {sel(pn.TEAM_SPEND_RATE_1H)}"
                        " * (86400 - time() % 86400)",
                        f"{TEAM_LEGEND} projected",
                    ),
                ],
                "currencyUSD",
            )
        )
    )
    return d
