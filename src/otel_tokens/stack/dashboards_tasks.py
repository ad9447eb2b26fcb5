"""Dashboard 2, Tasks and agents: what a unit of work costs, as a distribution, and where money is wasted."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import bargauge, heatmap, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.models.common import BigValueGraphMode
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataTransformerConfig,
    DynamicConfigValue,
    VariableOption,
)

from otel_tokens import names as n
from otel_tokens.stack import promnames as pn
from otel_tokens.stack.dashboards_common import (
    PROMETHEUS,
    TEMPO,
    last_value,
    legend,
    prom,
    prom_timeseries,
    quantile,
    sel,
    sum_rate,
    sum_spent,
    traceql,
    variables,
    with_targets,
)

UID = "otel-tokens-tasks"
TITLE = "otel-tokens / Tasks and agents"

WASTED_OUTCOMES = "error|partial"  # otel_tokens.outcome of calls whose tokens bought nothing usable
WASTED = f'{pn.OUTCOME}=~"{WASTED_OUTCOMES}"'
QUANTILES = (0.5, 0.9, 0.99)
COUNT_COLUMNS = ("tasks", "finished tasks")
TASK_KEY = (pn.TASK_NAME, pn.TASK_SIZE)

TASK_COST_BUCKET = sel(pn.TASK_COST + "_bucket")
SUCCESS = f'{pn.TASK_OUTCOME}="{n.OUTCOME_SUCCESS}"'
FAILED = f'{pn.TASK_OUTCOME}!="{n.OUTCOME_SUCCESS}"'
RETRIES_OVER_RANGE = sum_spent(sel(pn.RETRIES))


def _merge_table(title: str, description: str, columns: Sequence[tuple[str, str]], unit: str) -> table.Panel:
    """One row per label set, one column per (header, instant expr), joined by Grafana's merge."""
    rename = {f"Value #{chr(ord('A') + i)}": header for i, (header, _) in enumerate(columns)}
    panel = table.Panel()
    for header in COUNT_COLUMNS:
        panel = panel.override_by_name(
            header,
            [
                DynamicConfigValue(id_val="unit", value="short"),
                DynamicConfigValue(id_val="decimals", value=0),
            ],
        )
    return with_targets(
        panel.title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .decimals(4 if unit == "currencyUSD" else 1)
        .with_transformation(DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            DataTransformerConfig(
                id_val="organize", options={"excludeByName": {"Time": True}, "renameByName": rename}
            )
        )
        .height(9)
        .span(12),
        [prom(expr, instant=True, table=True) for _, expr in columns],
    )


def mean(metric: str, labels: Sequence[str], *matchers: str) -> str:
    """Mean of a histogram over the range: growth of _sum / growth of _count."""
    total = sum_spent(sel(metric + "_sum", *matchers), labels=labels)
    return f"{total}\n/ {sum_spent(sel(metric + '_count', *matchers), labels=labels)}"


def _distribution_table(title: str, description: str, metric: str, unit: str) -> table.Panel:
    bucket = sel(metric + "_bucket")
    columns = [(f"p{round(q * 100)}", quantile(q, bucket, TASK_KEY)) for q in QUANTILES]
    columns.append(("mean", mean(metric, TASK_KEY)))
    columns.append(("tasks", sum_spent(sel(metric + "_count"), labels=TASK_KEY)))
    return _merge_table(title, description, columns, unit)


def _heatmap(title: str, description: str, metric: str, unit: str) -> heatmap.Panel:
    return with_targets(
        heatmap.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .calculate(False)
        .y_axis(heatmap.YAxisConfig().unit(unit))
        .cell_values(heatmap.CellValues().unit("short"))
        .exemplars_color("rgba(255,0,255,0.7)")
        .height(9)
        .span(12),
        [
            prom(
                sum_spent(sel(metric + "_bucket"), "$__interval", (pn.LE,)),
                "{{le}}",
                heatmap=True,
                exemplar=True,
            )
        ],
    )


def _quantiles_over_time(title: str, description: str, metric: str, unit: str) -> timeseries.Panel:
    bucket = sel(metric + "_bucket")
    return with_targets(
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .height(9)
        .span(12),
        [
            prom(quantile(q, bucket, (pn.TASK_NAME,), "1h"), f"p{round(q * 100)} {{{{{pn.TASK_NAME}}}}}")
            for q in QUANTILES
        ],
    )


def _stat(title: str, description: str, expr: str, unit: str) -> stat.Panel:
    return with_targets(
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .decimals(4 if unit == "currencyUSD" else 0)
        .graph_mode(BigValueGraphMode.NONE)
        .reduce_options(last_value())
        .height(4)
        .span(6),
        [prom(expr, instant=True)],
    )


def _timeseries(title: str, description: str, expr: str, legend: str, unit: str) -> timeseries.Panel:
    return with_targets(
        prom_timeseries(title, description, unit).height(8).span(12),
        [prom(expr, legend, exemplar=True)],
    )


def _traces(title: str, description: str, query: str) -> table.Panel:
    return with_targets(
        table.Panel().title(title).description(description).datasource(TEMPO).height(10).span(24),
        [traceql(query)],
    )


def min_cost_variables() -> list[gd.CustomVariable]:
    return [
        gd.CustomVariable(name)
        .label(label)
        .values("0,0.01,0.1,0.5,1,5,10,50")
        .current(VariableOption(selected=True, text=default, value=default))
        for name, label, default in (
            ("min_task_cost", "Min task cost (USD)", "1"),
            ("min_call_cost", "Min call cost (USD)", "0.1"),
        )
    ]


def build() -> gd.Dashboard:
    d = (
        gd.Dashboard(TITLE)
        .uid(UID)
        .tags(["otel-tokens", "llm", "cost", "tasks"])
        .description(
            "Cost per unit of work: distributions per task name and size, loops, retries, waste, CI."
        )
        .time("now-24h", "now")
        .refresh("1m")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .variables([*variables(), *min_cost_variables()])
    )
    peers = (
        " Compare a task with its peers of the same name and size: the spread (p50 to p99) is the"
        " signal, not a ranking of runs."
    )
    d = (
        d.with_row(gd.Row("Cost per task"))
        .with_panel(
            _heatmap(
                "Cost per task: distribution over time",
                "How many finished tasks fell in each"
                " cost bucket (USD) per interval. Exemplars link to task traces." + peers,
                pn.TASK_COST,
                "currencyUSD",
            )
        )
        .with_panel(
            _quantiles_over_time(
                "Cost per task: p50 / p90 / p99 (rolling 1h)",
                "Quantiles of USD per finished task by task name." + peers,
                pn.TASK_COST,
                "currencyUSD",
            )
        )
        .with_panel(
            _distribution_table(
                "Cost per task by name and size (over the range)",
                "Quantiles, mean and count of USD per finished task." + peers,
                pn.TASK_COST,
                "currencyUSD",
            )
        )
        .with_panel(
            _distribution_table(
                "LLM calls per task by name and size (over the range)",
                "Agent loop depth: LLM calls made inside one finished task (nested"
                " agents and reporting subprocesses included).",
                pn.TASK_LLM_CALLS,
                "short",
            )
        )
        .with_panel(
            _heatmap(
                "LLM calls per task: distribution over time",
                "Finished tasks per bucket of LLM calls per task.",
                pn.TASK_LLM_CALLS,
                "short",
            )
        )
        .with_panel(
            _timeseries(
                "Repeated identical requests by task",
                "Requests per second that repeat an earlier request of the same task (same model"
                " and messages): a stuck agent loop.",
                sum_rate(sel(pn.LOOP_REPEATS), (pn.TASK_NAME,)),
                legend(pn.TASK_NAME),
                "reqps",
            )
        )
    )

    d = d.with_row(gd.Row("Outcomes, retries and waste"))
    for panel in (
        _stat(
            "Cost per successful task",
            "Mean USD of tasks that ended with outcome success, over the range.",
            mean(pn.TASK_COST, (), SUCCESS),
            "currencyUSD",
        ),
        _stat(
            "Spend on failed tasks",
            "USD spent inside tasks whose outcome was not success, over the range.",
            sum_spent(sel(pn.TASK_COST + "_sum", FAILED)),
            "currencyUSD",
        ),
        _stat(
            "Wasted spend (failed calls)",
            "USD of LLM calls that failed after tokens were billed"
            " (outcome error or partial, e.g. a stream cut mid-way), over the range.",
            sum_spent(sel(pn.COST, WASTED)),
            "currencyUSD",
        ),
        _stat(
            "SDK retries",
            "Retries the openai/anthropic clients made (429, 5xx, timeouts), over the range.",
            RETRIES_OVER_RANGE,
            "short",
        ),
    ):
        d = d.with_panel(panel)
    d = (
        d.with_panel(
            _merge_table(
                "Cost per successful task vs spend on failed tasks, by task",
                "Per task name over the range: mean USD of a successful run, and the USD that failed"
                " runs burned.",
                [
                    (
                        "cost per successful task",
                        mean(pn.TASK_COST, (pn.TASK_NAME,), SUCCESS),
                    ),
                    (
                        "spend on failed tasks",
                        sum_spent(sel(pn.TASK_COST + "_sum", FAILED), labels=(pn.TASK_NAME,)),
                    ),
                    ("finished tasks", sum_spent(sel(pn.TASKS), labels=(pn.TASK_NAME,))),
                ],
                "currencyUSD",
            )
        )
        .with_panel(
            _timeseries(
                "Tasks finished by outcome",
                "Finished tasks per second by task name and outcome.",
                sum_rate(sel(pn.TASKS), (pn.TASK_NAME, pn.TASK_OUTCOME)),
                legend(pn.TASK_NAME, pn.TASK_OUTCOME),
                "short",
            )
        )
        .with_panel(
            _timeseries(
                "SDK retries by reason",
                "Retries per second by reason and model.",
                sum_rate(sel(pn.RETRIES), (pn.RETRY_REASON, pn.REQUEST_MODEL)),
                legend(pn.RETRY_REASON, pn.REQUEST_MODEL),
                "short",
            )
        )
        .with_panel(
            _timeseries(
                "Wasted spend rate by outcome",
                "USD per hour of calls with outcome error or partial.",
                f"3600 * {sum_rate(sel(pn.COST, WASTED), (pn.OUTCOME, pn.REQUEST_MODEL))}",
                legend(pn.OUTCOME, pn.REQUEST_MODEL),
                "currencyUSD",
            )
        )
    )

    ci = f'{pn.TRIGGER}="{n.TRIGGER_CI}"'
    pipeline_key = (pn.PIPELINE, pn.PIPELINE_TASK)
    d = (
        d.with_row(gd.Row("CI-triggered cost"))
        .with_panel(
            with_targets(
                bargauge.Panel()
                .title("CI-triggered cost by pipeline and job (over the range)")
                .description(
                    "USD of LLM calls made from CI runs (otel_tokens.trigger=ci), by pipeline and job."
                )
                .datasource(PROMETHEUS)
                .unit("currencyUSD")
                .decimals(2)
                .min(0)
                .reduce_options(last_value())
                .height(8)
                .span(12),
                [
                    prom(
                        f"sort_desc({sum_spent(sel(pn.COST, ci), labels=pipeline_key)})",
                        legend(*pipeline_key, sep=" / "),
                        instant=True,
                    )
                ],
            )
        )
        .with_panel(
            _timeseries(
                "CI spend rate by pipeline",
                "USD per hour from CI runs, by pipeline.",
                f"3600 * {sum_rate(sel(pn.COST, ci), (pn.PIPELINE,))}",
                legend(pn.PIPELINE),
                "currencyUSD",
            )
        )
        .with_panel(
            with_targets(
                bargauge.Panel()
                .title("Spend by trigger (over the range)")
                .description("CI versus local (developer) spend.")
                .datasource(PROMETHEUS)
                .unit("currencyUSD")
                .decimals(2)
                .min(0)
                .reduce_options(last_value())
                .height(5)
                .span(24),
                [prom(sum_spent(sel(pn.COST), labels=(pn.TRIGGER,)), legend(pn.TRIGGER), instant=True)],
            )
        )
    )

    service = 'resource.service.name =~ "${service:regex}"'
    d = (
        d.with_row(gd.Row("Most expensive traces"))
        .with_panel(
            _traces(
                "Most expensive tasks (traces)",
                "Task spans (invoke_workflow) above the cost threshold variable, from Tempo. Click a trace id"
                " to open the whole run: every LLM call, retry and subprocess. Tail sampling in the collector"
                " keeps every expensive, failing or looping trace.",
                f'{{ {service} && span.{n.GEN_AI_OPERATION_NAME} = "{n.OP_INVOKE_WORKFLOW}"'
                f" && span.{n.TASK_COST} > $min_task_cost }}"
                f" | select(span.{n.TASK_NAME}, span.{n.TASK_SIZE}, span.{n.TASK_COST},"
                f" span.{n.TASK_LLM_CALLS}, span.{n.TASK_RETRIES}, span.{n.TASK_OUTCOME})",
            )
        )
        .with_panel(
            _traces(
                "Most expensive LLM calls (traces)",
                "LLM call spans above the call cost threshold variable. Click a trace id to open the trace.",
                f"{{ {service} && span.{n.GEN_AI_USAGE_COST} > $min_call_cost }}"
                f" | select(span.{n.GEN_AI_REQUEST_MODEL}, span.{n.GEN_AI_USAGE_COST}, span.{n.TASK_NAME},"
                f" span.{n.RETRY_COUNT})",
            )
        )
    )
    return d
