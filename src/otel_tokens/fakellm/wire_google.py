"""Gemini wire format, as the Gemini API and Vertex AI send it.

Paths end in ``{model}:generateContent``, ``{model}:streamGenerateContent`` (SSE with ``alt=sse``),
``{model}:batchEmbedContents`` (Gemini API) or ``{model}:predict`` (Vertex embeddings), under
``/v1beta/models/`` or ``/v1beta1/projects/P/locations/L/publishers/google/models/``.

From a :class:`Reply`'s normalised usage: ``promptTokenCount = input_tokens`` (it includes
``cachedContentTokenCount = cache_read``), ``candidatesTokenCount = output_tokens - reasoning``,
``thoughtsTokenCount = reasoning``. Gemini has no cache writes. Each streamed chunk carries the
usage so far (the prompt, the thoughts and the candidates produced until then), as the Gemini API
does; the last one is complete. A tool-use reply is one chunk with a ``functionCall`` part.
"""

from __future__ import annotations

import json
from typing import Any

from otel_tokens.fakellm.replies import Reply
from otel_tokens.fakellm.wire import Call, Rendered, dumps, json_response, split_text, sse_response, truncated

_METHODS = (":generateContent", ":streamGenerateContent", ":batchEmbedContents", ":predict", ":embedContent")
PATHS = tuple(f"/v1beta/models/{{model}}{m}" for m in _METHODS)

_STATUS: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def is_google_path(path: str) -> bool:
    return "/models/" in path and path.endswith(_METHODS)


def _model(call: Call) -> str:
    tail = call.path.rsplit("/models/", 1)[-1]
    return tail.split(":", 1)[0] or "fake-model"


def _stream(call: Call) -> bool:
    return call.path.endswith(":streamGenerateContent")


def error(status: int, message: str | None, call: Call) -> Rendered:
    kind = _STATUS.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    body = {"error": {"code": status, "message": message or f"fake {kind.lower()}", "status": kind}}
    return json_response(status, body)


def malformed(call: Call) -> Rendered:
    if _stream(call):
        return sse_response([b'data: {"candidates": [{"content":\r\n\r\n'], cut=False)
    rendered = json_response(200, {})
    rendered.body = b'{"candidates": [{"content": {"parts": [,,]'
    return rendered


def usage_metadata(reply: Reply, *, candidates: int | None = None) -> dict[str, Any]:
    out = reply.output_tokens - reply.reasoning if candidates is None else candidates
    usage: dict[str, Any] = {"promptTokenCount": reply.input_tokens, "candidatesTokenCount": out}
    if reply.details:
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": reply.input_tokens}]
        if reply.cache_read:
            usage["cachedContentTokenCount"] = reply.cache_read
            usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": reply.cache_read}]
        if reply.reasoning:
            usage["thoughtsTokenCount"] = reply.reasoning
    usage["totalTokenCount"] = reply.input_tokens + reply.reasoning + out
    return usage


def _response(reply: Reply, call: Call, text: str, finish: bool, candidates: int | None) -> dict[str, Any]:
    part: dict[str, Any] = (
        {"text": text}
        if reply.tool_name is None
        else {"functionCall": {"name": reply.tool_name, "args": json.loads(reply.tool_args)}}
    )
    candidate: dict[str, Any] = {"content": {"parts": [part], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = reply.finish_reason or "STOP"
    body: dict[str, Any] = {"candidates": [candidate]}
    if reply.kind != "usage_null":
        body["usageMetadata"] = usage_metadata(reply, candidates=candidates)
    body["modelVersion"] = reply.model or _model(call)
    body["responseId"] = f"fake{call.seq:012d}"
    return body


def _embeddings(reply: Reply, call: Call) -> Rendered:
    requests = call.body.get("requests") or call.body.get("instances") or [None]
    values = [0.0, 0.5, 1.0]
    if call.path.endswith(":predict"):  # Vertex: per-instance statistics, split as evenly as possible
        count = len(requests)
        shares = [reply.input_tokens // count + (i < reply.input_tokens % count) for i in range(count)]
        predictions = [
            {"embeddings": {"values": values, "statistics": {"token_count": s, "truncated": False}}}
            for s in shares
        ]
        return json_response(200, {"predictions": predictions, "metadata": {"billableCharacterCount": 1}})
    body: dict[str, Any] = {"embeddings": [{"values": values} for _ in requests]}
    if reply.kind != "usage_null":
        body["usageMetadata"] = {
            "promptTokenCount": reply.input_tokens,
            "totalTokenCount": reply.input_tokens,
        }
    return json_response(200, body)


def render(reply: Reply, call: Call) -> Rendered | None:
    if not is_google_path(call.path):
        return None
    if call.path.endswith((":batchEmbedContents", ":predict", ":embedContent")):
        return _embeddings(reply, call)
    if not _stream(call):
        rendered = json_response(200, _response(reply, call, reply.text, True, None))
        return truncated(rendered) if reply.cut_after is not None else rendered
    pieces = [""] if reply.tool_name is not None else split_text(reply.text, reply.chunks)
    if reply.cut_after is not None:
        pieces = pieces[: reply.cut_after]
    visible = reply.output_tokens - reply.reasoning
    events = []
    for i, piece in enumerate(pieces):
        last = reply.cut_after is None and i == len(pieces) - 1
        so_far = visible if last else visible * (i + 1) // (reply.chunks + 1)
        events.append(b"data: " + dumps(_response(reply, call, piece, last, so_far)) + b"\r\n\r\n")
    return sse_response(events, cut=reply.cut_after is not None)
