"""Zero-code enablement: a subprocess app with only OTEL_TOKENS_ENABLED=true (the .pth
hook) exports spans and metrics over OTLP/HTTP to a local receiver."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otel_tokens import names as n
from otel_tokens.fakellm import Reply
from tests.conftest import expected_cost

APP = textwrap.dedent(
    """
    import os, openai, anthropic
    oc = openai.OpenAI(base_url=os.environ["FAKE_OPENAI"], api_key="sk-live-should-not-leak")
    oc.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "PROMPT-TEXT"}])
    ac = anthropic.Anthropic(base_url=os.environ["FAKE_ANTHROPIC"], api_key="sk-ant-should-not-leak")
    ac.messages.create(model="claude-3-7-sonnet-20250219", max_tokens=50,
                       messages=[{"role": "user", "content": "PROMPT-TEXT"}])
    import otel_tokens.instrumentation.core as core
    print("instrumented", core.active.recorder is not None)
    """
)


class _Receiver:
    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.raw: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.raw.append(body)
                if self.path == "/v1/traces":
                    receiver.traces.append(ExportTraceServiceRequest.FromString(body))
                elif self.path == "/v1/metrics":
                    receiver.metrics.append(ExportMetricsServiceRequest.FromString(body))
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    r = _Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def _spans(receiver: _Receiver) -> list[Any]:
    """Our spans (scope otel_tokens) of every traces request the receiver got."""
    return [
        s
        for req in receiver.traces
        for rs in req.resource_spans
        for ss in rs.scope_spans
        if ss.scope.name == "otel_tokens"
        for s in ss.spans
    ]


def _value(v: Any) -> Any:
    return getattr(v, v.WhichOneof("value"))


def test_enabled_by_env_only(receiver: _Receiver, fake: Any, tmp_path: Path) -> None:
    fake.enqueue(
        Reply.ok(input_tokens=1370, output_tokens=155, cache_read=1280),
        Reply.ok(input_tokens=1754, output_tokens=568, cache_read=1733),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST", "ANTHROPIC_"))}
    env.update(
        OTEL_TOKENS_ENABLED="true",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_SERVICE_NAME="zero-code-app",
        OTEL_TOKENS_USER="alice",
        OTEL_TOKENS_TASK="triage",
        FAKE_OPENAI=fake.openai_base_url,
        FAKE_ANTHROPIC=fake.anthropic_base_url,
    )
    out = subprocess.run(
        [sys.executable, "-c", APP], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "instrumented True" in out.stdout

    spans = _spans(receiver)
    attrs = [{a.key: _value(a.value) for a in s.attributes} for s in spans]
    by_provider = {a[n.GEN_AI_PROVIDER_NAME]: a for a in attrs if n.GEN_AI_PROVIDER_NAME in a}
    assert sorted(by_provider) == ["anthropic", "openai"]
    oa, an = by_provider["openai"], by_provider["anthropic"]
    assert (oa[n.GEN_AI_USAGE_INPUT_TOKENS], oa[n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS]) == (1370, 1280)
    assert (an[n.GEN_AI_USAGE_INPUT_TOKENS], an[n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS]) == (1754, 1733)
    assert oa[n.GEN_AI_USAGE_COST] == expected_cost("openai", "gpt-4o-mini", 1370, 155, cr=1280)
    assert an[n.GEN_AI_USAGE_COST] == expected_cost(
        "anthropic", "claude-3-7-sonnet-20250219", 1754, 568, cr=1733
    )
    assert oa[n.USER_ID] == "alice" and oa[n.TASK_NAME] == "triage"
    resource = {a.key: _value(a.value) for a in receiver.traces[0].resource_spans[0].resource.attributes}
    assert resource["service.name"] == "zero-code-app"

    cost_points = [
        p
        for req in receiver.metrics
        for rm in req.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == n.M_COST
        for p in m.sum.data_points
    ]
    assert sum(p.as_double for p in cost_points) == oa[n.GEN_AI_USAGE_COST] + an[n.GEN_AI_USAGE_COST]
    for p in cost_points:
        labels = {a.key for a in p.attributes}
        assert n.TASK_ID not in labels and "trace_id" not in labels

    everything = b"".join(receiver.raw)
    assert b"PROMPT-TEXT" not in everything
    assert b"should-not-leak" not in everything
    # the anthropic SDK's own span (which also carries gen_ai.usage.*) is switched off
    scopes = {ss.scope.name for req in receiver.traces for rs in req.resource_spans for ss in rs.scope_spans}
    assert "com.anthropic.sdk.python" not in scopes


def test_disabled_hook_imports_nothing(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    code = (
        "import sys; print(sorted(m for m in sys.modules if m.startswith(('otel_tokens', 'opentelemetry'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.stdout.strip() == "[]", out.stderr


def test_opentelemetry_instrument_loads_our_entry_points(
    receiver: _Receiver, fake: Any, tmp_path: Path
) -> None:
    fake.enqueue(Reply.ok(input_tokens=1370, output_tokens=155, cache_read=1280), Reply.ok())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST", "ANTHROPIC_"))}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_SERVICE_NAME="auto-app",
        FAKE_OPENAI=fake.openai_base_url,
        FAKE_ANTHROPIC=fake.anthropic_base_url,
    )
    tool = Path(sys.executable).parent / "opentelemetry-instrument"
    out = subprocess.run(
        [str(tool), sys.executable, "-c", APP],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "instrumented True" in out.stdout
    spans = _spans(receiver)
    assert sorted(s.name for s in spans) == ["chat claude-3-7-sonnet-20250219", "chat gpt-4o-mini"]


# --- a process attributed only by OTEL_TOKENS_TASK is one task run ----------------------------
TASK_APP = textwrap.dedent(
    """
    import os, sys, openai
    oc = openai.OpenAI(base_url=os.environ["FAKE_OPENAI"], api_key="sk-test")
    for _ in range(2):
        oc.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    if sys.argv[1] == "crash":
        raise RuntimeError("the tool failed")
    """
)
PARENT = '{"otel_tokens.task.name": "outer", "otel_tokens.task.id": "outer-1"}'


def _run_task_app(receiver: _Receiver, fake: Any, tmp_path: Path, mode: str, **extra: str) -> int:
    fake.enqueue(*(Reply.ok(input_tokens=1000 + i, output_tokens=100) for i in range(2)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST"))}
    env.update(
        OTEL_TOKENS_ENABLED="true",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_SERVICE_NAME="env-task-app",
        OTEL_TOKENS_TASK="nightly-eval",
        OTEL_TOKENS_TASK_SIZE="M",
        OTEL_TOKENS_TEAM="evals",
        FAKE_OPENAI=fake.openai_base_url,
        **extra,
    )
    argv = [sys.executable, "-c", TASK_APP, mode]
    return subprocess.run(argv, env=env, capture_output=True, timeout=60, cwd=tmp_path).returncode


def _metrics(receiver: _Receiver) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for req in receiver.metrics:
        for rm in req.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    out.setdefault(m.name, []).append(m)
    return out


@pytest.mark.parametrize(("mode", "outcome", "status"), [("ok", "success", 0), ("crash", "failure", 1)])
def test_environment_task_is_one_task_run(
    receiver: _Receiver, fake: Any, tmp_path: Path, mode: str, outcome: str, status: int
) -> None:
    assert _run_task_app(receiver, fake, tmp_path, mode) == status
    spans = _spans(receiver)
    (task,) = [s for s in spans if s.name == "invoke_workflow nightly-eval"]
    calls = [s for s in spans if s is not task]
    assert len(calls) == 2
    assert all(c.parent_span_id == task.span_id and c.trace_id == task.trace_id for c in calls)
    t = {a.key: _value(a.value) for a in task.attributes}
    costs = [{a.key: _value(a.value) for a in c.attributes}[n.GEN_AI_USAGE_COST] for c in calls]
    assert costs == [expected_cost("openai", "gpt-4o-mini", 1000 + i, 100) for i in range(2)]
    assert t[n.TASK_COST] == pytest.approx(sum(costs), rel=1e-12)
    assert (t[n.TASK_LLM_CALLS], t[n.TASK_OUTCOME], t[n.TASK_SIZE], t[n.TEAM]) == (2, outcome, "M", "evals")

    metrics = _metrics(receiver)
    (tasks,) = [p for m in metrics[n.M_TASKS] for p in m.sum.data_points]
    labels = {a.key: _value(a.value) for a in tasks.attributes}
    assert tasks.as_int == 1 and labels[n.TASK_OUTCOME] == outcome and labels[n.TASK_NAME] == "nightly-eval"
    (task_cost,) = [p for m in metrics[n.M_TASK_COST] for p in m.histogram.data_points]
    assert (task_cost.count, task_cost.sum) == (1, pytest.approx(sum(costs), rel=1e-12))


def test_delta_temporality_unless_the_user_chose(receiver: _Receiver, fake: Any, tmp_path: Path) -> None:
    delta, cumulative = 1, 2  # AggregationTemporality in the OTLP proto
    assert _run_task_app(receiver, fake, tmp_path, "ok") == 0
    metrics = _metrics(receiver)
    assert {m.sum.aggregation_temporality for m in metrics[n.M_COST]} == {delta}
    assert {m.sum.aggregation_temporality for m in metrics[n.M_CALLS]} == {delta}
    assert {m.histogram.aggregation_temporality for m in metrics[n.M_TOKEN_USAGE]} == {delta}

    receiver.metrics.clear()
    pref = {"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "cumulative"}
    assert _run_task_app(receiver, fake, tmp_path, "ok", **pref) == 0
    metrics = _metrics(receiver)
    assert {m.sum.aggregation_temporality for m in metrics[n.M_COST]} == {cumulative}
    assert {m.histogram.aggregation_temporality for m in metrics[n.M_TOKEN_USAGE]} == {cumulative}


@pytest.mark.parametrize(
    "extra",
    [{"OTEL_TOKENS_PARENT": PARENT}, {"OTEL_TOKENS_REPORT_DIR": "REPORT_DIR"}],
    ids=["parent-carrier", "report-dir"],
)
def test_a_child_of_a_task_is_not_a_task_of_its_own(
    receiver: _Receiver, fake: Any, tmp_path: Path, extra: dict[str, str]
) -> None:
    extra = {k: v.replace("REPORT_DIR", str(tmp_path)) for k, v in extra.items()}
    assert _run_task_app(receiver, fake, tmp_path, "ok", **extra) == 0
    spans = _spans(receiver)
    assert len(spans) == 2 and not [s for s in spans if s.name.startswith("invoke_workflow")]
    assert n.M_TASKS not in _metrics(receiver)


# --- the environment task waits for first use: the app's own providers still win ---------------
OWN_PROVIDERS_APP = textwrap.dedent(
    """
    import os, sys, openai
    from opentelemetry import metrics, trace
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    url = os.environ["APP_OTLP"]  # the app's own exporters, not configured by OTEL_* variables
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url + "/v1/traces")))
    trace.set_tracer_provider(tp)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=url + "/v1/metrics"), 600_000)
    mp = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(mp)
    print("mine", trace.get_tracer_provider() is tp, metrics.get_meter_provider() is mp)
    mode = sys.argv[1]
    if mode == "call":
        oc = openai.OpenAI(base_url=os.environ["FAKE_OPENAI"], api_key="sk-test")
        oc.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    elif mode == "crash":
        raise RuntimeError("failed before its first LLM call")
    """
)


@pytest.mark.parametrize(
    ("mode", "calls", "outcome", "status"),
    [
        ("call", 1, "success", 0),
        ("none", 0, "success", 0),
        ("crash", 0, "failure", 1),
    ],
)
def test_environment_task_goes_to_the_providers_the_app_sets_after_import(
    receiver: _Receiver, fake: Any, tmp_path: Path, mode: str, calls: int, outcome: str, status: int
) -> None:
    """OTEL_TOKENS_TASK no longer configures providers at start-up: the app's own (set after
    import) are accepted and receive the LLM span, the task span and the task metrics; a run
    with no LLM call is still one task run (zero calls, zero cost), a crash a failed one."""
    fake.enqueue(Reply.ok(input_tokens=1200, output_tokens=80))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST"))}
    env.update(
        OTEL_TOKENS_ENABLED="true",
        OTEL_TOKENS_TASK="x",
        OTEL_TOKENS_STORE=str(tmp_path / "ours.db"),
        APP_OTLP=receiver.url,
        FAKE_OPENAI=fake.openai_base_url,
    )
    out = subprocess.run(
        [sys.executable, "-c", OWN_PROVIDERS_APP, mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert out.returncode == status, out.stderr
    assert "mine True True" in out.stdout
    assert "Overriding" not in out.stderr
    assert not (tmp_path / "ours.db").exists()  # we configured nothing of our own

    spans = _spans(receiver)
    (task,) = [s for s in spans if s.name == "invoke_workflow x"]
    llm = [s for s in spans if s is not task]
    assert len(llm) == calls
    assert all(c.parent_span_id == task.span_id and c.trace_id == task.trace_id for c in llm)
    t = {a.key: _value(a.value) for a in task.attributes}
    cost = expected_cost("openai", "gpt-4o-mini", 1200, 80) if calls else 0.0
    assert (t[n.TASK_LLM_CALLS], t[n.TASK_OUTCOME], t[n.TASK_COST]) == (calls, outcome, cost)

    metrics = {k: v[-1] for k, v in _metrics(receiver).items()}  # the app's reader is cumulative
    (tasks,) = metrics[n.M_TASKS].sum.data_points
    labels = {a.key: _value(a.value) for a in tasks.attributes}
    assert (tasks.as_int, labels[n.TASK_OUTCOME], labels[n.TASK_NAME]) == (1, outcome, "x")
    (task_calls,) = metrics[n.M_TASK_LLM_CALLS].histogram.data_points
    assert (task_calls.count, task_calls.sum) == (1, calls)
    if calls:
        assert sum(p.as_double for p in metrics[n.M_COST].sum.data_points) == cost


SPAWNING_APP = textwrap.dedent(
    """
    import os, subprocess, sys, openai
    CALL = (
        "import os, openai; openai.OpenAI(base_url=os.environ['FAKE_OPENAI'], api_key='sk-test')"
        ".chat.completions.create(model='gpt-4o-mini', messages=[{'role': 'user', 'content': 'hi'}])"
    )
    if sys.argv[1] == "call-first":
        exec(CALL)
    subprocess.run([sys.executable, "-c", CALL], check=True)
    """
)


@pytest.mark.parametrize("order", ["call-first", "spawn-first"])
def test_a_child_of_the_environment_task_joins_it(
    receiver: _Receiver, fake: Any, tmp_path: Path, order: str
) -> None:
    """A child started inside the (lazily opened) environment task is part of it: its call
    carries the task's name and id and rolls up into the task; started after the task's
    first use, its span is in the task's trace, under the task span."""
    calls = 2 if order == "call-first" else 1
    fake.enqueue(*(Reply.ok(input_tokens=900 + i, output_tokens=50) for i in range(calls)))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST"))}
    env.update(
        OTEL_TOKENS_ENABLED="true",
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        OTEL_TOKENS_TASK="ci-step",
        OTEL_TOKENS_TASK_ID="run-42",
        FAKE_OPENAI=fake.openai_base_url,
    )
    out = subprocess.run(
        [sys.executable, "-c", SPAWNING_APP, order], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    spans = _spans(receiver)
    (task,) = [s for s in spans if s.name == "invoke_workflow ci-step"]
    llm = [s for s in spans if s is not task]
    assert len(llm) == calls
    for call in llm:
        a = {x.key: _value(x.value) for x in call.attributes}
        assert (a[n.TASK_NAME], a[n.TASK_ID]) == ("ci-step", "run-42")
    if order == "call-first":
        assert all(c.parent_span_id == task.span_id and c.trace_id == task.trace_id for c in llm)
    t = {a.key: _value(a.value) for a in task.attributes}
    costs = sorted(expected_cost("openai", "gpt-4o-mini", 900 + i, 50) for i in range(calls))
    assert t[n.TASK_LLM_CALLS] == calls and t[n.TASK_COST] == pytest.approx(sum(costs), rel=1e-12)
    (tasks,) = [p for m in _metrics(receiver)[n.M_TASKS] for p in m.sum.data_points]
    assert tasks.as_int == 1
