"""The one recorder: turns a `CallRecord` into span attributes and metric points.

A `Call` is opened by the core when an instrumented SDK method starts (span started,
attribution resolved) and finished exactly once with the record the adapter extracted.
"""

from __future__ import annotations

import logging
import operator
import sys
import time
from collections.abc import Mapping, Sequence
from time import time_ns
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider, NoOpMeter, get_meter
from opentelemetry.metrics._internal import _ProxyMeter
from opentelemetry.trace import SpanKind, Status, StatusCode, TracerProvider

from otel_tokens import names as n
from otel_tokens.attribution import cardinality
from otel_tokens.attribution.cardinality import bounded_series
from otel_tokens.attribution.context import Scope, bounded, current_scope, span_parent
from otel_tokens.firstuse import ensure_configured
from otel_tokens.pricing.cards import Price
from otel_tokens.pricing.pricer import Pricer, default_pricer
from otel_tokens.record import CallRecord
from otel_tokens.telemetry.callstate import CallState, RetryAttempt
from otel_tokens.telemetry.direct import UNSAMPLED, Attrs, set_attributes
from otel_tokens.telemetry.fingerprint import fingerprint
from otel_tokens.telemetry.instruments import CALLS, SAVINGS, TOKENS, instruments_for
from otel_tokens.version import __version__

AttrValue = str | int | float | bool | tuple[str, ...]
# span attribute -> `Usage` field of the counts a span carries only when they are not zero
_OPTIONAL: Final = (
    (n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, "cache_read_tokens"),
    (n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, "cache_write_tokens"),
    (n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, "reasoning_tokens"),
    (n.USAGE_CACHE_WRITE_1H, "cache_write_1h_tokens"),
    (n.USAGE_INPUT_AUDIO, "input_audio_tokens"),
    (n.USAGE_OUTPUT_AUDIO, "output_audio_tokens"),
    (n.USAGE_INPUT_IMAGE, "input_image_tokens"),
    (n.USAGE_OUTPUT_IMAGE, "output_image_tokens"),
    (n.USAGE_WEB_SEARCHES, "web_searches"),
)
_OPTIONAL_NAMES: Final = tuple(name for name, _ in _OPTIONAL)
_optional_counts: Final = operator.attrgetter(*(field for _, field in _OPTIONAL))
logger = logging.getLogger("otel_tokens")


class Recorder:
    """Holds the tracer, the instruments and the pricer; one per `instrument()`."""

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        pricer: Pricer | None = None,
    ) -> None:
        self.tracer = trace.get_tracer(n.SCOPE, __version__, tracer_provider=tracer_provider)
        self.meter = get_meter(n.SCOPE, __version__, meter_provider=meter_provider)
        self.metrics = instruments_for(self.meter)
        self._pricer = pricer

    @property
    def has_pricer(self) -> bool:
        return self._pricer is not None

    @property
    def pricer(self) -> Pricer:
        if self._pricer is None:
            self._pricer = default_pricer()
        return self._pricer

    def start(
        self,
        provider: str,
        operation: str,
        model: str | None,
        stream: bool | None,
        server: tuple[str, int | None] | None,
        messages: object | None,
        extra: Mapping[str, AttrValue] | None,
        *,
        start_time: int | None = None,
        source: str | None = None,
    ) -> Call:
        """Open the call's span (at ``start_time`` ns when the call already happened, as for
        a coding agent's reported call; ``source`` then labels its span and metrics)."""
        ensure_configured()  # providers from the environment, unless the app set its own
        scope = current_scope()
        frameworks = sys.modules.get("otel_tokens.attribution.frameworks")
        if frameworks is not None:  # an agent framework's own invoke_agent span may be nearer
            scope = frameworks.scope_for(scope)
        # at creation, what the conventions say samplers may read; the attribution and the
        # rest go on with the end attributes (`Call.late`), where the SDK does not clean them
        attrs: dict[str, Any] = {n.GEN_AI_OPERATION_NAME: operation, n.GEN_AI_PROVIDER_NAME: provider}
        if model is not None:
            attrs[n.GEN_AI_REQUEST_MODEL] = model
        if server is not None:
            attrs[n.SERVER_ADDRESS] = server[0]
            if server[1] is not None:
                attrs[n.SERVER_PORT] = server[1]
        if extra:
            attrs.update(extra)
        late: dict[str, Any] = dict(scope.span_attributes)
        if stream is not None:
            late[n.GEN_AI_REQUEST_STREAM] = stream
        # iterations and repeats are per task or agent loop: a process with no task at all
        # does not count them, nor pay for the request's hash
        repeat = False
        if scope.kind != "root" or scope.name:
            late[n.AGENT_ITERATION] = scope.next_iteration()
            repeat = messages is not None and scope.is_repeat(fingerprint(model, messages))
            if repeat:
                late[n.LOOP_REPEAT] = True
        if source is not None:
            late[n.SOURCE] = source
        name = f"{operation} {model}" if model else operation
        parent = span_parent(scope)  # in a thread or pool worker: the task's span, by ids
        span = self.tracer.start_span(
            name, parent, kind=SpanKind.CLIENT, attributes=attrs, start_time=start_time
        )
        ctx = trace.set_span_in_context(span, parent)
        token = otel_context.attach(ctx)
        call = Call(self, span, token, scope, repeat)
        call.context = ctx  # the span current in it: what the exemplars point at
        call.source = source
        call.late = late
        return call


class Call:
    """One in-flight LLM call. `finish()` runs exactly once."""

    __slots__ = (
        "_done",
        "_recorder",
        "_scope",
        "_start",
        "_token",
        "context",
        "late",
        "repeat",
        "source",
        "span",
        "state",
    )

    def __init__(
        self, recorder: Recorder, span: trace.Span, token: object, scope: Scope, repeat: bool
    ) -> None:
        self._recorder = recorder
        self.span = span
        self._token = token
        self._scope = scope
        self.repeat = repeat
        self.state: CallState | None = None
        self._done = False
        self._start = time.perf_counter()
        self.source: str | None = None
        self.context: otel_context.Context | None = None
        self.late: dict[str, Any] = {}  # span attributes set with the end ones

    def elapsed(self) -> float:
        """Seconds since the call started (safe from a finaliser: no lock, no recording)."""
        return time.perf_counter() - self._start

    def detach(self) -> None:
        """Leave the span's context (the call returned; a stream may still be open)."""
        if self._token is not None:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None

    def finish(
        self, record: CallRecord, *, end_time: int | None = None, duration: float | None = None
    ) -> None:
        """Record the call; ``end_time`` (ns) and ``duration`` (s) when it already happened."""
        if self._done:
            return
        self._done = True
        try:
            self.detach()
        finally:
            self._finish(record, end_time, duration)

    def _finish(self, record: CallRecord, end_time: int | None = None, duration: float | None = None) -> None:
        rec = self._recorder
        if duration is None:
            duration = time.perf_counter() - self._start
        usage = record.usage
        retries = self.state.retries if self.state is not None else ()
        if retries:
            record = record.evolve(retries=len(retries))
        price = (
            rec.pricer.price(record.provider, record.model, usage, record.service_tier, record.speed)
            if record.usage_reported
            else None
        )
        outcome, cost_status = verdict(record, priced=price is not None)
        if cost_status == n.COST_UNKNOWN_USAGE and outcome == n.CALL_SUCCESS:
            _say_usage_unknown(record)

        span = self.span
        attrs = self.late
        attrs[n.OUTCOME] = outcome
        attrs[n.COST_STATUS] = cost_status
        if retries:
            attrs[n.RETRY_COUNT] = len(retries)
        if record.response_model is not None:
            attrs[n.GEN_AI_RESPONSE_MODEL] = record.response_model
        if record.response_id is not None:
            attrs[n.GEN_AI_RESPONSE_ID] = record.response_id
        if record.finish_reasons:
            attrs[n.GEN_AI_RESPONSE_FINISH_REASONS] = record.finish_reasons
        if usage.implausible:
            attrs[n.USAGE_IMPLAUSIBLE] = True
        if record.usage_reported:
            attrs[n.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
            attrs[n.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
            for name, value in zip(_OPTIONAL_NAMES, _optional_counts(usage), strict=True):
                if value:  # the optional counts only when there are some
                    attrs[name] = value
        if record.service_tier is not None:
            attrs[n.SERVICE_TIER] = record.service_tier
        if record.speed is not None:
            attrs[n.SPEED] = record.speed
        cost: float | None = None
        if price is not None:
            cost = float(price.total)
            attrs[n.GEN_AI_USAGE_COST] = cost
            if price.cache_savings:
                attrs[n.CACHE_SAVINGS] = float(price.cache_savings)
        reported = record.reported_cost
        if reported is not None and (cost is None or abs(reported - cost) > 1e-12 * max(1.0, cost)):
            attrs[n.COST_REPORTED] = reported
        if record.error_type is not None:
            attrs[n.ERROR_TYPE] = record.error_type
        if record.blocked_by is not None:
            attrs[n.BUDGET_NAME] = record.blocked_by
        set_attributes(span, attrs)
        for attempt in retries:
            event: dict[str, Any] = {n.RETRY_REASON: attempt.reason, n.EVENT_RETRY_WAIT: attempt.wait_s}
            if attempt.status_code is not None:
                event[n.EVENT_ATTEMPT_STATUS] = attempt.status_code
            span.add_event(n.EVENT_RETRY, event)
        if record.error_type is not None:
            span.set_status(Status(StatusCode.ERROR, record.error_type))
        span.end(end_time=end_time)

        # --- metrics ---------------------------------------------------------------------
        if _read(rec.meter):  # no reader (local-store mode): no instrument work at all
            self._metrics(record, outcome, cost_status, duration, price, cost, retries)
        if record.blocked_by is None:  # a refused call never reached the provider
            self._scope.add_call(record, price.total if price is not None else None)

    def _metrics(
        self,
        record: CallRecord,
        outcome: str,
        cost_status: str,
        duration: float,
        price: Price | None,
        cost: float | None,
        retries: Sequence[RetryAttempt],
    ) -> None:
        m = self._recorder.metrics
        usage = record.usage
        span = self.span
        shape = _shape(record, outcome, cost_status, self._scope, self.source)
        now = time_ns()
        # exemplars link spend to traces: the cost, retries and repeats point at this call's
        # span; the duration and token histograms carry none (an invalid span's context
        # spares them the SDK's exemplar reservoir)
        span_context = self.context if self.context is not None else trace.set_span_in_context(span)
        m.duration_points.point(duration, shape.duration, UNSAMPLED, now)
        rows = shape.rows
        if rows is None or rows[0] is not m.ours:  # the shape's rows in this bundle's tables
            rows = shape.rows = (m.ours, m.ours.row(shape.ours_key), m.semconv.row(shape.semconv_key))
        ours, semconv = rows[1], rows[2]
        if self.repeat:
            m.repeats.add(1, shape.ours.mapping, span_context)
        if record.usage_reported:
            values = (
                usage.input_tokens,
                usage.output_tokens,
                usage.cache_read_tokens,
                usage.cache_write_tokens,
                usage.reasoning_tokens,
            )
            m.token_points.point(usage.input_tokens, shape.input_tokens, UNSAMPLED, now)
            m.token_points.point(usage.output_tokens, shape.output_tokens, UNSAMPLED, now)
        savings = float(price.cache_savings) if price is not None and price.cache_savings else 0.0
        if price is not None:
            m.cost_points.point(cost, shape.ours, span_context, now)  # type: ignore[arg-type]
        with m.ours.lock:  # the in-process sums: one row per table, kept by the shape
            ours[CALLS] += 1
            if record.usage_reported:
                for i, v in enumerate(values):
                    semconv[i] += v
                    ours[TOKENS + i] += v
            if savings:
                ours[SAVINGS] += savings
        for attempt in retries:
            m.retries.add(1, {**shape.ours.mapping, n.RETRY_REASON: attempt.reason}, span_context)


class _Shape:
    """The metric attribute sets of one shape of call, built, bounded, cleaned and hashed
    once (cached)."""

    __slots__ = ("duration", "input_tokens", "ours", "ours_key", "output_tokens", "rows", "semconv_key")

    def __init__(self, base: Mapping[str, Any], ours: Mapping[str, Any], error_type: str | None) -> None:
        self.duration = Attrs(base if error_type is None else {**base, n.ERROR_TYPE: error_type})
        self.input_tokens = Attrs({**base, n.GEN_AI_TOKEN_TYPE: n.TOKEN_TYPE_INPUT})
        self.output_tokens = Attrs({**base, n.GEN_AI_TOKEN_TYPE: n.TOKEN_TYPE_OUTPUT})
        self.semconv_key = frozenset({**base, n.GEN_AI_TOKEN_MODALITY: n.MODALITY_UNKNOWN}.items())
        self.ours = Attrs(ours)
        self.ours_key = frozenset(ours.items())
        self.rows: tuple[Any, list[float], list[float]] | None = None  # (table, ours, semconv)


_ShapeKey = tuple[Any, ...]
_shapes: dict[_ShapeKey, _Shape] = {}
_shapes_generation = -1
MAX_SHAPES = 4096  # past this, a call's sets are built each time (same result, slower)


def _shape(record: CallRecord, outcome: str, cost_status: str, scope: Scope, source: str | None) -> _Shape:
    """The call's metric attributes, keyed by everything they are built from."""
    global _shapes_generation
    key = (
        record.operation,
        record.provider,
        record.request_model,
        record.response_model,
        record.server_address,
        record.server_port,
        record.error_type,
        record.blocked_by,
        outcome,
        cost_status,
        source,
        scope.metric_key,
    )
    if _shapes_generation != cardinality.generation:  # the guard forgot what it admitted
        _shapes.clear()
        _shapes_generation = cardinality.generation
    got = _shapes.get(key)
    if got is None:
        got = _build_shape(record, outcome, cost_status, scope, source)
        if len(_shapes) < MAX_SHAPES:
            _shapes[key] = got
    return got


def _build_shape(
    record: CallRecord, outcome: str, cost_status: str, scope: Scope, source: str | None
) -> _Shape:
    base: dict[str, Any] = {
        n.GEN_AI_OPERATION_NAME: record.operation,
        n.GEN_AI_PROVIDER_NAME: record.provider,
    }
    request_model, response_model = _bounded_models(record.request_model, record.response_model)
    if request_model is not None:
        base[n.GEN_AI_REQUEST_MODEL] = request_model
    if response_model is not None:
        base[n.GEN_AI_RESPONSE_MODEL] = response_model
    ours = dict(base)
    ours.update(scope.metric_attributes)
    ours[n.OUTCOME] = outcome
    ours[n.COST_STATUS] = cost_status
    if source is not None:
        ours[n.SOURCE] = source
    if record.blocked_by is not None:
        ours[n.BUDGET_NAME] = record.blocked_by
    if record.server_address is not None:
        address = _bounded_server(record.server_address)
        base[n.SERVER_ADDRESS] = address
        if record.server_port is not None and address != n.OVERFLOW_VALUE:
            base[n.SERVER_PORT] = record.server_port
    # the series count is bounded too, not only each key (their product)
    return _Shape(bounded_series(n.SCOPE_GEN_AI, base), bounded_series(n.SCOPE, ours), record.error_type)


def _read(meter: Any) -> bool:
    """Whether anything reads `meter`'s instruments: False for the API's proxy before a meter
    provider is set (local-store mode), for the no-op meter, and for an SDK meter provider
    without a metric reader. Checked per call: a provider set later is read from then on."""
    real = meter._real_meter if isinstance(meter, _ProxyMeter) else meter
    if real is None or isinstance(real, NoOpMeter):
        return False
    consumer = getattr(real, "_measurement_consumer", None)
    storages = getattr(consumer, "_reader_storages", None)
    return storages is None or bool(storages)


def verdict(record: CallRecord, *, priced: bool) -> tuple[str, str]:
    """(otel_tokens.outcome, otel_tokens.cost.status) of a finished call: the policy, alone.

    A failure after output started, or a stream cut by the server, is ``partial``; a stream
    the user closed or abandoned before its end is ``cancelled``; either keeps the usage it
    saw. A call that failed before any output and reported no usage has ``no_usage`` (it
    is not spend we failed to see); a call that ran and reported none is ``unknown_usage``.
    """
    if record.blocked_by is not None:  # refused by a budget: never sent, nothing billed
        return n.OUTCOME_BLOCKED, n.COST_STATUS_NOT_SENT
    if record.error_type is not None:
        outcome = n.CALL_PARTIAL if record.partial else n.CALL_ERROR
    elif record.partial:
        outcome = n.CALL_PARTIAL
    elif record.cancelled:
        outcome = n.CALL_CANCELLED
    else:
        outcome = n.CALL_SUCCESS
    if not record.usage_reported:
        status = n.COST_NO_USAGE if outcome == n.CALL_ERROR else n.COST_UNKNOWN_USAGE
    else:
        status = n.COST_PRICED if priced else n.COST_UNPRICED
    return outcome, status


_models: dict[tuple[str | None, str | None], tuple[str | None, str | None]] = {}
_unknown_said: set[tuple[str, str, bool | None, bool | None]] = set()


def _say_usage_unknown(record: CallRecord) -> None:
    """Once per kind of call: its tokens are unknown, and how to fix it where we know how."""
    key = (record.provider, record.operation, record.stream, record.usage_requested)
    if key in _unknown_said:
        return
    _unknown_said.add(key)
    hint = (
        " (pass stream_options={'include_usage': True}; otel-tokens never adds it for you)"
        if record.provider == n.PROVIDER_OPENAI and record.stream and record.usage_requested is None
        else ""
    )
    logger.warning(
        "otel-tokens: %s %s %s reported no token usage%s; such calls are counted with "
        "otel_tokens.cost.status=unknown_usage and no cost",
        record.provider,
        record.operation,
        "stream" if record.stream else "call",
        hint,
    )


_servers: dict[str, str] = {}


def _bounded_server(address: str) -> str:
    """``server.address`` on metrics passes the cardinality guard (spans keep the real one)."""
    got = _servers.get(address)
    if got is None:
        got = str(bounded({n.SERVER_ADDRESS: address})[n.SERVER_ADDRESS])
        if len(_servers) < 4096:
            _servers[address] = got
    return got


def _bounded_models(request: str | None, response: str | None) -> tuple[str | None, str | None]:
    """Model names on metrics pass the cardinality guard (spans keep the real names)."""
    key = (request, response)
    got = _models.get(key)
    if got is not None:
        return got
    pairs = ((n.GEN_AI_REQUEST_MODEL, request), (n.GEN_AI_RESPONSE_MODEL, response))
    capped = bounded({k: v for k, v in pairs if v})
    req, resp = capped.get(n.GEN_AI_REQUEST_MODEL), capped.get(n.GEN_AI_RESPONSE_MODEL)
    result = (req if isinstance(req, str) else None, resp if isinstance(resp, str) else None)
    if len(_models) < 4096:
        _models[key] = result
    return result
