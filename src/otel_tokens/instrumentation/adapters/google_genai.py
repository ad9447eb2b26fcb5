"""google-genai SDK: ``models`` generate_content (plain and streamed) and embed_content, sync and aio.

The private per-request methods (``_generate_content``, ``_generate_content_stream``,
``_embed_content``) are patched rather than the public ones: automatic function calling and
automatic continuation send several requests per public call, and each is billed.

``usage_metadata`` normalised: input = ``prompt_token_count`` (which already includes
``cached_content_token_count``) + ``tool_use_prompt_token_count``; cache read =
``cached_content_token_count``; output = ``candidates_token_count`` + ``thoughts_token_count``;
reasoning = ``thoughts_token_count``. Gemini has no cache writes. The per-modality details
(``prompt_tokens_details``, ``cache_tokens_details``, ``candidates_tokens_details``,
``tool_use_prompt_tokens_details``) become genai-prices' keys (``input_audio_tokens``,
``cache_video_read_tokens``, ... ; DOCUMENT counts as image), so audio and video are priced at
their own rates where genai-prices has them. Streamed chunks carry usage
so far (Vertex: only on the last chunk); the latest chunk that carries a count wins.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from otel_tokens import names as n
from otel_tokens.instrumentation.adapters import count, get, texts
from otel_tokens.instrumentation.core import Endpoint
from otel_tokens.pricing.providers import ProviderResolver
from otel_tokens.record import CallRecord, Usage, normalised_usage

_COUNTS = (
    "prompt_token_count",
    "cached_content_token_count",
    "candidates_token_count",
    "thoughts_token_count",
    "tool_use_prompt_token_count",
)


def provider_name(vertexai: bool) -> str:
    """``gen_ai.provider.name`` per the GenAI conventions: Gemini API or Vertex AI."""
    return n.PROVIDER_GCP_VERTEX_AI if vertexai else n.PROVIDER_GCP_GEMINI


def _base_url(base_url: object) -> tuple[str, int | None, str] | None:
    if not isinstance(base_url, str) or not base_url:
        return None
    parts = urlsplit(base_url)
    if not parts.hostname:
        return None
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), parts.path


def resolve(models: Any, resolver: ProviderResolver) -> tuple[str, tuple[str, int | None] | None]:
    """(provider, server) of a ``Models`` / ``AsyncModels`` resource, cached on it: the
    provider resolver decides from the base URL, the client's ``vertexai`` flag when it cannot."""
    cached = models.__dict__.get("_otel_tokens_resolved")
    if cached is None or cached[0] is not resolver:
        client = models._api_client
        sdk_provider = provider_name(bool(getattr(client, "vertexai", False)))
        url = _base_url(get(getattr(client, "_http_options", None), "base_url"))
        if url is None:
            cached = (resolver, sdk_provider, None)
        else:
            cached = (resolver, resolver.resolve(sdk_provider, *url), url[:2])
        models.__dict__["_otel_tokens_resolved"] = cached
    return cached[1], cached[2]


_MODALITIES = {"TEXT": "text", "AUDIO": "audio", "IMAGE": "image", "DOCUMENT": "image", "VIDEO": "video"}
# usage_metadata field -> genai-prices key patterns (the modality fills in {m})
_DETAILS = (
    ("prompt_tokens_details", ("input_{m}_tokens",)),
    ("cache_tokens_details", ("cache_{m}_read_tokens",)),
    ("candidates_tokens_details", ("output_{m}_tokens",)),
    ("tool_use_prompt_tokens_details", ("input_{m}_tokens", "input_{m}_tool_tokens")),
)
_FIELDS = {"input_audio_tokens", "input_image_tokens", "output_audio_tokens", "output_image_tokens"}


def _modality_counts(metadata: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for field, keys in _DETAILS:
        for entry in get(metadata, field) or ():
            modality = get(entry, "modality")
            name = _MODALITIES.get(str(getattr(modality, "value", modality)))
            tokens = count(entry, "token_count")
            if name is None or tokens is None:
                continue
            for key in keys:
                key = key.format(m=name)
                out[key] = out.get(key, 0) + tokens
    return out


def usage_counts(metadata: Any) -> dict[str, int]:
    """The counts of one ``usage_metadata``: its ``*_token_count`` fields and genai-prices'
    per-modality keys."""
    counts = {f: v for f in _COUNTS if (v := count(metadata, f)) is not None}
    if counts:
        counts.update(_modality_counts(metadata))
    return counts


def normalise(c: dict[str, int]) -> Usage:
    thoughts = c.get("thoughts_token_count", 0)
    details = {k: v for k, v in c.items() if k not in _FIELDS and k.endswith("_tokens")}
    tool = c.get("tool_use_prompt_token_count")
    if tool:
        details["input_tool_tokens"] = tool
    return normalised_usage(
        input_tokens=c.get("prompt_token_count", 0) + c.get("tool_use_prompt_token_count", 0),
        output_tokens=c.get("candidates_token_count", 0) + thoughts,
        cache_read_tokens=c.get("cached_content_token_count"),
        reasoning_tokens=thoughts,
        input_audio_tokens=c.get("input_audio_tokens"),
        input_image_tokens=c.get("input_image_tokens"),
        output_audio_tokens=c.get("output_audio_tokens"),
        output_image_tokens=c.get("output_image_tokens"),
        details=details,
    )


def _finish_reason(candidate: Any) -> str | None:
    reason = get(candidate, "finish_reason")
    value = getattr(reason, "value", reason)
    return value.lower() if isinstance(value, str) else None


def _fields(response: Any) -> dict[str, Any]:
    fields = texts(response, (("response_model", "model_version"), ("response_id", "response_id")))
    reasons = tuple(r for r in map(_finish_reason, get(response, "candidates") or ()) if r is not None)
    if reasons:
        fields["finish_reasons"] = reasons
    return fields


def _record(base: CallRecord, fields: dict[str, Any], counts: dict[str, int] | None) -> CallRecord:
    if counts is not None:
        fields["usage"] = normalise(counts)
        fields["usage_reported"] = True
    return base.evolve(**fields) if fields else base


def content_record(response: Any, base: CallRecord) -> CallRecord:
    counts = usage_counts(get(response, "usage_metadata"))
    return _record(base, _fields(response), counts or None)


def embed_record(response: Any, base: CallRecord) -> CallRecord:
    """Gemini API: ``usage_metadata.prompt_token_count``; Vertex: per-embedding statistics."""
    prompt = count(get(response, "usage_metadata"), "prompt_token_count")
    if prompt is None:
        stats = [get(get(e, "statistics"), "token_count") for e in get(response, "embeddings") or ()]
        numbers = [int(s) for s in stats if isinstance(s, int | float) and not isinstance(s, bool)]
        prompt = sum(numbers) if numbers else None
    if prompt is None:
        return base
    return base.with_usage(normalised_usage(input_tokens=prompt, output_tokens=0))


class ContentStreamObserver:
    """Chunks of ``generate_content_stream``: each count from the latest chunk carrying it."""

    __slots__ = ("counts", "fields")

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def observe(self, chunk: Any) -> None:
        self.fields.update(_fields(chunk))
        metadata = get(chunk, "usage_metadata")
        if metadata is not None:
            self.counts.update(usage_counts(metadata))

    def record(self, base: CallRecord, *, complete: bool) -> CallRecord:
        return _record(base, dict(self.fields), self.counts or None)


CONTENT = Endpoint(
    n.PROVIDER_GCP_GEMINI,
    n.OP_CHAT,
    content_record,
    ContentStreamObserver,
    messages_key="contents",
    resolve=resolve,
)
CONTENT_STREAM = Endpoint(
    n.PROVIDER_GCP_GEMINI,
    n.OP_CHAT,
    content_record,
    ContentStreamObserver,
    always_stream=True,
    messages_key="contents",
    resolve=resolve,
    iterates=True,
)
EMBED = Endpoint(
    n.PROVIDER_GCP_GEMINI, n.OP_EMBEDDINGS, embed_record, None, messages_key=None, resolve=resolve
)

TARGETS: tuple[tuple[str, str, str, Endpoint, str], ...] = tuple(
    ("google.genai.models", cls, method, endpoint, "call")
    for cls in ("Models", "AsyncModels")
    for method, endpoint in (
        ("_generate_content", CONTENT),
        ("_generate_content_stream", CONTENT_STREAM),
        ("_embed_content", EMBED),
    )
)
