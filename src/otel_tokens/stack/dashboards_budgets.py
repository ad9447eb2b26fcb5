"""Dashboard 4, Budgets: where each budget of the budget file stands, where it is heading, and
what it refused."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, stat, table
from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.models.common import BigValueGraphMode, GraphDrawStyle
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync

from otel_tokens.budgets.policy import Policy
from otel_tokens.stack import promnames as pn
from otel_tokens.stack.dashboards_common import (
    PROMETHEUS,
    last_value,
    legend,
    prom,
    prom_timeseries,
    sel,
    sum_rate,
    sum_spent,
    thresholds,
    variables,
    with_targets,
)

UID = "otel-tokens-budgets"
TITLE = "otel-tokens / Budgets"
MAX_LIMIT_LINES = 12  # budgets drawn with their limit in "Spend vs limit"

BLOCKED = sel(pn.CALLS, f'{pn.OUTCOME}="{pn.OUTCOME_BLOCKED}"')
_LEVELS = thresholds((None, "green"), (0.75, "yellow"), (0.9, "orange"), (1.0, "red"))


def _number(value: float) -> str:
    return repr(float(value)).removesuffix(".0")


def build(policy: Policy | None = None) -> gd.Dashboard:
    if policy is None:
        from otel_tokens.stack.rules import default_policy

        policy = default_policy()
    d = (
        gd.Dashboard(TITLE)
        .uid(UID)
        .tags(["otel-tokens", "llm", "cost", "budgets"])
        .description(
            "The budgets of the budget file (OTEL_TOKENS_BUDGETS): utilisation from the shared ledger,"
            " the projection to the period's end, and the calls hard budgets refused."
        )
        .time("now-24h", "now")
        .refresh("1m")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .variables(variables())
    )
    d = d.with_row(gd.Row("Where each budget stands"))
    d = d.with_panel(
        with_targets(
            bargauge.Panel()
            .title("Utilisation per budget")
            .description(
                "Spent / limit in the current period, from the ledger (the freshest process's view)."
                " Soft budgets may pass 100%; hard budgets refuse the call that would."
            )
            .datasource(PROMETHEUS)
            .unit("percentunit")
            .min(0)
            .max(1)
            .thresholds(_LEVELS)
            .reduce_options(last_value())
            .height(8)
            .span(12),
            [prom(pn.BUDGET_UTIL, legend(pn.BUDGET), instant=True)],
        )
    )
    d = d.with_panel(
        with_targets(
            table.Panel()
            .title("Projected utilisation at the period's end")
            .description(
                "Utilisation now plus the last hour's burn rate times the time left in the period;"
                " at 100% or more the budget runs out first (alert OtelTokensBudgetExhaustionProjected)."
                " Per-task budgets have no calendar end and are not projected."
            )
            .datasource(PROMETHEUS)
            .unit("percentunit")
            .thresholds(_LEVELS)
            .height(8)
            .span(12),
            [prom(pn.BUDGET_PROJECTED, legend(pn.BUDGET), instant=True, table=True)],
        )
    )
    spend_targets = []
    for b in policy.budgets[:MAX_LIMIT_LINES]:
        match = f'{{{pn.BUDGET}="{b.name}"}}'
        limit = _number(float(b.limit_usd))
        spend_targets.append(prom(f"{pn.BUDGET_UTIL}{match} * {limit}", f"{b.name} spent"))
        spend_targets.append(prom(f"{pn.BUDGET_UTIL}{match} * 0 + {limit}", f"{b.name} limit"))
    d = d.with_panel(
        with_targets(
            prom_timeseries(
                "Spend vs limit over the period",
                "USD spent in each budget's period so far against its limit (from the budget file).",
                "currencyUSD",
            )
            .draw_style(GraphDrawStyle.LINE)
            .height(9)
            .span(24),
            spend_targets or [prom(f"{pn.BUDGET_UTIL} * 0", "no budgets")],
        )
    )
    d = d.with_panel(
        with_targets(
            prom_timeseries(
                "Spend per hour now, by team",
                "What is burning the budgets: USD per hour over the rate interval. Exemplars link to"
                " the traces of the calls.",
                "currencyUSD",
            )
            .draw_style(GraphDrawStyle.LINE)
            .height(8)
            .span(24),
            [prom(f"3600 * {sum_rate(sel(pn.COST), (pn.TEAM,))}", legend(pn.TEAM), exemplar=True)],
        )
    )
    d = d.with_row(gd.Row("Refusals and ledger health"))
    d = d.with_panel(
        with_targets(
            prom_timeseries(
                "Blocked calls per minute, by budget",
                "Calls a hard budget refused before they were sent (otel_tokens.outcome=blocked): the"
                " callers got BudgetExceeded. Their traces are always kept.",
                "short",
            )
            .fill_opacity(10)
            .draw_style(GraphDrawStyle.BARS)
            .height(8)
            .span(12),
            [prom(f"60 * {sum_rate(BLOCKED, (pn.BUDGET,))}", legend(pn.BUDGET))],
        )
    )
    for title, description, expr in (
        ("Blocked calls over the range", "Calls refused by hard budgets in the range.", sum_spent(BLOCKED)),
        (
            "Threshold crossings over the range",
            "Soft thresholds crossed (each reported once per budget, scope and period).",
            sum_spent(sel(pn.BUDGET_CROSSINGS)),
        ),
        (
            "Ledger errors over the range",
            "Budget checks the ledger could not answer (on_ledger_error decided: allow or block).",
            sum_spent(sel(pn.BUDGET_LEDGER_ERRORS)),
        ),
    ):
        d = d.with_panel(
            with_targets(
                stat.Panel()
                .title(title)
                .description(description)
                .datasource(PROMETHEUS)
                .unit("short")
                .decimals(0)
                .graph_mode(BigValueGraphMode.NONE)
                .reduce_options(last_value())
                .height(4)
                .span(4),
                [prom(expr, instant=True)],
            )
        )
    return d
