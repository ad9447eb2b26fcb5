"""litellm: ``completion``, ``acompletion`` (plain and streamed) and ``embedding``, ``aembedding``.

litellm reaches providers through its own HTTP handlers (OpenAI chat through the openai
client's low-level ``post()``, Anthropic through httpx), so the SDK patches underneath see
nothing, or, where litellm does use a patched SDK method, must not record a second time: the
core's function wrapper records the litellm call and silences the layers it drives. Each
litellm call is one call (its own retries and fallbacks included).

The provider is litellm's (``openai/``, ``anthropic/``, ``gemini/`` ... prefix, or
``custom_llm_provider``) mapped to ``gen_ai.provider.name``, then the provider resolver decides
from ``api_base`` (a gateway or a user map wins). litellm's usage is OpenAI-shaped and already
normalised (``prompt_tokens`` includes cache reads and writes, ``completion_tokens`` includes
reasoning). litellm's own ``response_cost`` is kept as ``otel_tokens.cost.reported`` where it
differs from ours.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from otel_tokens import names as n
from otel_tokens.instrumentation.adapters import count, get, texts
from otel_tokens.instrumentation.core import Endpoint
from otel_tokens.pricing.providers import ProviderResolver
from otel_tokens.record import CallRecord, Usage, normalised_usage

# litellm provider -> gen_ai.provider.name (others keep litellm's name, e.g. "openrouter")
_PROVIDERS = {
    "openai": n.PROVIDER_OPENAI,
    "text-completion-openai": n.PROVIDER_OPENAI,
    "anthropic": n.PROVIDER_ANTHROPIC,
    "gemini": n.PROVIDER_GCP_GEMINI,
    "vertex_ai": n.PROVIDER_GCP_VERTEX_AI,
    "vertex_ai_beta": n.PROVIDER_GCP_VERTEX_AI,
    "bedrock": n.PROVIDER_AWS_BEDROCK,
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "xai": "x_ai",
    "mistral": "mistral_ai",
    "cohere_chat": "cohere",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
}
_ROUTE = "_otel_tokens_route"
_LIMITS = ("max_tokens", "max_completion_tokens")


def provider_name(litellm_provider: str | None) -> str:
    p = (litellm_provider or "").lower()
    return _PROVIDERS.get(p, p or "litellm")


def usage(u: Any) -> Usage:
    cache_read = count(u, "prompt_tokens_details", "cached_tokens")
    if cache_read is None:
        cache_read = count(u, "cache_read_input_tokens")
    cache_write = count(u, "prompt_tokens_details", "cache_creation_tokens")
    if not cache_write:
        cache_write = count(u, "cache_creation_input_tokens") or cache_write
    return normalised_usage(
        input_tokens=count(u, "prompt_tokens"),
        output_tokens=count(u, "completion_tokens"),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=count(u, "completion_tokens_details", "reasoning_tokens"),
        cache_write_1h_tokens=count(
            u, "prompt_tokens_details", "cache_creation_token_details", "ephemeral_1h_input_tokens"
        ),
        input_audio_tokens=count(u, "prompt_tokens_details", "audio_tokens"),
        output_audio_tokens=count(u, "completion_tokens_details", "audio_tokens"),
    )


def _reported_cost(response: Any) -> float | None:
    hidden = getattr(response, "_hidden_params", None)
    cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
    if cost is None:
        cost = get(get(response, "usage"), "cost")
    return float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None


def _fields(response: Any) -> dict[str, Any]:
    return texts(response, (("response_model", "model"), ("response_id", "id")))


def _reasons(response: Any) -> tuple[str, ...]:
    return tuple(
        r for r in (get(c, "finish_reason") for c in get(response, "choices") or ()) if isinstance(r, str)
    )


def _record(base: CallRecord, fields: dict[str, Any], u: Any, cost: float | None) -> CallRecord:
    if u is not None:
        fields["usage"] = usage(u)
        fields["usage_reported"] = True
    if cost is not None:
        fields["reported_cost"] = cost
    return base.evolve(**fields) if fields else base


def completion_record(response: Any, base: CallRecord) -> CallRecord:
    fields = _fields(response)
    if reasons := _reasons(response):
        fields["finish_reasons"] = reasons
    return _record(base, fields, get(response, "usage"), _reported_cost(response))


def embedding_record(response: Any, base: CallRecord) -> CallRecord:
    u = get(response, "usage")
    record = _record(base, {}, None, _reported_cost(response))
    model = get(response, "model")
    if isinstance(model, str) and model:
        record = record.evolve(response_model=model)
    prompt = count(u, "prompt_tokens")
    return (
        record
        if prompt is None
        else record.with_usage(normalised_usage(input_tokens=prompt, output_tokens=0))
    )


class StreamObserver:
    """ModelResponseStream chunks: ids from the first, finish reasons, usage from the chunk
    that carries it (the last, with ``stream_options.include_usage``), else from the chunks
    the stream wrapper keeps (litellm strips usage from what it yields unless asked)."""

    __slots__ = ("first", "reasons", "stream", "usage")

    def __init__(self) -> None:
        self.first: Any = None
        self.usage: Any = None
        self.reasons: list[str] = []
        self.stream: weakref.ref[Any] | None = None

    def attach(self, stream: Any) -> None:
        self.stream = weakref.ref(stream)

    def stream_ended(self) -> bool:
        """litellm closes its own stream right before StopIteration, after its last chunk."""
        stream = self.stream() if self.stream is not None else None
        return bool(getattr(stream, "sent_last_chunk", False))

    def _kept_usage(self) -> Any:
        stream = self.stream() if self.stream is not None else None
        for chunk in reversed(getattr(stream, "chunks", None) or ()):
            u = get(chunk, "usage")
            if u is not None and count(u, "prompt_tokens") is not None:
                return u
        return None

    def observe(self, chunk: Any) -> None:
        if self.first is None:
            self.first = chunk
        u = get(chunk, "usage")
        if u is not None and count(u, "prompt_tokens") is not None:
            self.usage = u
        self.reasons.extend(_reasons(chunk))

    def record(self, base: CallRecord, *, complete: bool) -> CallRecord:
        fields = _fields(self.first) if self.first is not None else {}
        if self.reasons:
            fields["finish_reasons"] = tuple(self.reasons)
        # the kept chunks carry usage only once the provider sent it
        u = self.usage if self.usage is not None else self._kept_usage()
        cost = get(u, "cost")
        cost = float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None
        return _record(base, fields, u, cost)


def stream_in(result: Any) -> Any:
    """litellm's stream wrappers iterate themselves (``__next__`` / ``__anext__``)."""
    return result if type(result).__name__ == "CustomStreamWrapper" else None


def resolve(request: Any, resolver: ProviderResolver) -> tuple[str, tuple[str, int | None] | None]:
    provider, api_base = request[_ROUTE]
    sdk = provider_name(provider)
    if not api_base:
        return sdk, None
    parts = urlsplit(api_base)
    host = parts.hostname
    if not host:
        return sdk, None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return resolver.resolve(sdk, host, port, parts.path), (host, port)


def _route(model: Any, kwargs: Mapping[str, Any]) -> tuple[str, str | None, str | None]:
    """(model without prefix, litellm provider, api_base) as litellm itself decides them."""
    import litellm

    api_base = kwargs.get("api_base") or kwargs.get("base_url")
    try:
        name, provider, _key, base = litellm.get_llm_provider(
            model=model, custom_llm_provider=kwargs.get("custom_llm_provider"), api_base=api_base
        )
    except Exception:  # litellm will raise its own error for the call; record what we know
        prefix, _, rest = str(model).partition("/")
        return (rest or prefix), (prefix if rest else None), api_base
    return name, provider, base or api_base


COMPLETION = Endpoint(
    "litellm", n.OP_CHAT, completion_record, StreamObserver, resolve=resolve, stream_in=stream_in
)
EMBEDDING = Endpoint("litellm", n.OP_EMBEDDINGS, embedding_record, None, messages_key=None, resolve=resolve)


def select_completion(
    args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[Endpoint, dict[str, Any]] | None:
    model = kwargs.get("model", args[0] if args else None)
    if not isinstance(model, str):
        return None
    messages = kwargs.get("messages", args[1] if len(args) > 1 else None)
    name, provider, api_base = _route(model, kwargs)
    request = {"model": name, "messages": messages, "stream": kwargs.get("stream") is True}
    request.update((k, kwargs[k]) for k in _LIMITS if k in kwargs)  # for the budgets' estimate
    request[_ROUTE] = (provider, api_base)
    return COMPLETION, request


def select_embedding(
    args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[Endpoint, dict[str, Any]] | None:
    model = kwargs.get("model", args[0] if args else None)
    if not isinstance(model, str):
        return None
    name, provider, api_base = _route(model, kwargs)
    return EMBEDDING, {"model": name, _ROUTE: (provider, api_base)}


# (module, function, select, is_async)
FUNCTIONS = tuple(
    (module, fn, select, is_async)
    for module in ("litellm", "litellm.main")
    for fn, select, is_async in (
        ("completion", select_completion, False),
        ("acompletion", select_completion, True),
        ("embedding", select_embedding, False),
        ("aembedding", select_embedding, True),
    )
)
