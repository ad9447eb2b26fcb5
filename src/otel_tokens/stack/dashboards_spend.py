"""Dashboard 1, Spend overview: what is being spent, how fast, on what, by whom."""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as gd
from grafana_foundation_sdk.models.common import BigValueGraphMode, GraphDrawStyle
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync

from otel_tokens import names as n
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

UID = "otel-tokens-spend"
TITLE = "otel-tokens / Spend overview"

COST = sel(pn.COST)
_UNSEEN = f'{pn.COST_STATUS}=~"{pn.COST_STATUS_UNPRICED}|{pn.COST_STATUS_UNKNOWN_USAGE}"'
SPEND_OVER_RANGE = sum_spent(COST)
SPEND_RATE = f"3600 * {sum_rate(COST)}"

_RANGE_NOTE = (
    " Counted per series as growth over the range, including series that started inside it"
    " (short CI and CLI runs), which plain increase() would miss."
)


def _stat(title: str, description: str, expr: str, unit: str, *, legend: str = "") -> stat.Panel:
    return with_targets(
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .decimals(2 if unit == "currencyUSD" else 0)
        .graph_mode(BigValueGraphMode.NONE)
        .reduce_options(last_value())
        .height(4)
        .span(4),
        [prom(expr, legend, instant=True)],
    )


def _rate_panel(
    title: str, description: str, targets: list[prometheus.Dataquery], unit: str = "currencyUSD"
) -> timeseries.Panel:
    return with_targets(
        prom_timeseries(title, description, unit)
        .fill_opacity(10)
        .draw_style(GraphDrawStyle.LINE)
        .height(8)
        .span(12),
        targets,
    )


def _ranked(
    title: str, description: str, expr: str, legend: str, unit: str = "currencyUSD"
) -> bargauge.Panel:
    return with_targets(
        bargauge.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .decimals(2)
        .min(0)
        .reduce_options(last_value())
        .height(8)
        .span(12),
        [prom(expr, legend, instant=True)],
    )


def build() -> gd.Dashboard:
    d = (
        gd.Dashboard(TITLE)
        .uid(UID)
        .tags(["otel-tokens", "llm", "cost"])
        .description("LLM token spend from otel-tokens: totals, rates and who/what spends it.")
        .time("now-24h", "now")
        .refresh("1m")
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .variables(variables())
    )
    d = d.with_row(gd.Row("Spend"))
    for panel in (
        _stat(
            "Spend over the range",
            "USD spent in the selected time range." + _RANGE_NOTE,
            SPEND_OVER_RANGE,
            "currencyUSD",
        ),
        _stat(
            "Spend in the last hour",
            "USD spent in the last 60 minutes." + _RANGE_NOTE,
            sum_spent(COST, "1h"),
            "currencyUSD",
        ),
        _stat(
            "Spend rate now",
            "USD per hour, from the last 5 minutes.",
            f"3600 * {sum_rate(COST, window='5m')}",
            "currencyUSD",
        ),
        _stat(
            "LLM calls over the range",
            "Instrumented LLM calls (all outcomes).",
            sum_spent(sel(pn.CALLS)),
            "short",
        ),
        _stat(
            "Cache savings over the range",
            "USD the provider's prompt cache saved: cache-read tokens priced as uncached input minus"
            " their cache price.",
            sum_spent(sel(pn.CACHE_SAVINGS)),
            "currencyUSD",
        ),
        _stat(
            "Unpriced calls over the range",
            "Calls with no cost: an unknown model (cost status `unpriced`) or a response without"
            " usage (`unknown_usage`). Their spend is invisible everywhere else; add a prices file"
            " (OTEL_TOKENS_PRICES) or enable usage reporting.",
            sum_spent(sel(pn.CALLS, _UNSEEN)),
            "short",
        ).thresholds(thresholds((None, "green"), (1, "orange"))),
    ):
        d = d.with_panel(panel)
    d = d.with_panel(
        _rate_panel(
            "Spend rate",
            "USD per hour. Exemplars (dots) link to the trace of a call that contributed.",
            [prom(SPEND_RATE, "spend", exemplar=True)],
        ).span(24)
    )

    d = d.with_row(gd.Row("Breakdown"))
    for label, name in ((pn.PROVIDER, "provider"), (pn.REQUEST_MODEL, "model"), (pn.TEAM, "team")):
        labels = (pn.PROVIDER, pn.REQUEST_MODEL) if name == "model" else (label,)
        names = legend(*labels)
        d = d.with_panel(
            _rate_panel(
                f"Spend rate by {name}",
                f"USD per hour by {name}.",
                [prom(f"3600 * {sum_rate(COST, labels)}", names, exemplar=True)],
            )
        ).with_panel(
            _ranked(
                f"Spend over the range by {name}",
                f"USD spent in the selected range by {name}." + _RANGE_NOTE,
                f"sort_desc({sum_spent(COST, labels=labels)})",
                names,
            )
        )

    # SDK series carry no source label: name them "sdk" next to the coding agents
    def by_source(expr: str) -> str:
        return f'label_replace({expr}, "{pn.SOURCE}", "{n.SOURCE_SDK}", "{pn.SOURCE}", "")'

    d = d.with_panel(
        _rate_panel(
            "Spend rate by source",
            "USD per hour by who made the calls: instrumented Python (sdk) or a coding agent"
            " (claude_code, codex, gemini_cli; priced by the collector from genai-prices).",
            [prom(by_source(f"3600 * {sum_rate(COST, (pn.SOURCE,))}"), legend(pn.SOURCE))],
        )
    ).with_panel(
        _ranked(
            "Spend over the range by source",
            "USD spent in the selected range by source (sdk or coding agent)." + _RANGE_NOTE,
            f"sort_desc({by_source(sum_spent(COST, labels=(pn.SOURCE,)))})",
            legend(pn.SOURCE),
        )
    )
    d = (
        d.with_panel(
            _rate_panel(
                "Tokens by type",
                "Tokens per second by type. input includes cache reads and writes; output includes"
                " reasoning; cache_read, cache_write and reasoning are the parts.",
                [prom(sum_rate(sel(pn.TOKENS), (pn.TOKEN_TYPE,)), legend(pn.TOKEN_TYPE))],
                unit="short",
            )
        )
        .with_panel(
            _rate_panel(
                "Cache savings rate",
                "USD per hour saved by prompt-cache reads, by model.",
                [
                    prom(
                        f"3600 * {sum_rate(sel(pn.CACHE_SAVINGS), (pn.REQUEST_MODEL,))}",
                        legend(pn.REQUEST_MODEL),
                    )
                ],
            )
        )
        .with_panel(
            with_targets(
                table.Panel()
                .title("Unpriced calls by model")
                .description(
                    "Calls over the range whose cost could not be computed, by model and cost status."
                    " `unpriced`: the model has no price (add it to OTEL_TOKENS_PRICES);"
                    " `unknown_usage`: the response carried no token usage."
                )
                .datasource(PROMETHEUS)
                .height(8)
                .span(24),
                [
                    prom(
                        sum_spent(
                            sel(pn.CALLS, _UNSEEN),
                            labels=(pn.PROVIDER, pn.REQUEST_MODEL, pn.RESPONSE_MODEL, pn.COST_STATUS),
                        ),
                        instant=True,
                        table=True,
                    )
                ],
            )
        )
    )

    user_note = (
        "Per-user spend. Optional: `user_id` is only present when the application sets a user"
        " (otel_tokens.task(user=...) or OTEL_TOKENS_USER), and with OTEL_TOKENS_HASH_USER_IDS=true"
        " it is a stable keyed pseudonym, not the person's id. Collapsed by default so the"
        " dashboard does not open on a per-person view: cost visibility without surveillance."
    )
    user_sel = sel(pn.COST, f'{pn.USER}!=""')
    users = (
        gd.Row("By user (optional, pseudonymisable)")
        .collapsed(True)
        .with_panel(
            _rate_panel(
                "Spend rate by user",
                user_note,
                [prom(f"3600 * {sum_rate(user_sel, (pn.USER,))}", legend(pn.USER))],
            )
        )
        .with_panel(
            _ranked(
                "Spend over the range by user",
                user_note,
                f"sort_desc({sum_spent(user_sel, labels=(pn.USER,))})",
                legend(pn.USER),
            )
        )
    )
    return d.with_row(users)
