"""Shared pieces of the attribution tests: explicit providers, synthetic calls, span lookup."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_tokens.attribution import context
from otel_tokens.attribution import scopes as attribution
from otel_tokens.record import CallRecord, Usage


@dataclass
class Providers:
    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tp: TracerProvider
    mp: MeterProvider

    def task(self, name: str, **kw: Any) -> attribution.ScopeManager:
        return attribution.task(name, tracer_provider=self.tp, meter_provider=self.mp, **kw)

    def agent(self, name: str) -> attribution.ScopeManager:
        return attribution.agent(name, tracer_provider=self.tp, meter_provider=self.mp)

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self, name: str) -> ReadableSpan:
        (found,) = [s for s in self.spans() if s.name == name]
        return found

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        out: list[tuple[dict[str, Any], Any]] = []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == metric:
                        out.extend((dict(p.attributes or {}), p) for p in m.data.data_points)
        return out


@pytest.fixture
def providers() -> Iterator[Providers]:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader])
    context.reset_for_tests({})  # a root scope from an empty environment: trigger=local
    token = otel_context.attach(otel_context.Context())  # start clean, whatever ran before
    try:
        yield Providers(exporter, reader, tp, mp)
    finally:
        otel_context.detach(token)
        context.reset_for_tests()
        tp.shutdown()
        mp.shutdown()


def call(inp: int = 0, out: int = 0, cr: int = 0, cw: int = 0, rs: int = 0, retries: int = 0) -> CallRecord:
    return CallRecord(
        "openai", "chat", "gpt-4o", usage=Usage(inp, out, cr, cw, rs), usage_reported=True, retries=retries
    )


def add(cost: Decimal | float | None, **kw: int) -> None:
    context.current_scope().add_call(call(**kw), cost)
