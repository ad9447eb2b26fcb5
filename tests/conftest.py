"""Shared fixtures: function-scoped providers with in-memory exporters, the fake LLM server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# Our own bugs must fail our tests: re-raise internal errors (users never get this switch by
# accident; being under pytest is not enough). Child processes of the tests inherit it.
os.environ["OTEL_TOKENS_RAISE_INTERNAL_ERRORS"] = "true"

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OTEL_TOKENS_SHARED", REPO.parent / "shared"))
# Tests of the shared recordings skip outside CI when ../shared is absent; under CI they fail.
needs_shared = pytest.mark.skipif(
    not (SHARED / "real-responses").is_dir() and not os.environ.get("CI"),
    reason=f"needs {SHARED / 'real-responses'} beside the checkout (CI requires it)",
)


def expected_cost(provider: str, model: str, inp: int, out: int, cr: int = 0, cw: int = 0) -> float:
    """The cost computed independently, straight from genai-prices (slow path, exact)."""
    import genai_prices

    usage = genai_prices.Usage(
        input_tokens=inp, output_tokens=out, cache_read_tokens=cr or None, cache_write_tokens=cw or None
    )
    total: Decimal = genai_prices.calc_price(usage, model, provider_id=provider).total_price
    return float(total)


def _drain() -> None:
    """Reading telemetry is a safe point, as a flush or the next instrumented call is in an
    app: finishes that finalisers queued (streams closed by being collected) run first."""
    from otel_tokens import deferred

    deferred.drain()


@dataclass
class Telemetry:
    spans_exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def spans(self) -> list[ReadableSpan]:
        _drain()
        return list(self.spans_exporter.get_finished_spans())

    def llm_spans(self) -> list[ReadableSpan]:
        return [
            s
            for s in self.spans()
            if s.instrumentation_scope
            and s.instrumentation_scope.name == "otel_tokens"
            and s.kind.name == "CLIENT"
        ]

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, value) for every data point of metric `name` (sum value or histogram)."""
        out: list[tuple[dict[str, Any], Any]] = []
        _drain()
        data = self.reader.get_metrics_data()
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name == name:
                        for p in metric.data.data_points:
                            out.append(
                                (
                                    dict(p.attributes or {}),
                                    getattr(p, "value", None) if hasattr(p, "value") else p,
                                )
                            )
        return out

    def total(self, name: str, **match: Any) -> float:
        return sum(v for a, v in self.points(name) if all(a.get(k) == w for k, w in match.items()))


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    import otel_tokens
    from otel_tokens.attribution import context

    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    if hasattr(context, "reset_for_tests"):
        context.reset_for_tests()
    otel_tokens.instrument(tracer_provider=tp, meter_provider=mp)
    try:
        yield Telemetry(exporter, reader, tp, mp)
    finally:
        otel_tokens.uninstrument()
        if hasattr(context, "reset_for_tests"):
            context.reset_for_tests()


@pytest.fixture(scope="session")
def fake_server() -> Iterator[Any]:
    from otel_tokens.fakellm import FakeLLM

    with FakeLLM() as server:
        yield server


@pytest.fixture
def fake(fake_server: Any) -> Any:
    fake_server.reset()
    return fake_server
