"""Fixtures of the fault campaign: the user's guard setting, in-memory providers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# Every switch that makes otel-tokens re-raise its own errors, and the one that turns it off.
RAISE_SWITCHES = ("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "OTEL_TOKENS_TEST_RAISE_INTERNAL_ERRORS")
SWALLOW = {"OTEL_TOKENS_SWALLOW_INTERNAL_ERRORS": "1"}


def as_a_user(mp: pytest.MonkeyPatch) -> None:
    """Internal errors are logged, not raised: what a user running pytest gets."""
    for name in RAISE_SWITCHES:
        mp.delenv(name, raising=False)
    for name, value in SWALLOW.items():
        mp.setenv(name, value)


def user_env() -> dict[str, str]:
    """The environment of a child process run as a user would run it."""
    env = {k: v for k, v in os.environ.items() if k not in RAISE_SWITCHES}
    return env | SWALLOW


@dataclass
class Providers:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider


def providers() -> Providers:
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    return Providers(exporter, reader, tp, MeterProvider(metric_readers=[reader]))


@pytest.fixture(scope="module")
def user_guard() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        as_a_user(mp)
        yield
