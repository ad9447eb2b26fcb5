"""anthropic SDK: messages.create (sync, async, stream) and the messages.stream() helper.

Anthropic reports *uncached* ``input_tokens``; the normalised input adds cache reads and
writes. Streams carry usage in ``message_start`` and (cumulative) in ``message_delta``;
a field present in the later event wins.
"""

from __future__ import annotations

from typing import Any

from otel_tokens import names as n
from otel_tokens.instrumentation.adapters import count, get
from otel_tokens.instrumentation.core import Endpoint
from otel_tokens.record import CallRecord, Usage, normalised_usage

_FIELDS = ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")


_NESTED = (
    ("thinking_tokens", ("output_tokens_details", "thinking_tokens")),
    ("ephemeral_1h_input_tokens", ("cache_creation", "ephemeral_1h_input_tokens")),
    ("web_search_requests", ("server_tool_use", "web_search_requests")),
)


def usage_fields(usage: Any) -> dict[str, int]:
    out = {f: v for f in _FIELDS if (v := count(usage, f)) is not None}
    for name, path in _NESTED:
        v = count(usage, *path)
        if v is not None:
            out[name] = v
    return out


def context_fields(usage: Any) -> dict[str, str]:
    """The price context the usage reports: ``service_tier`` and ``speed`` (fast mode)."""
    out: dict[str, str] = {}
    for name in ("service_tier", "speed"):
        v = get(usage, name)
        if isinstance(v, str) and v:
            out[name] = v
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
        cache_write_1h_tokens=fields.get("ephemeral_1h_input_tokens"),
        web_searches=fields.get("web_search_requests"),
    )


def message_usage(usage: Any) -> Usage:
    return normalise(usage_fields(usage))


def _with_message(base: CallRecord, message: Any) -> CallRecord:
    model = get(message, "model")
    mid = get(message, "id")
    reason = get(message, "stop_reason")
    return base.evolve(
        response_model=model if isinstance(model, str) else base.response_model,
        response_id=mid if isinstance(mid, str) else base.response_id,
        finish_reasons=(reason,) if isinstance(reason, str) else base.finish_reasons,
    )


def message_record(message: Any, base: CallRecord) -> CallRecord:
    record = _with_message(base, message)
    usage = get(message, "usage")
    if usage is None:
        return record
    return _with_usage(record, message_usage(usage), context_fields(usage))


def _with_usage(record: CallRecord, usage: Usage, context: dict[str, str]) -> CallRecord:
    return record.evolve(
        usage=usage,
        usage_reported=True,
        service_tier=context.get("service_tier", record.service_tier),
        speed=context.get("speed", record.speed),
    )


class MessageStreamObserver:
    __slots__ = ("context", "fields", "message", "reason")

    def __init__(self) -> None:
        self.message: Any = None
        self.fields: dict[str, int] | None = None
        self.context: dict[str, str] = {}
        self.reason: str | None = None

    def observe(self, event: Any) -> None:
        kind = event.type
        if kind == "message_start":
            self.message = event.message
            self.fields = usage_fields(event.message.usage)
            self.context = context_fields(event.message.usage)
        elif kind == "message_delta":
            if self.fields is None:
                self.fields = {}
            self.fields.update(usage_fields(event.usage))
            self.context.update(context_fields(event.usage))
            reason = get(event.delta, "stop_reason")
            if isinstance(reason, str):
                self.reason = reason

    def record(self, base: CallRecord, *, complete: bool) -> CallRecord:
        record = _with_message(base, self.message) if self.message is not None else base
        if self.reason is not None:
            record = record.evolve(finish_reasons=(self.reason,))
        if self.fields is None:
            return record
        return _with_usage(record, normalise(self.fields), self.context)


def client_provider(resource: Any) -> str:
    """``AnthropicBedrock`` / ``AnthropicVertex`` calls are billed by AWS / Google, not Anthropic."""
    name = type(resource._client).__name__
    if "Bedrock" in name:
        return n.PROVIDER_AWS_BEDROCK
    if "Vertex" in name:
        return n.PROVIDER_GCP_VERTEX_AI
    return n.PROVIDER_ANTHROPIC


MESSAGES = Endpoint(
    n.PROVIDER_ANTHROPIC, n.OP_CHAT, message_record, MessageStreamObserver, sdk_provider_of=client_provider
)
MESSAGES_STREAM = Endpoint(
    n.PROVIDER_ANTHROPIC,
    n.OP_CHAT,
    message_record,
    MessageStreamObserver,
    always_stream=True,
    sdk_provider_of=client_provider,
)

TARGETS: tuple[tuple[str, str, str, Endpoint, str], ...] = tuple(
    (module, cls, method, endpoint, kind)
    for module in ("anthropic.resources.messages.messages", "anthropic.resources.beta.messages.messages")
    for cls in ("Messages", "AsyncMessages")
    for method, endpoint, kind in (("create", MESSAGES, "call"), ("stream", MESSAGES_STREAM, "manager"))
)
