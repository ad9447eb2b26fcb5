"""The app's own OpenTelemetry wins: with OTEL_TOKENS_ENABLED=true (the .pth hook) a
subprocess app that sets its tracer and meter providers after import gets our spans and
metrics in its own exporters; we configure from the environment only if nothing is set by
the first instrumented call or task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from otel_tokens import names as n
from otel_tokens.fakellm import Reply
from tests.conftest import expected_cost

APP_SETS_ITS_OWN = textwrap.dedent(
    """
    import json, os, openai, otel_tokens
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    client = openai.OpenAI(base_url=os.environ["FAKE_OPENAI"], api_key="sk-test")
    # the app sets OpenTelemetry up after its imports, as apps do
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    WHICH = os.environ["WHICH"]
    if WHICH in ("both", "traces"):
        trace.set_tracer_provider(tp)
    if WHICH in ("both", "metrics"):
        metrics.set_meter_provider(mp)
    with trace.get_tracer("app").start_as_current_span("app-request"):
        with otel_tokens.task("triage", size="S"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    points = {}
    for rm in reader.get_metrics_data().resource_metrics if reader.get_metrics_data() else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                points[m.name] = sum(getattr(p, "value", getattr(p, "sum", 0)) for p in m.data.data_points)
    print(json.dumps({
        "ours": trace.get_tracer_provider() is tp,
        "ours_meter": metrics.get_meter_provider() is mp,
        "spans": sorted(s.name for s in exporter.get_finished_spans()),
        "cost": [s.attributes.get("gen_ai.usage.cost") for s in exporter.get_finished_spans()
                 if s.name.startswith("chat")],
        "points": points,
    }))
    """
)


def _run(app: str, tmp_path: Path, fake: Any, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST", "ANTHROPIC_"))}
    env.update(
        OTEL_TOKENS_ENABLED="true",
        OTEL_TOKENS_STORE=str(tmp_path / "store.db"),
        XDG_DATA_HOME=str(tmp_path / "data"),
        FAKE_OPENAI=fake.openai_base_url,
        **extra,
    )
    return subprocess.run(
        [sys.executable, "-c", app], env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )


def test_an_app_that_sets_its_own_providers_after_import_gets_our_telemetry(
    fake: Any, tmp_path: Path
) -> None:
    fake.enqueue(Reply.ok(input_tokens=1200, output_tokens=80))
    out = _run(APP_SETS_ITS_OWN, tmp_path, fake, WHICH="both")
    assert out.returncode == 0, out.stderr
    assert "Overriding of current" not in out.stderr
    seen = json.loads(out.stdout)
    assert seen["ours"] and seen["ours_meter"]
    assert seen["spans"] == ["app-request", "chat gpt-4o-mini", "invoke_workflow triage"]
    assert seen["cost"] == [expected_cost("openai", "gpt-4o-mini", 1200, 80)]
    assert seen["points"][n.M_COST] == expected_cost("openai", "gpt-4o-mini", 1200, 80)
    assert seen["points"][n.M_TASKS] == 1
    assert not (tmp_path / "store.db").exists()  # nothing configured behind the app's back


def test_meters_alone_an_app_sets_only_a_meter_provider(fake: Any, tmp_path: Path) -> None:
    """No OTLP configured: we never set a meter provider without a reader, so the app's wins;
    traces nobody set go to the local store at the first call."""
    fake.enqueue(Reply.ok(input_tokens=1200, output_tokens=80))
    out = _run(APP_SETS_ITS_OWN, tmp_path, fake, WHICH="metrics")
    assert out.returncode == 0, out.stderr
    assert "Overriding of current" not in out.stderr
    seen = json.loads(out.stdout)
    assert not seen["ours"] and seen["ours_meter"]
    assert seen["points"][n.M_COST] == expected_cost("openai", "gpt-4o-mini", 1200, 80)
    assert (tmp_path / "store.db").exists()


def test_nothing_is_configured_before_the_first_call(tmp_path: Path, fake: Any) -> None:
    app = textwrap.dedent(
        """
        import json
        from opentelemetry import metrics, trace
        import otel_tokens.instrumentation.core as core
        before = [type(trace.get_tracer_provider()).__name__, type(metrics.get_meter_provider()).__name__]
        import otel_tokens
        with otel_tokens.task("t"):
            pass
        after = type(trace.get_tracer_provider()).__name__
        seen = {"instrumented": core.active.recorder is not None, "before": before, "after": after}
        print(json.dumps(seen))
        """
    )
    out = _run(app, tmp_path, fake)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert seen == {
        "instrumented": True,
        "before": ["ProxyTracerProvider", "_ProxyMeterProvider"],
        "after": "TracerProvider",  # configured (local store) when the first task needed it
    }


def test_an_unreachable_collector_holds_the_exit_up_at_most_the_bound(fake: Any, tmp_path: Path) -> None:
    from otel_tokens.distro.bootstrap import EXIT_TIMEOUT_S

    app = textwrap.dedent(
        """
        import atexit, json, time
        atexit.register(lambda: print(json.dumps({"exited": time.time()}), flush=True))  # runs last
        import otel_tokens
        with otel_tokens.task("t"):
            pass
        print(json.dumps({"done": time.time()}), flush=True)
        """
    )
    out = _run(app, tmp_path, fake, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert out.returncode == 0, out.stderr
    done, exited = (json.loads(line) for line in out.stdout.splitlines())
    assert exited["exited"] - done["done"] < EXIT_TIMEOUT_S + 0.5, out.stderr
    assert "telemetry not exported within 2 s at exit" in out.stderr
