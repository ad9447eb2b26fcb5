"""Metric points and span attributes written straight into the OpenTelemetry SDK's own
structures.

For every point, the SDK's ``Histogram.record`` / ``Counter.add`` cleans the attribute
mapping, hashes it (recursively, keys sorted) and walks the reader storages and views:
about 10 µs, of which the aggregation itself is under 1. A call's metric attribute sets
are the same for every call of its shape, so `Attrs` cleans and hashes a set once (the
recorder caches it per call shape) and `Direct` hands each point to the aggregation the
SDK itself would pick, through the SDK's own ``aggregate()``, with the SDK's own exemplar
decision, under the SDK's lock for delta readers. Same points, same exemplars, same
views, same cardinality limit (``test_direct.py`` compares both paths point for point).

Only for the SDK classes and versions it was written against, checked by exact type:
anything else (another SDK or version, an API proxy without a provider yet, a view that
keeps only some attributes, a custom storage, a value the SDK would warn about) takes the
public API, so the result is the same, only slower.

`set_attributes` does the same for the attributes a call's span gets at its end: values
of the plain types the SDK keeps as they are go into the span's attribute dict under the
span's locks, when no attribute limit could apply; anything else goes through
``span.set_attributes``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from typing import Any, Final

from opentelemetry import trace
from opentelemetry.context import Context

try:
    from opentelemetry.attributes import BoundedAttributes, _clean_attribute_value
    from opentelemetry.sdk.metrics._internal._view_instrument_match import (
        _hash_attributes,
        _ViewInstrumentMatch,
    )
    from opentelemetry.sdk.metrics._internal.exemplar import TraceBasedExemplarFilter
    from opentelemetry.sdk.metrics._internal.instrument import _Counter, _Histogram
    from opentelemetry.sdk.metrics._internal.measurement_consumer import SynchronousMeasurementConsumer
    from opentelemetry.sdk.metrics._internal.metric_reader_storage import MetricReaderStorage
    from opentelemetry.sdk.trace import _Span as _SdkSpan
    from opentelemetry.sdk.version import __version__ as _sdk_version

    # the SDK versions whose record path this mirrors (test_direct.py proves each pinned one)
    TESTED_SDK: tuple[str, ...] = ("1.45.",)
    SUPPORTED = _sdk_version.startswith(TESTED_SDK)
except ImportError:  # pragma: no cover - an SDK without these internals: the public API only
    SUPPORTED = False

if SUPPORTED:
    _SDK_CLASSES: frozenset[type] = frozenset((_Counter, _Histogram))

# the context of a point that takes no exemplar: its span is invalid, so the SDK's default
# trace-based filter says no (an empty Context would not do: it is falsy, and the SDK then
# reads the current one)
UNSAMPLED: Final = trace.set_span_in_context(trace.INVALID_SPAN, Context())


class _Point:
    """A `Measurement` as the SDK's aggregations read it (these five fields, nothing else),
    its attributes cleaned once for its `Attrs`: the SDK's frozen dataclass cleans them
    again in ``__post_init__`` and costs 1 µs to build."""

    __slots__ = ("attributes", "context", "instrument", "time_unix_nano", "value")

    def __init__(self, value: float, time_unix_nano: int, instrument: Any, context: Context, attributes: Any):
        self.value = value
        self.time_unix_nano = time_unix_nano
        self.instrument = instrument
        self.context = context
        self.attributes = attributes


class Attrs:
    """One metric attribute set, cleaned and hashed once as the SDK would for each point."""

    __slots__ = ("aggregations", "key", "mapping")

    def __init__(self, attributes: Mapping[str, Any]) -> None:
        # view match -> (its table, the aggregation of this set in it): a delta collection
        # swaps the table, which a hit checks by identity (no hash of the nested key)
        self.aggregations: dict[Any, tuple[Any, Any]] = {}
        if SUPPORTED:
            self.mapping: Mapping[str, Any] = _clean_attribute_value(attributes, None) or {}
            self.key: Any = _hash_attributes(self.mapping)
        else:
            self.mapping = dict(attributes)
            self.key = None


class Direct:
    """A synchronous counter or histogram, recorded through the SDK's aggregations."""

    __slots__ = ("_api", "_public", "_sdk")

    def __init__(self, instrument: Any, method: str) -> None:
        self._api = instrument
        self._public = getattr(instrument, method)  # `add` or `record`
        self._sdk: Any = None

    def _resolve(self) -> Any:
        """The SDK instrument behind the API one (a proxy's, once a provider is set), or None."""
        inst = self._api
        real = getattr(inst, "_real_instrument", inst)
        if (
            SUPPORTED
            and type(real) in _SDK_CLASSES
            and type(getattr(real, "_measurement_consumer", None)) is SynchronousMeasurementConsumer
        ):
            self._sdk = real
            return real
        return None

    def point(self, value: float, attrs: Attrs, context: Context, now: int) -> None:
        """Record `value` with `attrs`; `context` decides the exemplar (as for the API)."""
        sdk = self._sdk or self._resolve()
        if sdk is None or not 0 <= value < math.inf:  # the public API's own checks and warnings
            self._public(value, attrs.mapping, context)
            return
        config = sdk._meter_config  # the SDK's `_is_enabled()`, inlined
        if config is not None and not config.is_enabled:
            return
        mapping = attrs.mapping
        consumer = sdk._measurement_consumer
        point = _Point(value, now, sdk, context, mapping)
        exemplars = consumer._sdk_config.exemplar_filter
        if context is UNSAMPLED and type(exemplars) is TraceBasedExemplarFilter:
            sample = False  # what it would say, without its four calls
        else:
            sample = exemplars.should_sample(value, now, mapping, context)
        for storage in consumer._reader_storages.values():
            if type(storage) is not MetricReaderStorage:
                storage.consume_measurement(point, sample)
                continue
            matches = storage._instrument_view_instrument_matches.get(sdk)
            if matches is None:
                matches = storage._get_or_init_view_instrument_match(sdk)
            for match in matches:
                if type(match) is not _ViewInstrumentMatch or match._view._attribute_keys is not None:
                    match.consume_measurement(point, sample)  # type: ignore[arg-type]  # a view keeping some keys
                elif match._reset_on_collect:  # delta: a collection may swap the table
                    with match._lock:
                        _aggregation(match, attrs, _HELD).aggregate(point, sample)
                else:
                    _aggregation(match, attrs, match._lock).aggregate(point, sample)


def _aggregation(match: Any, attrs: Attrs, creating: Any) -> Any:
    """The aggregation of `attrs` in `match`, as ``consume_measurement`` would find or make it;
    `creating` is the lock to make one under (`_HELD` when the caller holds it already)."""
    table = match._attributes_aggregation
    hit = attrs.aggregations.get(match)
    if hit is not None and hit[0] is table:
        return hit[1]
    aggregation = table.get(attrs.key)
    if aggregation is None:
        with creating:
            aggregation = match._get_or_create_aggregation(attrs.key, dict(attrs.mapping))
    if len(attrs.aggregations) >= 8:  # old meter providers' matches: let them go
        attrs.aggregations.clear()
    attrs.aggregations[match] = (table, aggregation)
    return aggregation


_HELD: Final = nullcontext()  # the caller holds the match's lock already

_PLAIN: frozenset[type] = frozenset((str, bool, int, float))


def _plain(values: Iterable[Any]) -> bool:
    """Values `_clean_attribute_value` returns unchanged: str, bool, int, float, tuples of
    str (finish reasons)."""
    for value in values:
        kind = type(value)
        if kind not in _PLAIN and not (kind is tuple and all(type(v) is str for v in value)):
            return False
    return True


def set_attributes(span: Any, attributes: Mapping[str, Any]) -> None:
    """``span.set_attributes(attributes)``, without the per-value cleaning for plain values."""
    if SUPPORTED and type(span) is _SdkSpan:
        bounded = span._attributes
        if (
            type(bounded) is BoundedAttributes
            and bounded.max_value_len is None  # no value would be cut
            and _plain(attributes.values())
        ):
            with span._lock:
                table = bounded._dict
                if (
                    span._end_time is None
                    and not bounded._immutable
                    and (bounded.maxlen is None or len(table) + len(attributes) <= bounded.maxlen)
                ):
                    with bounded._lock:
                        table.update(attributes)
                    return
    span.set_attributes(attributes)
