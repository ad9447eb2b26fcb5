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
* ``None`` means *not reported*; ``0`` means reported as zero. ``usage_reported`` is
  False when the response carried no usage at all (e.g. a chat stream without
  ``stream_options.include_usage``): the call is counted, its tokens are unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call, normalised as described in the module docstring."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def uncached_input_tokens(self) -> int:
        return max(self.input_tokens - self.cache_read_tokens - self.cache_write_tokens, 0)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_tokens + other.cache_read_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )


def normalised_usage(
    *,
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read_tokens: int | None = None,
    cache_write_tokens: int | None = None,
    reasoning_tokens: int | None = None,
) -> Usage:
    """Build a `Usage` from provider numbers that already *include* cache and reasoning.

    Missing values become 0, negatives are clamped to 0, and the subset invariants are
    restored by raising the totals (never by dropping reported cache tokens).
    """
    cr = max(cache_read_tokens or 0, 0)
    cw = max(cache_write_tokens or 0, 0)
    rs = max(reasoning_tokens or 0, 0)
    inp = max(input_tokens or 0, cr + cw)
    out = max(output_tokens or 0, rs)
    return Usage(inp, out, cr, cw, rs)


@dataclass(frozen=True, slots=True)
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
    usage: Usage = field(default_factory=Usage)
    usage_reported: bool = False
    error_type: str | None = None
    partial: bool = False  # the model started answering, then the call failed or was cut
    retries: int = 0

    @property
    def model(self) -> str | None:
        """The model to price and to label metrics with: the response's, else the request's."""
        return self.response_model or self.request_model

    def with_usage(self, usage: Usage) -> CallRecord:
        return replace(self, usage=usage, usage_reported=True)
