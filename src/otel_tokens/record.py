"""The provider-neutral usage record: what one LLM call consumed.

Adapters (one per SDK) produce it; the recorder and the pricer consume it; nothing else
builds one.

Normalisation rules, stated once:

* ``input_tokens`` always *includes* cached tokens, read and written. Anthropic reports
  uncached input separately, so its adapter adds ``cache_read_input_tokens`` and
  ``cache_creation_input_tokens``; OpenAI's ``prompt_tokens`` / ``input_tokens`` already
  include them.
* ``output_tokens`` always *includes* reasoning (thinking) tokens.
* ``cache_read_tokens``, ``cache_write_tokens`` and ``reasoning_tokens`` are subsets of
  the above, so ``cache_read + cache_write <= input`` and ``reasoning <= output``. An
  adapter that sees a provider break this (it happens) clamps input up to the cache sum.
* Extra pricing dimensions, each a subset of the totals above (so it never adds tokens):
  ``cache_write_1h_tokens`` (one-hour cache writes; the rest of ``cache_write_tokens`` are
  five-minute writes), ``input_audio_tokens`` / ``input_image_tokens`` (of input),
  ``output_audio_tokens`` / ``output_image_tokens`` (of output). ``web_searches`` counts
  server-side web-search requests (not tokens). ``details`` holds any other genai-prices
  usage key an SDK reports (e.g. ``cache_audio_read_tokens``, ``input_video_tokens``,
  ``code_executions``) as sorted ``(key, count)`` pairs, same subset rule; a key that has
  its own field (`GENAI_KEYS`) never stays in ``details``.
* The call's price context is on the record, not in `Usage`: ``service_tier`` (OpenAI
  ``service_tier``, Anthropic ``usage.service_tier``, as the *response* reports it, else as
  requested) and ``speed`` (Anthropic fast mode).
* ``None`` means *not reported*; ``0`` means reported as zero. ``usage_reported`` is
  False when the response carried no usage at all (e.g. a chat stream without
  ``stream_options.include_usage``): the call is counted, its tokens are unknown.
* A count outside ``[0, MAX_TOKENS]`` (a buggy or hostile server: ``-1``, ``2**63``) is
  implausible: it counts as 0 and the usage is flagged ``implausible`` (span attribute
  ``otel_tokens.usage.implausible``), so no exporter or store ever meets a number it cannot
  encode. This is checked once, here, for every adapter.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from dataclasses import dataclass as _record
else:

    def _record(*, frozen: bool, slots: bool):
        # Frozen for the type checker (mypy rejects any assignment), plain at run time: a
        # frozen dataclass's __init__ sets each field through object.__setattr__, five
        # times slower, and records are built on every call. Hashable either way.
        return dataclass(slots=slots, unsafe_hash=True)


# No model reads or writes anywhere near 2**32 tokens in one call; past it a number is a bug,
# and sums of such numbers still fit OTLP's and SQLite's int64.
MAX_TOKENS: Final = 2**32 - 1

# genai-prices usage key -> the `Usage` field that carries it (every other key goes in `details`)
GENAI_KEYS: Final[Mapping[str, str]] = {
    "input_tokens": "input_tokens",
    "output_tokens": "output_tokens",
    "cache_read_tokens": "cache_read_tokens",
    "cache_write_tokens": "cache_write_tokens",
    "output_reasoning_tokens": "reasoning_tokens",
    "cache_write_1h_tokens": "cache_write_1h_tokens",
    "input_audio_tokens": "input_audio_tokens",
    "output_audio_tokens": "output_audio_tokens",
    "input_image_tokens": "input_image_tokens",
    "output_image_tokens": "output_image_tokens",
    "web_searches": "web_searches",
}


@_record(frozen=True, slots=True)
class Usage:
    """Token counts of one call, normalised as described in the module docstring."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_1h_tokens: int = 0
    input_audio_tokens: int = 0
    output_audio_tokens: int = 0
    input_image_tokens: int = 0
    output_image_tokens: int = 0
    web_searches: int = 0
    details: tuple[tuple[str, int], ...] = ()
    implausible: bool = False  # a reported count was out of range and counted as 0

    @property
    def uncached_input_tokens(self) -> int:
        return max(self.input_tokens - self.cache_read_tokens - self.cache_write_tokens, 0)

    def __add__(self, other: Usage) -> Usage:
        details = self.details
        if other.details:
            merged = dict(details)
            for k, v in other.details:
                merged[k] = merged.get(k, 0) + v
            details = tuple(sorted(merged.items()))
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.cache_write_1h_tokens + other.cache_write_1h_tokens,
            self.input_audio_tokens + other.input_audio_tokens,
            self.output_audio_tokens + other.output_audio_tokens,
            self.input_image_tokens + other.input_image_tokens,
            self.output_image_tokens + other.output_image_tokens,
            self.web_searches + other.web_searches,
            details,
            self.implausible or other.implausible,
        )


def normalised_usage(
    *,
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    cache_write_1h_tokens: int | None = None,
    input_audio_tokens: int | None = None,
    output_audio_tokens: int | None = None,
    input_image_tokens: int | None = None,
    output_image_tokens: int | None = None,
    web_searches: int | None = None,
    details: dict[str, int] | None = None,
) -> Usage:
    """Build a `Usage` from provider numbers that already *include* cache and reasoning.

    Missing values become 0; values outside ``[0, MAX_TOKENS]`` become 0 and flag the
    usage implausible; the subset invariants are restored by raising the totals (never by
    dropping reported cache tokens). A `details` key that has its own field (`GENAI_KEYS`)
    moves to that field (an explicit argument wins), so nothing is priced twice.
    """
    if details and not GENAI_KEYS.keys().isdisjoint(details):
        details = dict(details)
        given = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": cache_read_tokens,
            "cache_write_tokens": cache_write_tokens,
            "reasoning_tokens": reasoning_tokens,
            "cache_write_1h_tokens": cache_write_1h_tokens,
            "input_audio_tokens": input_audio_tokens,
            "output_audio_tokens": output_audio_tokens,
            "input_image_tokens": input_image_tokens,
            "output_image_tokens": output_image_tokens,
            "web_searches": web_searches,
        }
        for key in [k for k in details if k in GENAI_KEYS]:
            value = details.pop(key)
            if given[GENAI_KEYS[key]] is None:
                given[GENAI_KEYS[key]] = value
        input_tokens, output_tokens = given["input_tokens"], given["output_tokens"]
        cache_read_tokens, cache_write_tokens = given["cache_read_tokens"], given["cache_write_tokens"]
        reasoning_tokens, cache_write_1h_tokens = given["reasoning_tokens"], given["cache_write_1h_tokens"]
        input_audio_tokens, output_audio_tokens = given["input_audio_tokens"], given["output_audio_tokens"]
        input_image_tokens, output_image_tokens = given["input_image_tokens"], given["output_image_tokens"]
        web_searches = given["web_searches"]
    counts: tuple[int | None, ...] = (
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
        reasoning_tokens,
        cache_write_1h_tokens,
        input_audio_tokens,
        output_audio_tokens,
        input_image_tokens,
        output_image_tokens,
        web_searches,
    )
    if details:
        counts += tuple(details.values())
    implausible = False
    for v in counts:  # a loop, not all(<generator>): this runs on every call
        if v is not None and not 0 <= v <= MAX_TOKENS:
            implausible = True
            break
    if implausible:
        input_tokens, output_tokens = _plausible(input_tokens), _plausible(output_tokens)
        cache_read_tokens, cache_write_tokens = _plausible(cache_read_tokens), _plausible(cache_write_tokens)
        reasoning_tokens, cache_write_1h_tokens = (
            _plausible(reasoning_tokens),
            _plausible(cache_write_1h_tokens),
        )
        input_audio_tokens, output_audio_tokens = (
            _plausible(input_audio_tokens),
            _plausible(output_audio_tokens),
        )
        input_image_tokens, output_image_tokens = (
            _plausible(input_image_tokens),
            _plausible(output_image_tokens),
        )
        web_searches = _plausible(web_searches)
        details = {k: v for k, v in (details or {}).items() if _plausible(v) is not None}
    c1h = cache_write_1h_tokens or 0
    cr = cache_read_tokens or 0
    cw = max(cache_write_tokens or 0, c1h)
    rs = reasoning_tokens or 0
    ai, ii = input_audio_tokens or 0, input_image_tokens or 0
    ao, io = output_audio_tokens or 0, output_image_tokens or 0
    inp = max(input_tokens or 0, cr + cw, ai + ii)
    out = max(output_tokens or 0, rs, ao + io)
    extra = tuple(sorted((k, v) for k, v in details.items() if v > 0)) if details else ()
    return Usage(inp, out, cr, cw, rs, c1h, ai, ao, ii, io, web_searches or 0, extra, implausible)


def _plausible(value: int | None) -> int | None:
    return value if value is not None and 0 <= value <= MAX_TOKENS else None


NO_USAGE: Final = Usage()


@_record(frozen=True, slots=True)
class CallRecord:
    """One LLM call as seen by the client, provider-neutral."""

    provider: str
    operation: str
    request_model: str | None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: tuple[str, ...] = ()
    server_address: str | None = None
    server_port: int | None = None
    stream: bool | None = None
    usage: Usage = NO_USAGE  # shared: a Usage is immutable
    usage_reported: bool = False
    error_type: str | None = None
    partial: bool = False  # the model started answering, then the call failed or was cut
    cancelled: bool = False  # the user closed or abandoned a stream before its end
    # a stream's request asked for usage (True), declined it (False), or did not say (None)
    usage_requested: bool | None = None
    retries: int = 0
    service_tier: str | None = None  # the tier the response reports (else the request's)
    speed: str | None = None  # Anthropic fast mode ("fast")
    blocked_by: str | None = None  # the budget that refused the call before it was sent
    # the cost the SDK itself reported (litellm's response_cost), kept apart and never summed
    reported_cost: float | None = None

    @property
    def model(self) -> str | None:
        """The model to price and to label metrics with: the response's, else the request's."""
        return self.response_model or self.request_model

    def with_usage(self, usage: Usage) -> CallRecord:
        return self.evolve(usage=usage, usage_reported=True)

    def evolve(self, **changes: Any) -> CallRecord:
        """A copy with `changes`: `dataclasses.replace`, without its per-call walk over the
        fields (records are copied on every call). An unknown field raises AttributeError."""
        new = CallRecord(*_fields_of(self))
        for name, value in changes.items():
            object.__setattr__(new, name, value)
        return new


# every field of a record in declaration order, which is also its constructor's order
_fields_of: Final = operator.attrgetter(*(f.name for f in fields(CallRecord)))
