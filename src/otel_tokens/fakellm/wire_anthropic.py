"""Anthropic wire format: ``POST /v1/messages``, JSON and SSE, as api.anthropic.com sends them.

On the wire ``input_tokens`` is the *uncached* part of the input; a :class:`Reply` carries the
total, so ``wire input_tokens = input_tokens - cache_read - cache_write``. ``output_tokens``
includes thinking, which also goes to ``output_tokens_details.thinking_tokens`` when above 0.
Streams follow the current API: ``message_start`` carries the input side and ``output_tokens: 1``,
``message_delta`` carries cumulative totals for everything.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from otel_tokens.fakellm.replies import Reply
from otel_tokens.fakellm.wire import Call, Rendered, json_response, split_text, sse, sse_response, truncated

MESSAGES = "/v1/messages"
PATHS: tuple[str, ...] = (MESSAGES,)

_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    408: ("timeout_error", "Request timed out."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    529: ("overloaded_error", "Overloaded"),
}


_VERTEX = ("/publishers/anthropic/models/", (":rawPredict", ":streamRawPredict"))


def is_anthropic_path(path: str) -> bool:
    """``/v1/messages``, or Vertex AI's ``.../publishers/anthropic/models/M:rawPredict`` (and
    ``:streamRawPredict``), which carry the same bodies (the model is in the path)."""
    if _VERTEX[0] in path and path.endswith(_VERTEX[1]):
        return True
    return path == MESSAGES or path.startswith(MESSAGES + "/")


def _headers(call: Call) -> dict[str, str]:
    return {"request-id": f"req_fake{call.seq:012d}"}


def error(status: int, message: str | None, call: Call) -> Rendered:
    kind, default = _ERRORS.get(status, ("api_error" if status >= 500 else "invalid_request_error", ""))
    body = {
        "type": "error",
        "error": {"type": kind, "message": message or default or f"Error {status}."},
        "request_id": f"req_fake{call.seq:012d}",
    }
    return json_response(status, body, _headers(call))


def malformed(call: Call) -> Rendered:
    if call.stream:
        events = [b'event: message_start\ndata: {"type":"message_start","message":{"id":\n\n']
        return sse_response(events, cut=False, headers=_headers(call))
    rendered = json_response(200, {}, _headers(call))
    rendered.body = b'{"id": "msg_broken", "type": "message", "content": [,,]'
    return rendered


def render(reply: Reply, call: Call) -> Rendered | None:
    """Render an ``ok``/``usage_null`` reply; None if the path is not ``/v1/messages``."""
    if _VERTEX[0] in call.path and call.path.endswith(_VERTEX[1]):
        model = call.path.rsplit("/", 1)[1].split(":", 1)[0]
        call = replace(call, path=MESSAGES, json={**call.body, "model": call.body.get("model") or model})
    if call.path != MESSAGES:
        return None
    if call.stream:
        return _stream(reply, call)
    rendered = _json(reply, call)
    return truncated(rendered) if reply.cut_after is not None else rendered


def _input_side(reply: Reply) -> dict[str, Any]:
    uncached = reply.input_tokens - reply.cache_read - reply.cache_write
    if not reply.details:
        return {"input_tokens": uncached}
    return {
        "input_tokens": uncached,
        "cache_creation_input_tokens": reply.cache_write,
        "cache_read_input_tokens": reply.cache_read,
    }


def _usage(reply: Reply) -> dict[str, Any]:
    usage = _input_side(reply)
    if reply.details:
        usage["cache_creation"] = {
            "ephemeral_5m_input_tokens": reply.cache_write,
            "ephemeral_1h_input_tokens": 0,
        }
    usage["output_tokens"] = reply.output_tokens
    if reply.reasoning:
        usage["output_tokens_details"] = {"thinking_tokens": reply.reasoning}
    usage["service_tier"] = "standard"
    return usage


def _message(reply: Reply, call: Call, *, done: bool) -> dict[str, Any]:
    message: dict[str, Any] = {
        "id": f"msg_fake{call.seq:012d}",
        "type": "message",
        "role": "assistant",
        "model": reply.model or call.model,
        "content": [_content(reply, call)] if done else [],
        "stop_reason": _stop_reason(reply) if done else None,
        "stop_sequence": None,
    }
    if reply.kind != "usage_null":
        usage = _usage(reply)
        if not done:
            usage["output_tokens"] = min(1, reply.output_tokens)
            usage.pop("output_tokens_details", None)
        message["usage"] = usage
    return message


def _content(reply: Reply, call: Call, *, start: bool = False) -> dict[str, Any]:
    if reply.tool_name is None:
        return {"type": "text", "text": "" if start else reply.text}
    tool_input = {} if start else json.loads(reply.tool_args)
    return {
        "type": "tool_use",
        "id": f"toolu_fake{call.seq:012d}",
        "name": reply.tool_name,
        "input": tool_input,
    }


def _stop_reason(reply: Reply) -> str:
    return reply.finish_reason or ("tool_use" if reply.tool_name is not None else "end_turn")


def _json(reply: Reply, call: Call) -> Rendered:
    return json_response(200, _message(reply, call, done=True), _headers(call))


def _stream(reply: Reply, call: Call) -> Rendered:
    def event(kind: str, **data: Any) -> bytes:
        return sse({"type": kind, **data}, kind)

    events = [
        event("message_start", message=_message(reply, call, done=False)),
        event("content_block_start", index=0, content_block=_content(reply, call, start=True)),
        event("ping"),
    ]
    tool = reply.tool_name is not None
    pieces = split_text(reply.tool_args if tool else reply.text, reply.chunks)
    if reply.cut_after is not None:
        pieces = pieces[: reply.cut_after]
    events += [
        event(
            "content_block_delta",
            index=0,
            delta={"type": "input_json_delta", "partial_json": piece}
            if tool
            else {"type": "text_delta", "text": piece},
        )
        for piece in pieces
    ]
    if reply.cut_after is not None:
        return sse_response(events, cut=True, headers=_headers(call))
    delta = {"stop_reason": _stop_reason(reply), "stop_sequence": None}
    final: dict[str, Any] = {"delta": delta}
    if reply.kind != "usage_null":
        usage = _input_side(reply)
        usage["output_tokens"] = reply.output_tokens
        if reply.reasoning:
            usage["output_tokens_details"] = {"thinking_tokens": reply.reasoning}
        final["usage"] = usage
    events += [
        event("content_block_stop", index=0),
        event("message_delta", **final),
        event("message_stop"),
    ]
    return sse_response(events, cut=False, headers=_headers(call))
