"""Metric points written straight into the OpenTelemetry SDK's own aggregations.

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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context

try:
    from opentelemetry.attributes import _clean_attribute_value
    from opentelemetry.sdk.metrics._internal._view_instrument_match import (
        _hash_attributes,
        _ViewInstrumentMatch,
    )
    from opentelemetry.sdk.metrics._internal.instrument import _Counter, _Histogram
    from opentelemetry.sdk.metrics._internal.measurement import Measurement
    from opentelemetry.sdk.metrics._internal.measurement_consumer import SynchronousMeasurementConsumer
    from opentelemetry.sdk.metrics._internal.metric_reader_storage import MetricReaderStorage
    from opentelemetry.sdk.version import __version__ as _sdk_version

    # the SDK versions whose record path this mirrors (test_direct.py proves each pinned one)
    TESTED_SDK: tuple[str, ...] = ("1.45.",)
    SUPPORTED = _sdk_version.startswith(TESTED_SDK)
except ImportError:  # pragma: no cover - an SDK without these internals: the public API only
    SUPPORTED = False

if SUPPORTED:

    class _Point(Measurement):
        """A measurement whose attributes were cleaned once, for its `Attrs` (the SDK's
        `Measurement.__post_init__` would clean them again for every point)."""

        def __post_init__(self) -> None:
            return None

    _SDK_CLASSES: frozenset[type] = frozenset((_Counter, _Histogram))


class Attrs:
    """One metric attribute set, cleaned and hashed once as the SDK would for each point."""

    __slots__ = ("key", "mapping")

    def __init__(self, attributes: Mapping[str, Any]) -> None:
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
        if not sdk._is_enabled():
            return
        mapping = attrs.mapping
        consumer = sdk._measurement_consumer
        point = _Point(value, now, sdk, context, mapping)
        sample = consumer._sdk_config.exemplar_filter.should_sample(value, now, mapping, context)
        for storage in consumer._reader_storages.values():
            if type(storage) is not MetricReaderStorage:
                storage.consume_measurement(point, sample)
                continue
            for match in storage._get_or_init_view_instrument_match(sdk):
                if type(match) is not _ViewInstrumentMatch or match._view._attribute_keys is not None:
                    match.consume_measurement(point, sample)  # a view that keeps some keys
                elif match._reset_on_collect:  # delta: a collection may swap the table
                    with match._lock:
                        aggregation = match._attributes_aggregation.get(attrs.key)
                        if aggregation is None:
                            aggregation = match._get_or_create_aggregation(attrs.key, dict(mapping))
                        aggregation.aggregate(point, sample)
                else:
                    aggregation = match._attributes_aggregation.get(attrs.key)
                    if aggregation is None:
                        with match._lock:
                            aggregation = match._get_or_create_aggregation(attrs.key, dict(mapping))
                    aggregation.aggregate(point, sample)
