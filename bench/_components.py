"""Benchmark parts that time otel-tokens' pieces without the SDK around them, and a profiler.

`components()` reaches into otel-tokens internals (`Recorder`, `core._observe_sync`); when
they change shape the part is reported as skipped rather than failing the whole bench.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from _transport import MODEL, RESPONSE_MODEL

import otel_tokens

if TYPE_CHECKING:
    from bench_overhead import Bench

BASE_METRIC_ATTRS: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
}
BARE_ATTRS: dict[str, Any] = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "openai",
    "gen_ai.request.model": "gpt-4o-mini",
    "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
    "gen_ai.response.id": "chatcmpl-bench",
    "gen_ai.usage.input_tokens": 1_200,
    "gen_ai.usage.output_tokens": 350,
    "gen_ai.usage.cost": 0.000123,
    "server.address": "api.openai.com",
    "server.port": 443,
}


def cpu_us_per_call(fn: Callable[[], None], n: int) -> float:
    gc.collect()
    t0 = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t0) / n * 1e6


class _NoOpInstrument:
    def add(self, *_args: object, **_kwargs: object) -> None:
        return None

    def record(self, *_args: object, **_kwargs: object) -> None:
        return None

    def point(self, *_args: object) -> None:  # telemetry.direct.Direct
        return None


def _median_us(fn: Callable[[], None], n: int, repeat: int = 7) -> float:
    """Median CPU µs of `fn` over `repeat` blocks of `n` calls."""
    return statistics.median(cpu_us_per_call(fn, n) for _ in range(repeat))


def components(bench: Bench) -> dict[str, float | str]:
    """What one otel-tokens call is made of, without the SDK around it (CPU µs, medians).

    Uses otel-tokens internals (`Recorder`, `core._observe_sync`); a part that no longer
    fits the current internals is reported as skipped instead of failing the bench.
    """
    out: dict[str, float | str] = {}
    scale = bench.plan.component_scale

    def _timed(fn: Callable[[], None], n: int) -> float:
        return _median_us(fn, max(int(n * scale), 20))

    meter = bench.meter_provider.get_meter("bench.components")
    counter = meter.create_counter("bench.counter", unit="{token}")
    histogram = meter.create_histogram("bench.histogram", unit="s")
    metric_attrs = {k: v for k, v in BARE_ATTRS.items() if isinstance(v, str) and "id" not in k}
    metric_attrs |= {"otel_tokens.outcome": "success", "otel_tokens.cost.status": "priced"}
    out["bare_span"] = _timed(bench.bare_span, 5_000)
    out["counter_add_6_attrs"] = _timed(lambda: counter.add(1, metric_attrs), 10_000)
    out["histogram_record_4_attrs"] = _timed(lambda: histogram.record(0.5, BASE_METRIC_ATTRS), 10_000)
    try:
        from otel_tokens.record import CallRecord, Usage
        from otel_tokens.telemetry.recorder import Recorder

        recorder = Recorder(bench.tracer_provider, bench.meter_provider)
        server = ("api.openai.com", 443)
        record = CallRecord(
            "openai",
            "chat",
            MODEL,
            RESPONSE_MODEL,
            "chatcmpl-bench",
            ("stop",),
            server[0],
            server[1],
            False,
        ).with_usage(Usage(1_200, 350, 1_024, 0, 0))
        recorder.pricer.price("openai", RESPONSE_MODEL, record.usage)

        def one_call() -> None:
            recorder.start("openai", "chat", MODEL, False, server, bench.prompts[0], None).finish(record)

        out["recorder_start_finish"] = _timed(one_call, 5_000)
        # local-store mode: a meter provider without a reader (or none set): no instrument work
        from opentelemetry.sdk.metrics import MeterProvider

        unread = Recorder(bench.tracer_provider, MeterProvider())

        def one_unread_call() -> None:
            unread.start("openai", "chat", MODEL, False, server, bench.prompts[0], None).finish(record)

        out["recorder_no_metric_reader"] = _timed(one_unread_call, 5_000)
        # where the time goes: the same with the synchronous counters, then also the
        # histograms, as no-ops (the other counters are in-process sums, see otel_tokens.telemetry.sums)
        metrics = recorder.metrics
        for name in ("cost", "retries", "repeats", "cost_points"):
            setattr(metrics, name, _NoOpInstrument())
        out["recorder_without_counters"] = _timed(one_call, 5_000)
        metrics.token_usage = metrics.duration = _NoOpInstrument()
        metrics.token_points = metrics.duration_points = _NoOpInstrument()
        out["recorder_span_only"] = _timed(one_call, 5_000)
        out["pricer_price"] = _timed(
            lambda: recorder.pricer.price("openai", RESPONSE_MODEL, record.usage), 20_000
        )
    except Exception as exc:
        out["recorder_start_finish"] = f"skipped: {exc!r}"
    try:
        # inside a task the repeat fingerprint reads the last turns only, each string cut to its
        # ends (outside a task nothing is hashed): a 20 KB history and a 5 MB image cost the same
        from otel_tokens.telemetry.fingerprint import fingerprint

        history = [{"role": ("user", "assistant")[i % 2], "content": "x" * 1_000} for i in range(20)]
        out["fingerprint_20kb_prompt"] = _timed(lambda: fingerprint(MODEL, history), 2_000)
        image = [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 5_000_000}}]
        with_image = [*history, {"role": "user", "content": image}]
        out["fingerprint_5mb_image"] = _timed(lambda: fingerprint(MODEL, with_image), 2_000)
    except Exception as exc:
        out["fingerprint_20kb_prompt"] = f"skipped: {exc!r}"
    try:
        from otel_tokens.instrumentation.adapters.openai import CHAT, ChatStreamObserver
        from otel_tokens.instrumentation.core import _observe_sync, _StreamFinisher

        class _Finisher(_StreamFinisher):  # the real per-chunk path; no call to finish
            def finish(self, *, complete: bool, exc: BaseException | None = None) -> None:
                return None

        chunks = list(
            bench.client.chat.completions.create(
                model=MODEL, messages=bench.prompts[0], stream=True, stream_options={"include_usage": True}
            )
        )
        many = chunks * 20

        def bare() -> None:
            for _ in iter(many):
                pass

        def observed() -> None:
            fin = _Finisher(None, CHAT, ChatStreamObserver())  # type: ignore[arg-type]
            for _ in _observe_sync(iter(many), fin):
                pass

        out["stream_chunk"] = (_timed(observed, 200) - _timed(bare, 200)) / len(many)
    except Exception as exc:
        out["stream_chunk"] = f"skipped: {exc!r}"
    return out


def profile(bench: Bench, calls: int) -> None:
    """cProfile of `calls` instrumented non-streaming calls; rows outside the SDK/httpx2."""
    import cProfile
    import pstats

    otel_tokens.instrument(tracer_provider=bench.tracer_provider, meter_provider=bench.meter_provider)
    try:
        for _ in range(200):
            bench.plain()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(calls):
            bench.plain()
        prof.disable()
    finally:
        otel_tokens.uninstrument()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    ours: list[tuple[float, float, str]] = []
    otel: list[tuple[float, float, str]] = []
    for (file, line, func), (_cc, nc, _tt, ct, _callers) in stats.items():
        where = f"{file.split('site-packages/')[-1].split('/src/')[-1]}:{line}({func})"
        if "/otel_tokens/" in file and func not in ("wrapper", "async_wrapper"):
            ours.append((ct / calls * 1e6, nc / calls, where))
        elif "/opentelemetry/" in file:
            otel.append((ct / calls * 1e6, nc / calls, where))
    total = sum(ct for ct, _nc, where in ours if where.endswith(("(_begin)", "(_after_return)")))
    print(f"\nprofile of {calls} non-streaming calls (cProfile inflates small calls; read shares, not µs)")
    print(f"otel-tokens' own path (_begin + _after_return): {total:.0f} µs/call under the profiler")
    for title, rows in (("otel-tokens functions", ours), ("OpenTelemetry functions they call", otel)):
        print(f"\n{title}: cumulative µs/call, share of our path, calls/call")
        for ct, nc, where in sorted(rows, reverse=True)[:18]:
            print(f"  {ct:8.1f} {ct / total:6.1%} {nc:6.1f}  {where}")
