"""Zero-code start-up: instrument now, configure providers at first use.

`start()` runs from the ``.pth`` hook when ``OTEL_TOKENS_ENABLED`` is truthy. It sets no
global provider: it instruments the SDKs (whose tracer and meter are the OpenTelemetry
API's proxies until a provider exists) and defers `configure_providers` to the first
instrumented LLM call or the first task/agent scope (`otel_tokens.firstuse`). An app that
sets its own tracer or meter provider before then gets our spans and metrics in it; if
nothing is set by then, providers come from the standard ``OTEL_*`` variables:

* an OTLP endpoint configured (``OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]ENDPOINT``) or an
  exporter named in ``OTEL_TRACES_EXPORTER``/``OTEL_METRICS_EXPORTER`` -> OTLP (http/protobuf
  by default, gRPC when ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``) behind batch processors, for
  traces and metrics;
* nothing configured -> traces to the embedded local store (SQLite) behind a batch
  processor; no meter provider is set (there would be no reader), so one the app sets later
  still receives our metrics. ``OTEL_TOKENS_STORE`` set explicitly keeps a local copy next
  to OTLP too.

Traces and metrics are decided separately: a provider the app set for one is kept, the
other is configured.

Metrics we export are delta (counters, histograms) unless
``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` says otherwise. With
``OTEL_TOKENS_TASK`` set and no parent task, the process is one task run
(`attribution.scopes.start_environment_task`): attributed from start-up, its span and the
providers at first use like everything else (at exit if nothing used them before).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_tokens import firstuse
from otel_tokens import names as n
from otel_tokens.guard import internal_error

logger = logging.getLogger("otel_tokens")

_OTLP_VARS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
)


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def otlp_configured(env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    if any(env.get(v) for v in _OTLP_VARS):
        return True
    named = {env.get("OTEL_TRACES_EXPORTER", ""), env.get("OTEL_METRICS_EXPORTER", "")}
    return any(x and x != "none" for x in named)


def _global_set(provider: object, proxy_name: str) -> bool:
    return type(provider).__name__ not in (proxy_name, "NoOpTracerProvider", "NoOpMeterProvider")


def _grpc(env_key: str) -> bool:
    proto = os.environ.get(env_key) or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    return proto.strip().lower() == "grpc"


def _otlp_span_exporter() -> SpanExporter:
    if _grpc("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as G

        return G()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as H

    return H()


def _otlp_metric_reader() -> MetricReader:
    if _grpc("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL"):
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as G

        exporter: Any = G(preferred_temporality=delta_temporality())
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as H

        exporter = H(preferred_temporality=delta_temporality())
    reader = ForkSafeReader(exporter)
    if hasattr(os, "register_at_fork"):
        forget = weakref.WeakMethod(reader.forget_pending)

        def _after_fork_in_child() -> None:
            method = forget()
            if method is not None:
                method()

        os.register_at_fork(after_in_child=_after_fork_in_child)
    return reader


class ForkSafeReader(PeriodicExportingMetricReader):
    """A periodic OTLP reader whose forked copy does not export the parent's data.

    A forked child (a gunicorn worker, a fork-started pool worker) inherits what the parent
    recorded but had not exported yet; the parent exports it, so the child collects once
    right after the fork and drops the result (`forget_pending`). From then on it exports
    deltas of its own (under the cumulative preference, totals still start from the
    parent's: choose delta for preforking servers).
    """

    _discarding = False

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        if self._discarding:
            return
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)

    def forget_pending(self) -> None:
        self._discarding = True
        try:
            self.collect()
        except Exception as exc:
            internal_error("metrics after fork", exc)
        finally:
            self._discarding = False


def delta_temporality() -> dict[type, AggregationTemporality] | None:
    """Delta for counters and histograms unless the user chose a temporality: a process
    that exports once at exit then adds to the collector's long-lived series (deltatocumulative
    there) instead of being a one-sample series of its own."""
    if os.environ.get("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "").strip():
        return None
    delta, cumulative = AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE
    return {
        Counter: delta,
        Histogram: delta,
        ObservableCounter: delta,
        UpDownCounter: cumulative,
        ObservableUpDownCounter: cumulative,
        ObservableGauge: cumulative,
    }


def _store_processor() -> SpanProcessor:
    from otel_tokens.store import default_store_path
    from otel_tokens.store.exporter import store_span_processor

    return store_span_processor(os.environ.get(n.ENV_STORE) or str(default_store_path()))


def configure_providers() -> None:
    """Set global tracer and meter providers from the environment unless already set
    (idempotent: a provider already set, by the app or by an earlier call, is kept)."""
    resource = Resource.create()
    use_otlp = otlp_configured()
    if not _global_set(trace.get_tracer_provider(), "ProxyTracerProvider"):
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)  # ours is bounded
        if not use_otlp or os.environ.get(n.ENV_STORE):  # first: local, so it shuts down in time
            provider.add_span_processor(_store_processor())
        if use_otlp:
            provider.add_span_processor(BatchSpanProcessor(_otlp_span_exporter()))
        from otel_tokens.attribution import frameworks

        frameworks.watch(provider)  # before any span: agent frameworks' spans become scopes
        trace.set_tracer_provider(provider)
        _shut_down_at_exit(provider, bounded=use_otlp)
    if use_otlp and not _global_set(metrics.get_meter_provider(), "_ProxyMeterProvider"):
        meter_provider = MeterProvider(
            resource=resource, metric_readers=[_otlp_metric_reader()], shutdown_on_exit=False
        )
        metrics.set_meter_provider(meter_provider)
        _shut_down_at_exit(meter_provider, bounded=True)


# At exit, the providers we set that export over OTLP send what they still hold, in parallel,
# for at most this long in all: an unreachable collector (the exporters retry for ~10 s each)
# does not hold the process up; what is not exported by then is lost, and one line says so.
# The local store alone is waited for: it is a file.
EXIT_TIMEOUT_S = 2.0
_owned: list[tuple[TracerProvider | MeterProvider, bool]] = []


def _shut_down_at_exit(provider: TracerProvider | MeterProvider, *, bounded: bool) -> None:
    if not _owned:
        atexit.register(_shut_down_owned)
    _owned.append((provider, bounded))


def _shut_down_owned() -> None:
    owned, bounded = list(_owned), [p for p, b in _owned if b]
    _owned.clear()
    for provider, is_bounded in owned:
        if not is_bounded:
            try:
                provider.shutdown()
            except Exception as exc:
                internal_error("shutdown at exit", exc)
    if not bounded:
        return
    millis = int(EXIT_TIMEOUT_S * 1000)

    def shut_down(provider: TracerProvider | MeterProvider) -> None:
        try:
            if isinstance(provider, MeterProvider):
                provider.shutdown(timeout_millis=millis)
            else:
                provider.shutdown()
        except Exception as exc:
            internal_error("shutdown at exit", exc)

    threads = [
        threading.Thread(target=shut_down, args=(p,), name="otel-tokens-exit", daemon=True) for p in bounded
    ]
    deadline = time.monotonic() + EXIT_TIMEOUT_S
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        logger.warning(
            "otel-tokens: telemetry not exported within %.0f s at exit (is the OTLP endpoint %s reachable?); "
            "this process's last spans and metrics are lost",
            EXIT_TIMEOUT_S,
            _endpoint(),
        )


def _endpoint() -> str:
    return next((os.environ[v] for v in _OTLP_VARS if os.environ.get(v)), "(default)")


def under_opentelemetry_instrument() -> bool:
    """`opentelemetry-instrument` puts its sitecustomize on PYTHONPATH; it will load our
    instrumentors through their entry points after its own configurator has run."""
    return "auto_instrumentation" in os.environ.get("PYTHONPATH", "")


def configure_at_first_use() -> None:
    """Defer `configure_providers` to the first instrumented call or scope."""
    firstuse.defer(_configure_guarded)


def _configure_guarded() -> None:
    try:
        logger.info(
            "otel-tokens: first LLM call or task; configuring from OTEL_* what the app has not set "
            "(set your tracer and meter providers before it to have ours use them)"
        )
        configure_providers()
    except Exception as exc:
        internal_error("configure providers", exc)


def start() -> None:
    """Instrument the SDKs and join the parent's trace and task; providers at first use.

    Under ``opentelemetry-instrument`` nothing happens here: its distro and configurator
    entry points (ours: `otel_tokens.distro.entry_points`) run next, then the instrumentors.
    """
    if under_opentelemetry_instrument():
        return
    try:
        configure_at_first_use()
        try:
            from otel_tokens.attribution import propagation

            propagation.attach_from_environ()
        except ImportError:
            pass
        from otel_tokens.instrumentation.instrumentor import instrument

        instrument()
        from otel_tokens.attribution.scopes import start_environment_task

        start_environment_task()  # its attribution now; its span and our providers at first use
    except Exception as exc:
        internal_error("start-up", exc)
