"""A coding-agent run that lasts seconds is in every rate()/increase() panel after one flush.

The agents' per-call log records (the OTLP payloads Claude Code, Codex and Gemini CLI sent,
recorded in tests/agents/recorded) are replayed into the real collector as two short one-shot
processes of one CI job (each its own ``service.instance.id``, as two `claude -p` runs are).
collector/agents.yaml feeds the ``signal_to_metrics`` connector into config.yaml's own metrics
pipeline, so the agent counters go through the identity drop, delta accumulation, zero at the
start and interval like SDK metrics: one series per label set, starting at zero, whose last value
is the exact genai-prices sum of all the calls, and an SDK point written with the same labels adds
to that one series (one writer) instead of fighting it.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality

from otel_tokens.agents.normalise import Normaliser
from otel_tokens.agents.otlp import decode_logs
from otel_tokens.stack import dashboards, rules
from tests.stack.conftest import Stack
from tests.stack.test_collector import wait_until

pytestmark = [pytest.mark.stack, pytest.mark.slow]

RECORDED = Path(__file__).resolve().parents[1] / "agents" / "recorded"
PAYLOADS = {  # source -> (file, content type)
    "claude_code": ("claude_code-2.1.332-logs.pb", "application/x-protobuf"),
    "codex": ("codex-0.171.0-logs.pb", "application/x-protobuf"),
    "gemini_cli": ("gemini_cli-0.61.0-logs.json", "application/json"),
}
PROVIDER_IDS = {"anthropic": "anthropic", "openai": "openai", "gcp.gemini": "google"}
PROCESSES = 2  # one-shot runs of the same CI job


def _request(source: str) -> ExportLogsServiceRequest:
    name, ctype = PAYLOADS[source]
    raw = (RECORDED / name).read_bytes()
    request = ExportLogsServiceRequest()
    if ctype == "application/json":
        body = json.loads(raw)
        for rl in body["resourceLogs"]:  # OTLP/JSON ids are hex, protobuf's JSON mapping base64
            for sl in rl["scopeLogs"]:
                for record in sl["logRecords"]:
                    record.pop("traceId", None)
                    record.pop("spanId", None)
        json_format.ParseDict(body, request)
    else:
        request.ParseFromString(raw)
    return request


def _oracle(source: str) -> tuple[int, Decimal]:
    """Calls and their genai-prices cost, from the recorded payload (not from the collector)."""
    name, ctype = PAYLOADS[source]
    calls = Normaliser().calls(decode_logs((RECORDED / name).read_bytes(), ctype))
    total = Decimal(0)
    for call in calls:
        u = call.record.usage
        usage = genai_prices.Usage(
            input_tokens=u.input_tokens,
            output_tokens=u.output_tokens,
            cache_read_tokens=u.cache_read_tokens or None,
            cache_write_tokens=u.cache_write_tokens or None,
        )
        model = call.record.request_model or ""
        provider = PROVIDER_IDS[call.record.provider]
        total += genai_prices.calc_price(usage, model, provider_id=provider).total_price
    return len(calls), total


def _set(attributes: Any, key: str, value: str) -> None:
    for kv in attributes:
        if kv.key == key:
            kv.value.CopyFrom(AnyValue(string_value=value))
            return
    attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))


def _post(stack: Stack, path: str, body: bytes) -> None:
    request = urllib.request.Request(
        f"{stack.otlp_endpoint}{path}", data=body, headers={"content-type": "application/x-protobuf"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def _export(stack: Stack, source: str, task: str, process: int, extra: dict[str, str] | None = None) -> None:
    request = _request(source)
    now = time.time_ns()
    for rl in request.resource_logs:
        attrs = rl.resource.attributes
        _set(attrs, "service.name", f"ci-{task}")
        _set(attrs, "service.instance.id", f"{task}-{process}")  # each run is its own process
        _set(attrs, "otel_tokens.task.name", task)
        _set(attrs, "user.id", "ci")
        for key, value in (extra or {}).items():
            _set(attrs, key, value)
        for sl in rl.scope_logs:
            for record in sl.log_records:
                record.time_unix_nano = now
                record.observed_time_unix_nano = now
    _post(stack, "/v1/logs", request.SerializeToString())


def _close(got: float | None, want: Decimal) -> bool:
    return got is not None and abs(Decimal(repr(got)) - want) <= want * Decimal("1e-9")


@pytest.mark.parametrize("source", sorted(PAYLOADS))
def test_short_agent_runs_feed_rate_panels_with_the_exact_sum(source: str, stack: Stack) -> None:
    task = f"short-{source}-{uuid.uuid4().hex[:6]}"
    calls, cost = _oracle(source)
    assert calls >= 1 and cost > 0
    for process in range(PROCESSES):
        _export(stack, source, task, process)
    sel = f'otel_tokens_task_name="{task}"'
    want_calls, want_cost = calls * PROCESSES, cost * PROCESSES
    wait_until(lambda: stack.value(f"sum(otel_tokens_calls_total{{{sel}}})") == want_calls, 30)
    wait_until(lambda: _close(stack.value(f"sum(otel_tokens_cost_USD_total{{{sel}}})"), want_cost), 15)

    # one series for both processes: their identity was dropped, their deltas added up
    series = stack.query(f"otel_tokens_cost_USD_total{{{sel}}}")
    assert len(series) == 1, [s["metric"] for s in series]
    assert series[0]["metric"]["otel_tokens_source"] == source
    assert "instance" not in series[0]["metric"], series[0]["metric"]
    # the series starts at zero, so rate() and increase() see the whole run
    (samples,) = stack.query(f"otel_tokens_cost_USD_total{{{sel}}}[5m]")
    values = [float(v) for _, v in samples["values"]]
    assert values[0] == 0.0 and _close(values[-1], want_cost), values
    # the panels' shapes: rate- and increase-based spend, spend by source, calls per second
    for expr in (
        f"sum(rate(otel_tokens_cost_USD_total{{{sel}}}[5m]))",
        f"sum by (otel_tokens_source) (increase(otel_tokens_cost_USD_total{{{sel}}}[5m]))",
        f"sum(rate(otel_tokens_calls_total{{{sel}}}[5m]))",
        f"sum by (otel_tokens_token_type) (increase(otel_tokens_tokens_total{{{sel}}}[5m]))",
    ):
        got = stack.value(expr)
        assert got is not None and got > 0, expr
    # increase() over a window holding the zero and the last sample is the whole spend
    # (Prometheus extrapolates towards the window's edges, never below the true increase)
    increase = stack.value(f"sum(increase(otel_tokens_cost_USD_total{{{sel}}}[5m]))")
    assert increase is not None and Decimal(repr(increase)) >= want_cost * (1 - Decimal("1e-9"))


def _sdk_cost_point(labels: dict[str, str], scope: str, service: str, usd: float) -> bytes:
    """An SDK's delta point of otel_tokens.cost with exactly the labels of an agent series."""
    end = time.time_ns()
    request = ExportMetricsServiceRequest()
    rm = request.resource_metrics.add()
    _set(rm.resource.attributes, "service.name", service)
    _set(rm.resource.attributes, "service.instance.id", uuid.uuid4().hex)
    sm = rm.scope_metrics.add()
    sm.scope.name = scope
    metric = sm.metrics.add(name="otel_tokens.cost", unit="USD")
    metric.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    metric.sum.is_monotonic = True
    point = metric.sum.data_points.add(start_time_unix_nano=end - 1_000_000_000, time_unix_nano=end)
    point.as_double = usd
    for key, value in labels.items():
        _set(point.attributes, key, value)
    return request.SerializeToString()


def test_sdk_and_agent_points_of_one_series_have_one_writer(stack: Stack) -> None:
    """An SDK point with the very labels of an agent series adds to it: one running total."""
    task = f"mixed-{uuid.uuid4().hex[:6]}"
    calls, cost = _oracle("claude_code")
    _export(stack, "claude_code", task, 0)
    sel = f'otel_tokens_task_name="{task}"'
    wait_until(lambda: _close(stack.value(f"sum(otel_tokens_cost_USD_total{{{sel}}})"), cost), 30)
    (series,) = stack.query(f"otel_tokens_cost_USD_total{{{sel}}}")
    promoted = {  # Prometheus label -> OTLP attribute, for the labels the agent series carries
        "otel_tokens_source": "otel_tokens.source",
        "gen_ai_provider_name": "gen_ai.provider.name",
        "gen_ai_operation_name": "gen_ai.operation.name",
        "gen_ai_request_model": "gen_ai.request.model",
        "otel_tokens_outcome": "otel_tokens.outcome",
        "otel_tokens_cost_status": "otel_tokens.cost.status",
        "user_id": "user.id",
        "otel_tokens_task_name": "otel_tokens.task.name",
    }
    metric = series["metric"]
    unknown = set(metric) - set(promoted) - {"__name__", "job", "otel_scope_name"}
    assert not unknown, f"labels the SDK point would not carry: {unknown}"
    labels = {promoted[k]: v for k, v in metric.items() if k in promoted}
    sdk_usd = 0.125
    _post(stack, "/v1/metrics", _sdk_cost_point(labels, metric["otel_scope_name"], f"ci-{task}", sdk_usd))
    want = cost + Decimal(repr(sdk_usd))
    wait_until(lambda: _close(stack.value(f"sum(otel_tokens_cost_USD_total{{{sel}}})"), want), 30)
    # a later agent call still adds to the same total (two writers would overwrite each other)
    _export(stack, "claude_code", task, 1)
    want += cost
    wait_until(lambda: _close(stack.value(f"sum(otel_tokens_cost_USD_total{{{sel}}})"), want), 30)
    time.sleep(2.5)  # a few more intervals: the total stays, no writer resets it
    assert _close(stack.value(f"sum(otel_tokens_cost_USD_total{{{sel}}})"), want)
    assert len(stack.query(f"otel_tokens_cost_USD_total{{{sel}}}")) == 1
    (samples,) = stack.query(f"otel_tokens_cost_USD_total{{{sel}}}[5m]")
    values = [float(v) for _, v in samples["values"]]
    assert values == sorted(values), values  # never a drop: no second writer's lower total
    assert calls >= 1


# Panels of the agents' counters that a coding agent's call cannot feed, and why.
NOT_FROM_AGENTS = {
    # a block budget acts in-process, on SDK calls; an agent we do not run in-process is never
    # refused, so no agent call carries otel_tokens.budget.name (README "Coding agents")
    ("otel-tokens-budgets", "Blocked calls per minute, by budget"),
    # error or partial calls only: the recorded calls all succeeded
    ("otel-tokens-tasks", "Wasted spend rate by outcome"),
}


def _rate_panels() -> list[tuple[str, str, str]]:
    out = []
    for uid in dashboards.BUILDERS:
        for panel in dashboards.iter_panels(dashboards.render(uid)):
            for target in panel.get("targets", []):
                expr = target["expr"] if target["datasource"]["type"] == "prometheus" else ""
                if re.search(r"otel_tokens_(cost_USD|calls|tokens)_total", expr) and re.search(
                    r"\b(rate|increase)\(", expr
                ):
                    out.append((uid, panel["title"], expr))
    return out


def test_every_rate_panel_of_the_agent_counters_has_data_after_one_short_ci_run(stack: Stack) -> None:
    """Claude Code, Codex and Gemini CLI each run once, for seconds, in a CI job: every dashboard
    panel that reads the agent counters through rate()/increase() shows them."""
    task = f"ci-panels-{uuid.uuid4().hex[:6]}"
    # what `otel-tokens run` puts on the resource in a CI job
    extra = {"otel_tokens.team": "platform", "cicd.pipeline.name": "agent-ci", "otel_tokens.trigger": "ci"}
    want = Decimal(0)
    for process, source in enumerate(sorted(PAYLOADS)):
        _export(stack, source, task, process, extra)
        want += _oracle(source)[1]
    job = f"ci-{task}"
    spend = f'sum(otel_tokens_cost_USD_total{{job="{job}"}})'
    wait_until(lambda: _close(stack.value(spend), want), 30)
    assert _close(stack.value(spend), want), (stack.value(spend), want)
    panels = _rate_panels()
    assert len(panels) >= 10, panels  # the dashboards' rate panels were found, or this proves nothing
    empty = []
    for uid, title, expr in panels:
        query = dashboards.substitute(expr, {"service": job, "__rate_interval": "5m", "__range": "5m"})
        data = [s for s in stack.query(query) if math.isfinite(float(s["value"][1]))]
        if not data and (uid, title) not in NOT_FROM_AGENTS:
            empty.append(f"{uid} / {title}: {query}")
        if data and (uid, title) in NOT_FROM_AGENTS:
            empty.append(f"{uid} / {title} has agent data: drop it from NOT_FROM_AGENTS")
    assert not empty, "panels without the agents' data:\n" + "\n".join(empty)
    # the recording rules' expressions (Prometheus evaluates them each minute) carry the run
    exprs = {r.record: r.expr for r in rules.recording_rules()}
    for record, label, value in (
        ("otel_tokens_service:spend_usd_per_second:rate5m", "job", job),
        ("otel_tokens_task:spend_usd_per_second:rate5m", "otel_tokens_task_name", task),
        ("otel_tokens_pipeline:spend_usd_per_second:rate5m", "cicd_pipeline_name", "agent-ci"),
    ):
        got = [float(r["value"][1]) for r in stack.query(exprs[record]) if r["metric"].get(label) == value]
        assert got and got[0] > 0, (record, got)
