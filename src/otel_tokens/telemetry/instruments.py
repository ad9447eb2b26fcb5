"""The metric instruments of LLM calls, one bundle per meter.

Synchronous: the two histograms the GenAI conventions define and the cost counter (the cost
carries exemplars linking spend to traces); their per-call points go through `direct`.
Every other counter is summed in process
(`sums.SumTable`) and reported by observable counters. Bundles are cached per meter: the
SDK keeps the first observable instrument registered under a name, so a second bundle on
the same meter would never be read.
"""

from __future__ import annotations

import threading
import weakref
from typing import Final

from opentelemetry.metrics import Meter

from otel_tokens import names as n
from otel_tokens.telemetry.direct import Direct
from otel_tokens.telemetry.sums import SumTable, observable_counter

# columns of the per-call table (keyed by our low-cardinality attributes)
CALLS: Final = 0
SAVINGS: Final = 1
TOKENS: Final = 2  # .. 6: input, output, cache_read, cache_write, reasoning
TOKEN_TYPES: Final = ("input", "output", "cache_read", "cache_write", "reasoning")

_SEMCONV_USAGE: Final = (
    (n.M_USAGE_INPUT, "Input tokens used, including cached tokens"),
    (n.M_USAGE_OUTPUT, "Output tokens used, including reasoning tokens"),
    (n.M_USAGE_CACHE_READ, "Input tokens read from the provider's cache"),
    (n.M_USAGE_CACHE_WRITE, "Input tokens written to the provider's cache"),
    (n.M_USAGE_REASONING, "Output tokens spent on reasoning"),
)


class Instruments:
    def __init__(self, meter: Meter) -> None:
        self.token_usage = meter.create_histogram(
            n.M_TOKEN_USAGE,
            unit=n.UNIT_TOKEN,
            description="Measures number of input and output tokens used",
            explicit_bucket_boundaries_advisory=list(map(float, n.TOKEN_BUCKETS)),
        )
        self.duration = meter.create_histogram(
            n.M_OPERATION_DURATION,
            unit=n.UNIT_SECONDS,
            description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=list(n.DURATION_BUCKETS),
        )
        self.cost = meter.create_counter(n.M_COST, unit=n.UNIT_USD, description="Cost of LLM calls in USD")
        # the per-call points, straight into the SDK's aggregations (`direct`)
        self.token_points = Direct(self.token_usage, "record")
        self.duration_points = Direct(self.duration, "record")
        self.cost_points = Direct(self.cost, "add")

        lock = threading.RLock()  # one call adds to both tables under one lock
        self.ours = SumTable(TOKENS + len(TOKEN_TYPES), lock)
        self.semconv = SumTable(len(_SEMCONV_USAGE), lock)
        self.retries = meter.create_counter(
            n.M_RETRIES, unit="{retry}", description="SDK-internal retries by reason"
        )
        self.repeats = meter.create_counter(
            n.M_LOOP_REPEATS, unit=n.UNIT_CALL, description="Requests identical to an earlier one in the task"
        )
        ours = self.ours
        observable_counter(
            meter, n.M_CALLS, n.UNIT_CALL, "LLM calls by outcome and cost status", [ours.observer(CALLS)]
        )
        observable_counter(
            meter,
            n.M_CACHE_SAVINGS,
            n.UNIT_USD,
            "USD saved by cache reads vs the input rate",
            [ours.observer(SAVINGS)],
        )
        observable_counter(
            meter,
            n.M_TOKENS,
            n.UNIT_TOKEN,
            "Tokens by otel_tokens.token.type",
            [ours.observer(TOKENS + i, {n.TOKEN_TYPE: t}) for i, t in enumerate(TOKEN_TYPES)],
        )
        for i, (name, description) in enumerate(_SEMCONV_USAGE):
            observable_counter(meter, name, n.UNIT_TOKEN, description, [self.semconv.observer(i)])


_bundles: weakref.WeakKeyDictionary[Meter, Instruments] = weakref.WeakKeyDictionary()


def instruments_for(meter: Meter) -> Instruments:
    bundle = _bundles.get(meter)
    if bundle is None:
        bundle = _bundles[meter] = Instruments(meter)
    return bundle
