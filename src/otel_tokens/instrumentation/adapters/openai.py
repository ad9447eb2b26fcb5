"""openai SDK: chat completions (create, parse), Responses, embeddings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_tokens import names as n
from otel_tokens.instrumentation.adapters import count, get, texts
from otel_tokens.instrumentation.core import Endpoint
from otel_tokens.record import CallRecord, Usage, normalised_usage


def chat_usage(usage: Any, provider: str | None = None) -> Usage:
    prompt = get(usage, "prompt_tokens_details")  # each details object read once
    completion = get(usage, "completion_tokens_details")
    cache_read = count(prompt, "cached_tokens")
    if cache_read is None:
        cache_read = count(usage, "prompt_cache_hit_tokens")  # DeepSeek's own field
    output = count(usage, "completion_tokens")
    reasoning = count(completion, "reasoning_tokens")
    if provider == "x_ai" and output is not None and reasoning:
        output += reasoning  # xAI's completion_tokens leave reasoning out
    return normalised_usage(
        input_tokens=count(usage, "prompt_tokens"),
        output_tokens=output,
        cache_read_tokens=cache_read,
        cache_write_tokens=count(prompt, "cache_write_tokens"),
        reasoning_tokens=reasoning,
        input_audio_tokens=count(prompt, "audio_tokens"),
        output_audio_tokens=count(completion, "audio_tokens"),
    )


def responses_usage(usage: Any, web_searches: int | None = None) -> Usage:
    return normalised_usage(
        input_tokens=count(usage, "input_tokens"),
        output_tokens=count(usage, "output_tokens"),
        cache_read_tokens=count(usage, "input_tokens_details", "cached_tokens"),
        cache_write_tokens=count(usage, "input_tokens_details", "cache_write_tokens"),
        reasoning_tokens=count(usage, "output_tokens_details", "reasoning_tokens"),
        web_searches=web_searches,
    )


def _web_searches(response: Any) -> int:
    """Web-search tool calls in a Responses output: each one is billed as a request."""
    return sum(1 for item in get(response, "output") or () if get(item, "type") == "web_search_call")


def embeddings_usage(usage: Any) -> Usage:
    return normalised_usage(input_tokens=count(usage, "prompt_tokens"), output_tokens=0)


_IDS = (("response_model", "model"), ("response_id", "id"), ("service_tier", "service_tier"))


_TIER = (("service_tier", "service_tier"),)


def _ids(response: Any) -> dict[str, Any]:
    # Azure's content-filter chunk has model "": an empty string is no value.
    return texts(response, _IDS)


def _record(base: CallRecord, fields: dict[str, Any], usage: Usage | None) -> CallRecord:
    """One copy per call: the record is built once."""
    if usage is not None:
        fields["usage"] = usage
        fields["usage_reported"] = True
    return base.evolve(**fields) if fields else base


def chat_record(response: Any, base: CallRecord) -> CallRecord:
    fields = _ids(response)
    reasons = [r for c in get(response, "choices") or () if isinstance(r := get(c, "finish_reason"), str)]
    if reasons:
        fields["finish_reasons"] = tuple(reasons)
    usage = get(response, "usage")
    return _record(base, fields, chat_usage(usage, base.provider) if usage is not None else None)


def responses_record(response: Any, base: CallRecord) -> CallRecord:
    fields = _ids(response)
    status = get(response, "status")
    if isinstance(status, str):
        fields["finish_reasons"] = (status,)
    usage = get(response, "usage")
    return _record(
        base, fields, responses_usage(usage, _web_searches(response)) if usage is not None else None
    )


def embeddings_record(response: Any, base: CallRecord) -> CallRecord:
    usage = get(response, "usage")
    return _record(base, _ids(response), embeddings_usage(usage) if usage is not None else None)


class ChatStreamObserver:
    """Chat chunks: ids and service tier from the first chunk that names the model (every
    chunk repeats them; Azure's first, content-filter chunk has an empty model), the tier
    also from the usage chunk, finish reasons from choices, usage from the final
    usage-only chunk (present only with ``stream_options.include_usage``)."""

    __slots__ = ("fields", "looking", "reasons", "usage")

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.looking = True  # until a chunk named the model
        self.usage: Any = None
        self.reasons: list[str] = []

    def observe(self, chunk: Any) -> None:
        if self.looking:
            for k, v in _ids(chunk).items():
                self.fields.setdefault(k, v)
            self.looking = "response_model" not in self.fields
        usage = chunk.usage
        if usage is not None:
            self.usage = usage
            if "service_tier" not in self.fields:
                self.fields.update(texts(chunk, _TIER))
        for choice in chunk.choices or ():  # compatible servers send "choices": null with usage
            if choice.finish_reason is not None:
                self.reasons.append(choice.finish_reason)

    def record(self, base: CallRecord, *, complete: bool) -> CallRecord:
        fields = dict(self.fields)
        if self.reasons:
            fields["finish_reasons"] = tuple(self.reasons)
        usage = chat_usage(self.usage, base.provider) if self.usage is not None else None
        return _record(base, fields, usage)


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


def include_usage(kwargs: Mapping[str, Any]) -> bool | None:
    """``stream_options.include_usage`` as the user passed it; None when absent."""
    options = kwargs.get("stream_options")
    if isinstance(options, Mapping) and "include_usage" in options:
        return bool(options["include_usage"])
    return None


def client_provider(resource: Any) -> str:
    """``AzureOpenAI`` clients are billed by Azure whatever their host (APIM, a private proxy)."""
    return n.PROVIDER_AZURE_OPENAI if "Azure" in type(resource._client).__name__ else n.PROVIDER_OPENAI


CHAT = Endpoint(
    n.PROVIDER_OPENAI,
    n.OP_CHAT,
    chat_record,
    ChatStreamObserver,
    sdk_provider_of=client_provider,
    usage_option=include_usage,
)
RESPONSES = Endpoint(
    n.PROVIDER_OPENAI,
    n.OP_CHAT,
    responses_record,
    ResponsesStreamObserver,
    messages_key="input",
    sdk_provider_of=client_provider,
)
# the legacy completions API: chat's usage and choices, a prompt instead of messages
COMPLETIONS = Endpoint(
    n.PROVIDER_OPENAI,
    n.OP_TEXT_COMPLETION,
    chat_record,
    ChatStreamObserver,
    messages_key="prompt",
    sdk_provider_of=client_provider,
    usage_option=include_usage,
)
EMBEDDINGS = Endpoint(
    n.PROVIDER_OPENAI,
    n.OP_EMBEDDINGS,
    embeddings_record,
    None,
    messages_key=None,
    sdk_provider_of=client_provider,
)

# (module, class, method, endpoint, kind) — kind "call" wraps a method returning the response.
TARGETS: tuple[tuple[str, str, str, Endpoint, str], ...] = (
    ("openai.resources.chat.completions.completions", "Completions", "create", CHAT, "call"),
    ("openai.resources.chat.completions.completions", "AsyncCompletions", "create", CHAT, "call"),
    ("openai.resources.chat.completions.completions", "Completions", "parse", CHAT, "call"),
    ("openai.resources.chat.completions.completions", "AsyncCompletions", "parse", CHAT, "call"),
    ("openai.resources.responses.responses", "Responses", "create", RESPONSES, "call"),
    ("openai.resources.responses.responses", "AsyncResponses", "create", RESPONSES, "call"),
    ("openai.resources.responses.responses", "Responses", "parse", RESPONSES, "call"),
    ("openai.resources.responses.responses", "AsyncResponses", "parse", RESPONSES, "call"),
    ("openai.resources.completions", "Completions", "create", COMPLETIONS, "call"),
    ("openai.resources.completions", "AsyncCompletions", "create", COMPLETIONS, "call"),
    ("openai.resources.embeddings", "Embeddings", "create", EMBEDDINGS, "call"),
    ("openai.resources.embeddings", "AsyncEmbeddings", "create", EMBEDDINGS, "call"),
)
