"""openai SDK: chat completions (create, parse), Responses, embeddings."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from otel_tokens import names as n
from otel_tokens.instrumentation.adapters import count, get
from otel_tokens.instrumentation.core import Endpoint
from otel_tokens.record import CallRecord, Usage, normalised_usage


def chat_usage(usage: Any) -> Usage:
    return normalised_usage(
        input_tokens=count(usage, "prompt_tokens"),
        output_tokens=count(usage, "completion_tokens"),
        cache_read_tokens=count(usage, "prompt_tokens_details", "cached_tokens"),
        cache_write_tokens=count(usage, "prompt_tokens_details", "cache_write_tokens"),
        reasoning_tokens=count(usage, "completion_tokens_details", "reasoning_tokens"),
    )


def responses_usage(usage: Any) -> Usage:
    return normalised_usage(
        input_tokens=count(usage, "input_tokens"),
        output_tokens=count(usage, "output_tokens"),
        cache_read_tokens=count(usage, "input_tokens_details", "cached_tokens"),
        cache_write_tokens=count(usage, "input_tokens_details", "cache_write_tokens"),
        reasoning_tokens=count(usage, "output_tokens_details", "reasoning_tokens"),
    )


def embeddings_usage(usage: Any) -> Usage:
    return normalised_usage(input_tokens=count(usage, "prompt_tokens"), output_tokens=0)


def _ids(response: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    model = get(response, "model")
    if isinstance(model, str):
        fields["response_model"] = model
    rid = get(response, "id")
    if isinstance(rid, str):
        fields["response_id"] = rid
    return fields


def _record(base: CallRecord, fields: dict[str, Any], usage: Usage | None) -> CallRecord:
    """One `replace` per call: the record is built once."""
    if usage is not None:
        fields["usage"] = usage
        fields["usage_reported"] = True
    return replace(base, **fields) if fields else base


def chat_record(response: Any, base: CallRecord) -> CallRecord:
    fields = _ids(response)
    reasons = tuple(
        r for r in (get(c, "finish_reason") for c in get(response, "choices") or ()) if isinstance(r, str)
    )
    if reasons:
        fields["finish_reasons"] = reasons
    usage = get(response, "usage")
    return _record(base, fields, chat_usage(usage) if usage is not None else None)


def responses_record(response: Any, base: CallRecord) -> CallRecord:
    fields = _ids(response)
    status = get(response, "status")
    if isinstance(status, str):
        fields["finish_reasons"] = (status,)
    usage = get(response, "usage")
    return _record(base, fields, responses_usage(usage) if usage is not None else None)


def embeddings_record(response: Any, base: CallRecord) -> CallRecord:
    usage = get(response, "usage")
    return _record(base, _ids(response), embeddings_usage(usage) if usage is not None else None)


class ChatStreamObserver:
    """Chat chunks: ids from the first chunk, finish reasons from choices, usage from the
    final usage-only chunk (present only with ``stream_options.include_usage``)."""

    __slots__ = ("first", "reasons", "usage")

    def __init__(self) -> None:
        self.first: Any = None
        self.usage: Any = None
        self.reasons: list[str] = []

    def observe(self, chunk: Any) -> None:
        if self.first is None:
            self.first = chunk
        usage = chunk.usage
        if usage is not None:
            self.usage = usage
        for choice in chunk.choices:
            if choice.finish_reason is not None:
                self.reasons.append(choice.finish_reason)

    def record(self, base: CallRecord, *, complete: bool) -> CallRecord:
        fields = _ids(self.first) if self.first is not None else {}
        if self.reasons:
            fields["finish_reasons"] = tuple(self.reasons)
        return _record(base, fields, chat_usage(self.usage) if self.usage is not None else None)


class ResponsesStreamObserver:
    """Responses events: the terminal event (completed / incomplete / failed) carries the
    whole response with its usage; ``response.created`` carries ids if the stream is cut."""

    __slots__ = ("final", "started")

    def __init__(self) -> None:
        self.started: Any = None
        self.final: Any = None

    def observe(self, event: Any) -> None:
        response = getattr(event, "response", None)
        if response is None:
            return
        if self.started is None:
            self.started = response
        if get(response, "usage") is not None:
            self.final = response

    def record(self, base: CallRecord, *, complete: bool) -> CallRecord:
        if self.final is not None:
            return responses_record(self.final, base)
        return _record(base, _ids(self.started) if self.started is not None else {}, None)


CHAT = Endpoint(n.PROVIDER_OPENAI, n.OP_CHAT, chat_record, ChatStreamObserver)
RESPONSES = Endpoint(
    n.PROVIDER_OPENAI, n.OP_CHAT, responses_record, ResponsesStreamObserver, messages_key="input"
)
EMBEDDINGS = Endpoint(n.PROVIDER_OPENAI, n.OP_EMBEDDINGS, embeddings_record, None, messages_key=None)

# (module, class, method, endpoint, kind) — kind "call" wraps a method returning the response.
TARGETS: tuple[tuple[str, str, str, Endpoint, str], ...] = (
    ("openai.resources.chat.completions.completions", "Completions", "create", CHAT, "call"),
    ("openai.resources.chat.completions.completions", "AsyncCompletions", "create", CHAT, "call"),
    ("openai.resources.chat.completions.completions", "Completions", "parse", CHAT, "call"),
    ("openai.resources.chat.completions.completions", "AsyncCompletions", "parse", CHAT, "call"),
    ("openai.resources.responses.responses", "Responses", "create", RESPONSES, "call"),
    ("openai.resources.responses.responses", "AsyncResponses", "create", RESPONSES, "call"),
    ("openai.resources.embeddings", "Embeddings", "create", EMBEDDINGS, "call"),
    ("openai.resources.embeddings", "AsyncEmbeddings", "create", EMBEDDINGS, "call"),
)
