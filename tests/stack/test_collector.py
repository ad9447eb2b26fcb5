"""The real collector (collector/config.yaml, built from collector/builder.yaml) and a real
Prometheus: the config validates, tail sampling keeps exactly the traces its policies name,
privacy processing removes content and keys, and metrics arrive under the Prometheus names
documented in deploy/PROM_NAMES.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

from otel_tokens import names as n

from .conftest import DECISION_WAIT_S, REPO, STACK_LOCAL, TEST_ENV, Stack

pytestmark = pytest.mark.stack

CONFIG = REPO / "collector" / "config.yaml"
NOW_NS = time.time_ns()
SECOND_NS = 1_000_000_000


# --- collector validate ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "mutate", "env", "ok"),
    [
        ("compose defaults", None, {}, True),
        (
            "test env",
            None,
            {"OTEL_TOKENS_SAMPLE_PERCENT": "0", "OTEL_TOKENS_SAMPLE_DECISION_WAIT": "2s"},
            True,
        ),
        ("content kept", None, {"OTEL_TOKENS_COLLECTOR_KEEP_CONTENT": "true"}, True),
        ("unknown processor", ("        - transform/arrival\n", "        - nope\n"), {}, False),
        (
            "bad transform OTTL",
            ('delete_key(span.attributes, "gen_ai.output.messages")', "delete_key("),
            {},
            False,
        ),
        (
            "bad filter OTTL",
            ('spanevent.name == "gen_ai.choice"', 'spanevent.name === "gen_ai.choice"'),
            {},
            False,
        ),
        ("non-numeric threshold", None, {"OTEL_TOKENS_SAMPLE_SLOW_MS": "slow"}, False),
    ],
)
def test_validate(
    collector: Path, tmp_path: Path, case: str, mutate: tuple[str, str] | None, env: dict[str, str], ok: bool
) -> None:
    config = CONFIG
    if mutate is not None:
        text = CONFIG.read_text()
        assert text.count(mutate[0]) == 1, f"{case}: mutation anchor drifted"
        config = tmp_path / "config.yaml"
        config.write_text(text.replace(mutate[0], mutate[1]))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_TOKENS_")}
    result = subprocess.run(
        [str(collector), "validate", f"--config={config}"],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode == 0) == ok, f"{case}: rc={result.returncode}\n{result.stderr[-2000:]}"


def test_bad_sampling_condition_stops_the_collector(collector: Path, tmp_path: Path) -> None:
    """`validate` does not compile tail-sampling OTTL; starting does, and must fail loudly."""
    config = tmp_path / "config.yaml"
    anchor = 'span.attributes["gen_ai.usage.cost"] >'
    assert CONFIG.read_text().count(anchor) == 1
    config.write_text(CONFIG.read_text().replace(anchor, anchor + ">"))
    loopback = "127.0.0.1:0"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_TOKENS_")} | {
        "OTEL_TOKENS_COLLECTOR_GRPC": loopback,
        "OTEL_TOKENS_COLLECTOR_HTTP": loopback,
        "OTEL_TOKENS_COLLECTOR_HEALTH": loopback,
        "OTEL_TOKENS_COLLECTOR_METRICS_HOST": "127.0.0.1",
        "OTEL_TOKENS_COLLECTOR_METRICS_PORT": "0",
    }
    result = subprocess.run(
        [str(collector), f"--config={config}"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert 'failed to create policy evaluator for "expensive-llm-call"' in result.stderr


@pytest.mark.parametrize("copy", ["committed", "stack-local"])
def test_prometheus_config_checks(stack: Stack, copy: str) -> None:
    config = (
        REPO / "deploy" / "prometheus" / "prometheus.yml"
        if copy == "committed"
        else stack.dir / "prometheus.yml"
    )
    result = subprocess.run(
        ["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_live_prometheus_loaded_every_rule_group(stack: Stack) -> None:
    files = sorted((REPO / "deploy" / "prometheus" / "rules").glob("*.yml"))
    expected = sorted(
        g["name"] for f in files for g in (yaml.safe_load(f.read_text()) or {}).get("groups", [])
    )
    loaded = sorted(g["name"] for g in prom(stack, "/api/v1/rules")["groups"])
    assert loaded == expected


# --- sending spans and reading what the collector exported ---------------------------------


@dataclass
class SpanSpec:
    name: str
    attrs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # status description when the span failed
    duration_s: float = 0.5
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def send_trace(
    stack: Stack, service: str, spans: list[SpanSpec], resource: dict[str, Any] | None = None
) -> str:
    """Send one trace (first span is the root, the rest its children); return the trace id."""
    provider = TracerProvider(resource=Resource.create({"service.name": service, **(resource or {})}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{stack.otlp_endpoint}/v1/traces"))
    )
    tracer = provider.get_tracer(n.SCOPE)
    root_spec, *children = spans
    end = NOW_NS
    root = tracer.start_span(
        root_spec.name, attributes=root_spec.attrs, start_time=end - int(root_spec.duration_s * SECOND_NS)
    )
    for spec in children:
        child = tracer.start_span(
            spec.name,
            context=set_span_in_context(root),
            kind=SpanKind.CLIENT,
            attributes=spec.attrs,
            start_time=end - int(spec.duration_s * SECOND_NS),
        )
        finish(child, spec, end)
    finish(root, root_spec, end)
    provider.shutdown()
    return format(root.get_span_context().trace_id, "032x")


def finish(span: Any, spec: SpanSpec, end: int) -> None:
    for name, attrs in spec.events:
        span.add_event(name, attrs)
    if spec.error is not None:
        span.set_status(Status(StatusCode.ERROR, spec.error))
    span.end(end_time=end)


def value(v: dict[str, Any]) -> Any:
    """Decode one OTLP/JSON AnyValue."""
    ((kind, raw),) = v.items()
    if kind == "intValue":
        return int(raw)
    if kind == "arrayValue":
        return [value(x) for x in raw.get("values", [])]
    return raw


def attributes(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: value(a["value"]) for a in items or []}


def exported_spans(stack: Stack) -> list[dict[str, Any]]:
    """Every span in the trace file, with `resource` attached and attributes decoded."""
    out = []
    for line in stack.trace_file.read_text().splitlines():
        for rs in json.loads(line).get("resourceSpans", []):
            resource = attributes(rs.get("resource", {}).get("attributes"))
            for ss in rs.get("scopeSpans", []):
                for span in ss.get("spans", []):
                    out.append(
                        {
                            **span,
                            "resource": resource,
                            "attributes": attributes(span.get("attributes")),
                            "events": [
                                (e["name"], attributes(e.get("attributes"))) for e in span.get("events", [])
                            ],
                        }
                    )
    return out


def exported_traces(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    traces: dict[str, list[dict[str, Any]]] = {}
    for span in exported_spans(stack):
        traces.setdefault(span["traceId"], []).append(span)
    return traces


def wait_until(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.25)


# --- tail sampling --------------------------------------------------------------------------


def llm(cost: float | int | None = None, **attrs: Any) -> SpanSpec:
    a: dict[str, Any] = {n.GEN_AI_OPERATION_NAME: n.OP_CHAT, n.GEN_AI_PROVIDER_NAME: n.PROVIDER_OPENAI}
    if cost is not None:
        a[n.GEN_AI_USAGE_COST] = cost
    return SpanSpec("chat gpt-4o", {**a, **attrs})


def task(cost: float, calls: int, operation: str = n.OP_INVOKE_WORKFLOW) -> SpanSpec:
    return SpanSpec(
        "invoke_workflow triage",
        {
            n.GEN_AI_OPERATION_NAME: operation,
            n.TASK_NAME: "triage",
            n.TASK_COST: cost,
            n.TASK_LLM_CALLS: calls,
        },
    )


# (case, spans, kept) with the config's default thresholds: LLM call > 0.50 USD, task > 2.00
# USD, >= 25 LLM calls or agent iterations, >= 30 s; probabilistic share 0 in tests.
SAMPLING = [
    ("cheap call", [task(0.02, 2), llm(0.01), llm(0.01)], False),
    ("call just over 0.50", [task(0.52, 2), llm(0.01), llm(0.51)], True),
    ("call at 0.50 exactly", [task(0.51, 2), llm(0.01), llm(0.50)], False),
    ("cost as int 1", [task(1.0, 1), llm(1)], True),
    ("unpriced call", [task(0.0, 1), llm(None)], False),
    (
        "failed call",
        [task(0.001, 1), SpanSpec("chat gpt-4o", llm(0.001).attrs, error="RateLimitError")],
        True,
    ),
    ("failed task", [SpanSpec("invoke_workflow t", task(0.01, 1).attrs, error="boom"), llm(0.01)], True),
    ("task over 2.00", [task(2.01, 5), *[llm(0.40) for _ in range(5)]], True),
    ("task at 2.00 exactly", [task(2.0, 5), *[llm(0.40) for _ in range(5)]], False),
    ("agent span over 2.00", [task(3.0, 5, operation=n.OP_INVOKE_AGENT), llm(0.40)], False),
    ("task with 25 calls", [task(0.25, 25), llm(0.01)], True),
    ("task with 24 calls", [task(0.24, 24), llm(0.01)], False),
    ("25th agent iteration", [task(0.05, 1), llm(0.01, **{n.AGENT_ITERATION: 25})], True),
    ("24th agent iteration", [task(0.05, 1), llm(0.01, **{n.AGENT_ITERATION: 24})], False),
    ("slow call 31 s", [task(0.01, 1), SpanSpec("chat gpt-4o", llm(0.01).attrs, duration_s=31.0)], True),
    ("call 29 s", [task(0.01, 1), SpanSpec("chat gpt-4o", llm(0.01).attrs, duration_s=29.0)], False),
    # a refusal is kept by its outcome alone (even were its span not marked as an error)
    ("call blocked by a budget", [task(0.0, 1), llm(None, **{n.OUTCOME: n.OUTCOME_BLOCKED})], True),
]


def test_tail_sampling_keeps_exactly_the_policy_traces(stack: Stack) -> None:
    sent = {case: send_trace(stack, "sampling-test", spans) for case, spans, _ in SAMPLING}
    expected = {case for case, _, kept in SAMPLING if kept}
    by_id = {trace_id: case for case, trace_id in sent.items()}

    def kept_cases() -> set[str]:
        return {by_id[t] for t in exported_traces(stack) if t in by_id}

    wait_until(lambda: kept_cases() >= expected, timeout=DECISION_WAIT_S * 10)
    time.sleep(DECISION_WAIT_S + 1.5)  # let every dropped trace pass its decision too
    assert sorted(kept_cases()) == sorted(expected)
    traces = exported_traces(stack)
    for case, spans, kept in SAMPLING:
        if kept:  # whole traces, not just the span that matched
            assert len(traces[sent[case]]) == len(spans), case


# --- privacy: content and keys --------------------------------------------------------------

OPENAI_KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8J9k0" * 2
ANTHROPIC_KEY = "sk-ant-api03-" + "Zz9Yy8Xx7Ww6Vv5Uu4Tt" * 2
GOOGLE_KEY = "AIza" + "SyA1b2C3d4E5f6G7h8J9k0L1m2N3o4P5q6R"  # 35 chars after AIza
BEARER = "Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig"


def test_privacy_drops_content_and_masks_keys(stack: Stack) -> None:
    assert len(GOOGLE_KEY) == 39
    call = SpanSpec(
        "chat gpt-4o",
        {
            n.GEN_AI_OPERATION_NAME: n.OP_CHAT,
            n.GEN_AI_REQUEST_MODEL: "gpt-4o",
            n.GEN_AI_USAGE_INPUT_TOKENS: 12,
            n.GEN_AI_USAGE_COST: 0.001,
            n.GEN_AI_INPUT_MESSAGES: '[{"role":"user","parts":[{"type":"text","content":"secret plan"}]}]',
            n.GEN_AI_OUTPUT_MESSAGES: '[{"role":"assistant","parts":[{"type":"text","content":"ok"}]}]',
            n.GEN_AI_SYSTEM_INSTRUCTIONS: '[{"type":"text","content":"be terse"}]',
            "gen_ai.prompt": "legacy prompt",
            "gen_ai.prompt.0.content": "legacy indexed prompt",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.completion.0.content": "legacy completion",
            "gen_ai.promptly": "not content: only gen_ai.prompt and gen_ai.prompt.* are",
            "app.note": f"called with {OPENAI_KEY} then {ANTHROPIC_KEY}",
            "app.google": f"key={GOOGLE_KEY}",
            "http.request.header.authorization": BEARER,
            "app.api_key": "plain-secret-value",
            "app.short": "sk-short",  # too short to be a key: kept
        },
        error=f"AuthenticationError: Incorrect API key provided: {OPENAI_KEY}",
        events=[
            ("gen_ai.content.prompt", {"gen_ai.prompt": "legacy event prompt"}),
            ("gen_ai.content.completion", {"gen_ai.completion": "legacy event completion"}),
            ("gen_ai.user.message", {"content": "hi"}),
            ("gen_ai.choice", {"message": "hello"}),
            ("gen_ai.client.inference.operation.details", {n.GEN_AI_INPUT_MESSAGES: "[]"}),
            (n.EVENT_RETRY, {n.RETRY_REASON: "rate_limit", "app.note": f"retry with {OPENAI_KEY}"}),
        ],
    )
    trace_id = send_trace(stack, "privacy-test", [call], resource={"app.deploy_token": f"{BEARER} x"})
    wait_until(lambda: trace_id in exported_traces(stack), timeout=DECISION_WAIT_S * 10)
    (span,) = exported_traces(stack)[trace_id]
    assert span["attributes"] == {
        n.GEN_AI_OPERATION_NAME: n.OP_CHAT,
        n.GEN_AI_REQUEST_MODEL: "gpt-4o",
        n.GEN_AI_USAGE_INPUT_TOKENS: 12,
        n.GEN_AI_USAGE_COST: 0.001,
        "gen_ai.promptly": "not content: only gen_ai.prompt and gen_ai.prompt.* are",
        "app.note": "called with **** then ****",
        "app.google": "key=****",
        "http.request.header.authorization": "****",
        "app.api_key": "****",
        "app.short": "sk-short",
    }
    assert span["events"] == [(n.EVENT_RETRY, {n.RETRY_REASON: "rate_limit", "app.note": "retry with ****"})]
    assert span["status"] == {"code": 2, "message": "AuthenticationError: Incorrect API key provided: ****"}
    assert span["resource"]["app.deploy_token"] == "**** x"
    raw = stack.trace_file.read_text()
    for secret in (OPENAI_KEY, ANTHROPIC_KEY, GOOGLE_KEY, BEARER, "secret plan", "legacy", "be terse"):
        assert secret not in raw


def test_content_kept_only_when_the_collector_allows_it(collector: Path, tmp_path: Path) -> None:
    """OTEL_TOKENS_COLLECTOR_KEEP_CONTENT=true keeps content; keys are masked regardless."""
    env = (
        os.environ
        | TEST_ENV
        | {
            "OTEL_TOKENS_COLLECTOR_BIN": str(collector),
            "OTEL_TOKENS_COLLECTOR_KEEP_CONTENT": "true",
        }
    )
    cmd = [sys.executable, str(STACK_LOCAL)]
    up = subprocess.run(
        [*cmd, "up", "--dir", str(tmp_path)], env=env, capture_output=True, text=True, timeout=120
    )
    assert up.returncode == 0, up.stderr
    try:
        values = dict(line.split("=", 1) for line in up.stdout.splitlines())
        own = Stack(
            values["OTLP_ENDPOINT"],
            "",
            values["PROMETHEUS_URL"],
            Path(values["TRACE_FILE"]),
            collector,
            tmp_path,
        )
        content = {n.GEN_AI_INPUT_MESSAGES: "[secret plan]", "gen_ai.prompt.0.content": f"use {OPENAI_KEY}"}
        span = SpanSpec(
            "chat", content, error="x", events=[("gen_ai.content.prompt", {"gen_ai.prompt": "p"})]
        )
        trace_id = send_trace(own, "keep-content-test", [span])
        wait_until(lambda: trace_id in exported_traces(own), timeout=DECISION_WAIT_S * 10)
        (got,) = exported_traces(own)[trace_id]
        assert got["attributes"] == {
            n.GEN_AI_INPUT_MESSAGES: "[secret plan]",
            "gen_ai.prompt.0.content": "use ****",
        }
        assert got["events"] == [("gen_ai.content.prompt", {"gen_ai.prompt": "p"})]
    finally:
        subprocess.run([*cmd, "down", "--dir", str(tmp_path)], env=env, timeout=60, check=False)


# --- metrics: the Prometheus names the dashboards and rules use ----------------------------


def prom(stack: Stack, path: str, **params: Any) -> Any:
    url = f"{stack.prometheus_url}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


BASE = {
    n.GEN_AI_OPERATION_NAME: n.OP_CHAT,
    n.GEN_AI_PROVIDER_NAME: n.PROVIDER_OPENAI,
    n.GEN_AI_REQUEST_MODEL: "gpt-4o",
    n.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
}
OURS = {
    **BASE,
    n.TEAM: "search",
    n.TASK_NAME: "triage",
    n.OUTCOME: "success",
    n.COST_STATUS: "priced",
    n.CICD_PIPELINE_NAME: "nightly",
    n.CICD_PIPELINE_TASK_NAME: "eval",
    n.TRIGGER: n.TRIGGER_CI,
    n.TASK_ID: "task-123",  # unbounded: the collector must drop it from metrics
}
BASE_LABELS = {
    "gen_ai_operation_name",
    "gen_ai_provider_name",
    "gen_ai_request_model",
    "gen_ai_response_model",
}
OUR_LABELS = BASE_LABELS | {
    "otel_tokens_team",
    "otel_tokens_task_name",
    "otel_tokens_outcome",
    "otel_tokens_cost_status",
    "cicd_pipeline_name",
    "cicd_pipeline_task_name",
    "otel_tokens_trigger",
}
TASK_LABELS = {"otel_tokens_task_name", "otel_tokens_team", "otel_tokens_task_outcome"}
HIST = ("_bucket", "_sum", "_count")

TASK_ATTRS = {n.TASK_NAME: "triage", n.TEAM: "search", n.TASK_OUTCOME: "success"}


@dataclass(frozen=True)
class Metric:
    otel: str
    kind: str  # "counter" | "histogram"
    unit: str
    attrs: dict[str, Any]
    prom: str  # the series name; histograms add _bucket, _sum and _count
    labels: set[str]  # besides job, otel_scope_name, otel_scope_version (and le)

    @property
    def series(self) -> tuple[str, ...]:
        return (self.prom,) if self.kind == "counter" else tuple(self.prom + s for s in HIST)


SEMCONV = (
    n.M_USAGE_INPUT,
    n.M_USAGE_OUTPUT,
    n.M_USAGE_CACHE_READ,
    n.M_USAGE_CACHE_WRITE,
    n.M_USAGE_REASONING,
)
TOKENS = {**OURS, n.TOKEN_TYPE: "input"}
RETRY = {**OURS, n.RETRY_REASON: "rate_limit"}
USAGE = {**BASE, n.GEN_AI_TOKEN_TYPE: "input"}
MODALITY = {**BASE, n.GEN_AI_TOKEN_MODALITY: "unknown"}
L_TOKENS = OUR_LABELS | {"otel_tokens_token_type"}
L_RETRY = OUR_LABELS | {"otel_tokens_retry_reason"}
L_USAGE = BASE_LABELS | {"gen_ai_token_type"}
L_MODALITY = BASE_LABELS | {"gen_ai_token_modality"}
C, H = "counter", "histogram"
# fmt: off
METRICS = [
    Metric(n.M_COST, C, n.UNIT_USD, OURS, "otel_tokens_cost_USD_total", OUR_LABELS),
    Metric(n.M_CACHE_SAVINGS, C, n.UNIT_USD, OURS, "otel_tokens_cache_savings_USD_total", OUR_LABELS),
    Metric(n.M_TOKENS, C, n.UNIT_TOKEN, TOKENS, "otel_tokens_tokens_total", L_TOKENS),
    Metric(n.M_CALLS, C, n.UNIT_CALL, OURS, "otel_tokens_calls_total", OUR_LABELS),
    Metric(n.M_RETRIES, C, "{retry}", RETRY, "otel_tokens_retries_total", L_RETRY),
    Metric(n.M_LOOP_REPEATS, C, n.UNIT_CALL, OURS, "otel_tokens_loop_repeats_total", OUR_LABELS),
    Metric(n.M_TASKS, C, "{task}", TASK_ATTRS, "otel_tokens_tasks_total", TASK_LABELS),
    Metric(n.M_TASK_COST, H, n.UNIT_USD, TASK_ATTRS, "otel_tokens_task_cost_USD", TASK_LABELS),
    Metric(n.M_TASK_LLM_CALLS, H, n.UNIT_CALL, TASK_ATTRS, "otel_tokens_task_llm_calls", TASK_LABELS),
    Metric(n.M_OPERATION_DURATION, H, "s", BASE, "gen_ai_client_operation_duration_seconds", BASE_LABELS),
    Metric(n.M_TOKEN_USAGE, H, n.UNIT_TOKEN, USAGE, "gen_ai_client_token_usage", L_USAGE),
    *[Metric(m, C, n.UNIT_TOKEN, MODALITY, m.replace(".", "_") + "_total", L_MODALITY) for m in SEMCONV],
]
# fmt: on
# No `instance`: the collector drops service.instance.id so processes share series.
ALWAYS = {"job", "otel_scope_name", "otel_scope_version"}


@pytest.fixture(scope="module")
def metric_series(stack: Stack) -> dict[str, list[dict[str, str]]]:
    """Record one point of every metric (inside a span, for exemplars); return the series."""
    service = "names-test"
    resource = Resource.create({"service.name": service})
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{stack.otlp_endpoint}/v1/metrics"), export_interval_millis=3_600_000
    )
    meters = MeterProvider(resource=resource, metric_readers=[reader])
    meter = meters.get_meter(n.SCOPE, "0.0.test")
    tracer = TracerProvider(resource=resource).get_tracer(n.SCOPE)
    with tracer.start_as_current_span("chat gpt-4o"):
        for m in METRICS:
            if m.kind == C:
                meter.create_counter(m.otel, unit=m.unit).add(3, m.attrs)
            else:
                meter.create_histogram(m.otel, unit=m.unit).record(3, m.attrs)
    meters.shutdown()
    wanted = sum(len(m.series) for m in METRICS)

    def series() -> list[dict[str, str]]:
        return list(prom(stack, "/api/v1/series", **{"match[]": f'{{job="{service}"}}'}))

    wait_until(lambda: len(series()) >= wanted, timeout=30)
    by_name: dict[str, list[dict[str, str]]] = {}
    for s in series():
        by_name.setdefault(s["__name__"], []).append(s)
    return by_name


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.otel)
def test_prometheus_names(metric_series: dict[str, list[dict[str, str]]], metric: Metric) -> None:
    for name in metric.series:
        assert name in metric_series, f"{metric.otel}: no {name} in {sorted(metric_series)}"
        for s in metric_series[name]:
            got = set(s) - {"__name__", "le"}
            assert got == metric.labels | ALWAYS, f"{name}: {sorted(got ^ (metric.labels | ALWAYS))}"


def test_cost_value_and_exemplar(stack: Stack, metric_series: dict[str, list[dict[str, str]]]) -> None:
    (sample,) = prom(stack, "/api/v1/query", query='otel_tokens_cost_USD_total{job="names-test"}')["result"]
    assert float(sample["value"][1]) == 3.0
    now = time.time()
    exemplars = prom(
        stack,
        "/api/v1/query_exemplars",
        query='otel_tokens_cost_USD_total{job="names-test"}',
        start=now - 600,
        end=now + 60,
    )
    labels = [e["labels"] for group in exemplars for e in group["exemplars"]]
    assert len(labels) == 1 and set(labels[0]) == {"trace_id", "span_id"}
