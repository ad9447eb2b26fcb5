"""`telemetry.direct` writes the same points and span attributes as the SDK's public API.

Each case feeds one sequence of points twice, through `Direct.point` and through the
instrument's own `record`/`add`, into two identically configured meter providers, and
compares everything the readers collect (values, buckets, attributes, exemplars, the
overflow series), timestamps aside. Delta readers collect between points, so a point
arriving after a collection has swapped the SDK's table is checked too.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.metrics._internal import _ProxyMeter
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics._internal.exemplar import AlwaysOffExemplarFilter, AlwaysOnExemplarFilter
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import DropAggregation, View
from opentelemetry.sdk.trace import SpanLimits, TracerProvider

from otel_tokens.telemetry import direct
from otel_tokens.telemetry.direct import UNSAMPLED, Attrs, Direct, set_attributes

DELTA = {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}
SETS = [
    {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m1", "server.port": 443},
    {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m2", "otel_tokens.loop.repeat": True},
    {"gen_ai.operation.name": "embeddings", "otel_tokens.team": "search"},
]
_tracer = TracerProvider().get_tracer("test")


def _readers(kind: str) -> list[InMemoryMetricReader]:
    if kind == "cumulative":
        return [InMemoryMetricReader()]
    if kind == "delta":
        return [InMemoryMetricReader(preferred_temporality=DELTA)]
    return [InMemoryMetricReader(), InMemoryMetricReader(preferred_temporality=DELTA)]


CASES: dict[str, dict[str, Any]] = {
    "cumulative": {"readers": "cumulative"},
    "delta, collected between points": {"readers": "delta"},
    "two readers, cumulative and delta": {"readers": "both"},
    "cardinality limit 2 (overflow series)": {"readers": "cumulative", "limit": 2},
    "a view keeping one key": {"readers": "cumulative", "views": "keys"},
    "a view renaming, one dropping": {"readers": "both", "views": "rename+drop"},
    "exemplars always on": {"readers": "both", "filter": AlwaysOnExemplarFilter()},
    "exemplars always off": {"readers": "cumulative", "filter": AlwaysOffExemplarFilter()},
}


def _views(kind: str | None) -> list[View]:
    if kind == "keys":
        return [View(instrument_name="*", attribute_keys={"gen_ai.request.model"})]
    if kind == "rename+drop":
        return [
            View(instrument_name="h", name="h.renamed"),
            View(instrument_name="c", aggregation=DropAggregation()),
        ]
    return []


def _provider(case: dict[str, Any]) -> tuple[MeterProvider, list[InMemoryMetricReader]]:
    readers = _readers(case["readers"])
    if "limit" in case:
        for reader in readers:
            reader._instrument_class_cardinality_limit = {Counter: case["limit"], Histogram: case["limit"]}
    kwargs: dict[str, Any] = {"metric_readers": readers, "views": _views(case.get("views"))}
    if "filter" in case:
        kwargs["exemplar_filter"] = case["filter"]
    return MeterProvider(**kwargs), readers


def _points() -> list[tuple[str, float, int, bool]]:
    """(instrument, value, attribute set, inside a sampled span) in a fixed order."""
    out = []
    for i in range(24):
        out.append(("h", float(i * 37 % 11) / 3, i % 3, i % 2 == 0))
        out.append(("c", i * 0.25, (i + 1) % 3, i % 4 == 0))
    out.append(("c", -1.0, 0, False))  # refused (warned) by the public API: the same here
    out.append(("h", math.nan, 1, False))
    return out


def _feed(case: dict[str, Any], via: str) -> list[Any]:
    random.seed(7)  # the SDK's fixed-size exemplar reservoir samples at random
    provider, readers = _provider(case)
    meter = provider.get_meter("t")
    instruments = {
        "h": meter.create_histogram("h", explicit_bucket_boundaries_advisory=[0.5, 1, 2, 4]),
        "c": meter.create_counter("c"),
    }
    fast = {"h": Direct(instruments["h"], "record"), "c": Direct(instruments["c"], "add")}
    attrs = [Attrs(s) for s in SETS]
    collected: list[Any] = []
    for k, (name, value, which, sampled) in enumerate(_points()):
        span = _tracer.start_span("call") if sampled else trace.INVALID_SPAN
        ctx = trace.set_span_in_context(span, otel_context.Context())
        if via == "direct":
            fast[name].point(value, attrs[which], ctx, 1_000 + k)
        elif name == "h":
            instruments["h"].record(value, SETS[which], ctx)
        else:
            instruments["c"].add(value, SETS[which], ctx)
        span.end()
        if k % 7 == 6:
            collected += [_plain(r.get_metrics_data()) for r in readers]
    collected += [_plain(r.get_metrics_data()) for r in readers]
    provider.shutdown()
    return collected


def _plain(data: Any) -> Any:
    """Metrics data without timestamps or span ids (the two runs' spans differ)."""
    if data is None:
        return None
    out = []
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points = []
                for p in metric.data.data_points:
                    d = {
                        f.name: getattr(p, f.name) for f in fields(p) if not f.name.endswith("time_unix_nano")
                    }
                    d["attributes"] = sorted(dict(p.attributes).items())
                    d["exemplars"] = sorted(
                        (e.value, sorted(dict(e.filtered_attributes or {}).items()), e.span_id is not None)
                        for e in p.exemplars
                    )
                    points.append(sorted(d.items(), key=lambda kv: kv[0]))
                out.append((metric.name, sorted(map(repr, points))))
    return sorted(out)


@pytest.mark.parametrize("name", list(CASES))
def test_direct_points_equal_the_public_api(name: str) -> None:
    case = CASES[name]
    public = _feed(case, "public")
    assert any(public), "the case collected nothing: it would prove nothing"
    assert _feed(case, "direct") == public


def test_the_pinned_sdk_takes_the_direct_path() -> None:
    """A new SDK version falls back to the public API (correct, slower): bumping the pin
    must come with this module re-checked and the version added to `TESTED_SDK`."""
    assert direct.SUPPORTED
    provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    fast = Direct(provider.get_meter("t").create_counter("c"), "add")
    fast.point(1.0, Attrs(SETS[0]), otel_context.Context(), 1)
    assert fast._sdk is not None


@pytest.mark.parametrize(
    "meter",
    [
        pytest.param(lambda: _ProxyMeter("t"), id="API proxy before any provider"),
        pytest.param(lambda: NoOpMeterProvider().get_meter("t"), id="no-op meter provider"),
    ],
)
def test_without_an_sdk_meter_the_public_api_is_used(meter: Callable[[], Any]) -> None:
    fast = Direct(meter().create_counter("c"), "add")
    fast.point(1.0, Attrs(SETS[0]), otel_context.Context(), 1)  # no error, no SDK path
    assert fast._sdk is None


START = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "server.port": 443}
FINISH: dict[str, Any] = {
    "otel_tokens.outcome": "success",
    "gen_ai.response.finish_reasons": ("stop",),
    "gen_ai.usage.input_tokens": 1_200,
    "gen_ai.usage.cost": 0.0003132,
    "otel_tokens.usage.implausible": True,
}
SPAN_CASES: dict[str, dict[str, Any]] = {
    "default limits": {},
    "a count limit the call would pass (public path)": {"limits": SpanLimits(max_span_attributes=5)},
    "a value length limit": {"limits": SpanLimits(max_span_attribute_length=3)},
    "a list value (the SDK makes it a tuple)": {"extra": {"x.list": ["a", "b"]}},
    "a tuple of ints": {"extra": {"x.ints": (1, 2)}},
    "an ended span": {"ended": True},
}


def _span_after(case: dict[str, Any], via: str) -> tuple[dict[str, Any], int]:
    provider = TracerProvider(span_limits=case.get("limits"))
    span = provider.get_tracer("t").start_span("call", attributes=START)
    if case.get("ended"):
        span.end()
    attrs = {**FINISH, **case.get("extra", {})}
    if via == "direct":
        set_attributes(span, attrs)
    else:
        span.set_attributes(attrs)
    return dict(span.attributes or {}), span.dropped_attributes


@pytest.mark.parametrize("name", list(SPAN_CASES))
def test_span_attributes_equal_set_attributes(name: str) -> None:
    assert _span_after(SPAN_CASES[name], "direct") == _span_after(SPAN_CASES[name], "public")


def test_span_attributes_on_a_non_recording_span_are_a_no_op() -> None:
    span = trace.NonRecordingSpan(trace.INVALID_SPAN_CONTEXT)
    set_attributes(span, FINISH)
    assert not span.is_recording()


def test_a_default_span_takes_the_direct_path(monkeypatch: pytest.MonkeyPatch) -> None:
    span = TracerProvider().get_tracer("t").start_span("call", attributes=START)
    monkeypatch.setattr(span, "set_attributes", lambda _attrs: pytest.fail("the public path was taken"))
    set_attributes(span, FINISH)
    assert dict(span.attributes or {}) == {**START, **FINISH}


def test_no_point_is_lost_while_a_delta_reader_collects() -> None:
    """Threads record through `Direct` while another collects (each collection swaps the
    SDK's table): the collected deltas add up to every point, exactly."""
    import threading

    reader = InMemoryMetricReader(preferred_temporality=DELTA)
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("t")
    counter = Direct(meter.create_counter("c"), "add")
    histogram = Direct(meter.create_histogram("h"), "record")
    attrs = [Attrs(s) for s in SETS]
    threads, per_thread = 4, 5_000
    done = threading.Event()
    seen = {"c": 0.0, "h": 0}

    def collect() -> None:
        data = reader.get_metrics_data()
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for p in metric.data.data_points:
                        if metric.name == "c":
                            seen["c"] += p.value
                        else:
                            seen["h"] += p.count

    def collector() -> None:
        while not done.is_set():
            collect()

    def worker(k: int) -> None:
        for i in range(per_thread):
            counter.point(1.0, attrs[(i + k) % 3], UNSAMPLED, i)
            histogram.point(0.5, attrs[i % 3], UNSAMPLED, i)

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    reading = threading.Thread(target=collector)
    reading.start()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    done.set()
    reading.join()
    collect()
    provider.shutdown()
    assert seen == {"c": threads * per_thread, "h": threads * per_thread}


def test_an_api_proxy_takes_the_sdk_path_once_its_provider_is_set() -> None:
    """`get_meter()` before any provider (zero-code start-up) hands out proxies: points go
    to the API's no-op until the provider is set, then to its SDK instrument."""
    meter = _ProxyMeter("t")
    fast = Direct(meter.create_counter("c"), "add")
    fast.point(5.0, Attrs(SETS[0]), UNSAMPLED, 1)  # no provider yet: dropped, as by the API
    reader = InMemoryMetricReader()
    meter.on_set_meter_provider(MeterProvider(metric_readers=[reader]))
    fast.point(2.0, Attrs(SETS[0]), UNSAMPLED, 2)
    assert fast._sdk is not None
    data = reader.get_metrics_data()
    points = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        for p in m.data.data_points
    ]
    assert [(dict(p.attributes), p.value) for p in points] == [(SETS[0], 2.0)]
