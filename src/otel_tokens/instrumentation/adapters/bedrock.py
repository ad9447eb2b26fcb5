"""boto3 ``bedrock-runtime``: Converse, ConverseStream and InvokeModel for Anthropic models.

botocore builds client methods at run time, so the one request method of every client,
``BaseClient._make_api_call(operation, params)``, is patched and `select` keeps only these
Bedrock operations. Converse usage: ``inputTokens`` is the uncached input, so the normalised
input adds ``cacheReadInputTokens`` and ``cacheWriteInputTokens`` (as genai-prices reads it);
ConverseStream sends it in the final ``metadata`` event. InvokeModel returns the Anthropic
message body in a ``StreamingBody``: it is read and put back as an equal, unread
``StreamingBody``, and its usage is read as the anthropic adapter reads a message. The model
priced is the ``modelId`` the call named (that is what Bedrock bills).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from otel_tokens import names as n
from otel_tokens.instrumentation.adapters import anthropic as anthropic_adapter
from otel_tokens.instrumentation.adapters import count, get
from otel_tokens.instrumentation.core import Endpoint
from otel_tokens.pricing.providers import ProviderResolver
from otel_tokens.record import CallRecord, Usage, normalised_usage

_SERVICE = "bedrock-runtime"


def converse_usage(usage: Any) -> Usage:
    cr = count(usage, "cacheReadInputTokens") or 0
    cw = count(usage, "cacheWriteInputTokens") or 0
    one_hour = sum(
        count(d, "inputTokens") or 0 for d in get(usage, "cacheDetails") or () if get(d, "ttl") == "1h"
    )
    return normalised_usage(
        input_tokens=(count(usage, "inputTokens") or 0) + cr + cw,
        output_tokens=count(usage, "outputTokens"),
        cache_read_tokens=cr,
        cache_write_tokens=cw,
        cache_write_1h_tokens=one_hour,
    )


def _request_id(response: Any) -> str | None:
    rid = get(get(response, "ResponseMetadata"), "RequestId")
    return rid if isinstance(rid, str) and rid else None


def converse_record(response: Any, base: CallRecord) -> CallRecord:
    fields: dict[str, Any] = {}
    if (rid := _request_id(response)) is not None:
        fields["response_id"] = rid
    reason = get(response, "stopReason")
    if isinstance(reason, str):
        fields["finish_reasons"] = (reason,)
    usage = get(response, "usage")
    if usage is not None:
        fields["usage"] = converse_usage(usage)
        fields["usage_reported"] = True
    return base.evolve(**fields) if fields else base


class ConverseStreamObserver:
    """ConverseStream events: the stop reason in ``messageStop``, usage in ``metadata``."""

    __slots__ = ("reason", "usage")

    def __init__(self) -> None:
        self.reason: str | None = None
        self.usage: Any = None

    def observe(self, event: Any) -> None:
        if "metadata" in event:
            usage = get(event["metadata"], "usage")
            if usage is not None:
                self.usage = usage
        elif "messageStop" in event:
            reason = get(event["messageStop"], "stopReason")
            if isinstance(reason, str):
                self.reason = reason

    def record(self, base: CallRecord, *, complete: bool) -> CallRecord:
        record = base.evolve(finish_reasons=(self.reason,)) if self.reason is not None else base
        return record.with_usage(converse_usage(self.usage)) if self.usage is not None else record


def invoke_record(response: Any, base: CallRecord) -> CallRecord:
    """Read the Anthropic body and give the caller an equal, unread one."""
    body = response["body"]
    data = body.read()
    from botocore.response import StreamingBody

    response["body"] = StreamingBody(io.BytesIO(data), len(data))
    message = json.loads(data)
    record = anthropic_adapter.message_record(message, base)
    rid = _request_id(response)
    return record.evolve(response_model=None, response_id=get(message, "id") or rid)


def stream_in(response: Any) -> Any:
    return response.get("stream") if isinstance(response, Mapping) else None


def resolve(client: Any, resolver: ProviderResolver) -> tuple[str, tuple[str, int | None] | None]:
    cached = client.__dict__.get("_otel_tokens_resolved")
    if cached is None or cached[0] is not resolver:
        parts = urlsplit(str(client.meta.endpoint_url))
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        cached = (resolver, resolver.resolve(n.PROVIDER_AWS_BEDROCK, host, port, parts.path), (host, port))
        client.__dict__["_otel_tokens_resolved"] = cached
    return cached[1], cached[2]


CONVERSE = Endpoint(n.PROVIDER_AWS_BEDROCK, n.OP_CHAT, converse_record, None, resolve=resolve)
CONVERSE_STREAM = Endpoint(
    n.PROVIDER_AWS_BEDROCK,
    n.OP_CHAT,
    converse_record,
    ConverseStreamObserver,
    always_stream=True,
    resolve=resolve,
    stream_in=stream_in,
)
INVOKE = Endpoint(n.PROVIDER_AWS_BEDROCK, n.OP_CHAT, invoke_record, None, resolve=resolve)


def _invoke_body(body: Any) -> Any:
    if isinstance(body, bytes | str):
        try:
            return json.loads(body)
        except ValueError:
            return None
    return None


def select(
    client: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[Endpoint, dict[str, Any]] | None:
    """The endpoint of a botocore request, or None when it is not a Bedrock LLM call."""
    if len(args) < 2 or client.meta.service_model.service_name != _SERVICE:
        return None
    operation, params = args[0], args[1]
    if not isinstance(params, Mapping):
        return None
    model = params.get("modelId")
    if operation in ("Converse", "ConverseStream"):
        request = {"model": model, "messages": params.get("messages")}
        limit = get(params.get("inferenceConfig"), "maxTokens")
        if isinstance(limit, int):
            request["max_tokens"] = limit  # for the budgets' estimate
        return (CONVERSE if operation == "Converse" else CONVERSE_STREAM), request
    if operation == "InvokeModel" and isinstance(model, str) and "anthropic." in model:
        body = _invoke_body(params.get("body"))
        request = {"model": model, "messages": get(body, "messages")}
        if isinstance(get(body, "max_tokens"), int):
            request["max_tokens"] = body["max_tokens"]
        return INVOKE, request
    return None


DISPATCH = (("botocore.client", "BaseClient", "_make_api_call", select),)
