"""anthropic SDK: messages.create (sync, async, stream) and the messages.stream() helper.

Anthropic reports *uncached* ``input_tokens``; the normalised input adds cache reads and
writes. Streams carry usage in ``message_start`` and (cumulative) in ``message_delta``;
a field present in the later event wins.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from otel_tokens import names as n
from otel_tokens.instrumentation.adapters import count, get
from otel_tokens.instrumentation.core import Endpoint
from otel_tokens.record import CallRecord, Usage, normalised_usage

_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


def usage_fields(usage: Any) -> dict[str, int]:
    out = {f: v for f in _FIELDS if (v := count(usage, f)) is not None}
    thinking = count(usage, "output_tokens_details", "thinking_tokens")
    if thinking is not None:
        out["thinking_tokens"] = thinking
    return out


def normalise(fields: dict[str, int]) -> Usage:
    cache_read = fields.get("cache_read_input_tokens", 0)
    cache_write = fields.get("cache_creation_input_tokens", 0)
    return normalised_usage(
        input_tokens=fields.get("input_tokens", 0) + cache_read + cache_write,
        output_tokens=fields.get("output_tokens"),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=fields.get("thinking_tokens"),
    )


def message_usage(usage: Any) -> Usage:
    return normalise(usage_fields(usage))


def _with_message(base: CallRecord, message: Any) -> CallRecord:
    model = get(message, "model")
    mid = get(message, "id")
    reason = get(message, "stop_reason")
    return replace(
        base,
        response_model=model if isinstance(model, str) else base.response_model,
        response_id=mid if isinstance(mid, str) else base.response_id,
        finish_reasons=(reason,) if isinstance(reason, str) else base.finish_reasons,
    )


def message_record(message: Any, base: CallRecord) -> CallRecord:
    record = _with_message(base, message)
    usage = get(message, "usage")
    return record.with_usage(message_usage(usage)) if usage is not None else record


class MessageStreamObserver:
    __slots__ = ("fields", "message", "reason")

    def __init__(self) -> None:
        self.message: Any = None
        self.fields: dict[str, int] | None = None
        self.reason: str | None = None

    def observe(self, event: Any) -> None:
        kind = event.type
        if kind == "message_start":
            self.message = event.message
            self.fields = usage_fields(event.message.usage)
        elif kind == "message_delta":
            if self.fields is None:
                self.fields = {}
            self.fields.update(usage_fields(event.usage))
            reason = get(event.delta, "stop_reason")
            if isinstance(reason, str):
                self.reason = reason

    def record(self, base: CallRecord, *, complete: bool) -> CallRecord:
        record = _with_message(base, self.message) if self.message is not None else base
        if self.reason is not None:
            record = replace(record, finish_reasons=(self.reason,))
        return record.with_usage(normalise(self.fields)) if self.fields is not None else record


MESSAGES = Endpoint(n.PROVIDER_ANTHROPIC, n.OP_CHAT, message_record, MessageStreamObserver)
MESSAGES_STREAM = Endpoint(
    n.PROVIDER_ANTHROPIC, n.OP_CHAT, message_record, MessageStreamObserver, always_stream=True
)

TARGETS: tuple[tuple[str, str, str, Endpoint, str], ...] = tuple(
    (module, cls, method, endpoint, kind)
    for module in ("anthropic.resources.messages.messages", "anthropic.resources.beta.messages.messages")
    for cls in ("Messages", "AsyncMessages")
    for method, endpoint, kind in (("create", MESSAGES, "call"), ("stream", MESSAGES_STREAM, "manager"))
)
