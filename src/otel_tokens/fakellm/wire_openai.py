"""OpenAI wire format: chat completions, Responses and embeddings, as api.openai.com sends them.

Shapes follow the recordings in ``shared/real-responses/openai`` (field order included where it is
cheap): chat streams carry ``"usage": null`` on every chunk and a final usage-only chunk with
``choices: []`` only when the request asked for ``stream_options.include_usage``.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

from otel_tokens.fakellm.replies import Reply
from otel_tokens.fakellm.wire import Call, Rendered, json_response, split_text, sse, sse_response, truncated

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
EMBEDDINGS = "/v1/embeddings"
PATHS = (CHAT, RESPONSES, EMBEDDINGS)
# Not model calls: answered with ``{}`` without taking a reply from the queue (OpenAI Codex
# posts its per-turn cost analytics here after each turn).
SIDE_PREFIXES = ("/v1/analytics/",)

_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", None, "You are not allowed to access this resource."),
    404: ("invalid_request_error", "not_found", "The requested resource does not exist."),
    408: ("timeout_error", None, "Request timed out."),
    409: ("conflict_error", None, "Conflict."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def _headers(call: Call) -> dict[str, str]:
    return {"x-request-id": f"req_fake{call.seq:012d}", "openai-version": "2020-10-01"}


def error(status: int, message: str | None, call: Call) -> Rendered:
    kind, code, default = _ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, "")
    )
    text = message or default or f"Error {status}."
    body = {"error": {"message": text, "type": kind, "param": None, "code": code}}
    return json_response(status, body, _headers(call))


def malformed(call: Call) -> Rendered:
    if call.stream:
        events = [
            b'data: {"id":"chatcmpl-broken","choices":[{"delta":{"content":"hi"\n\n',
            b"data: [DONE]\n\n",
        ]
        return sse_response(events, cut=False, headers=_headers(call))
    rendered = json_response(200, {}, _headers(call))
    rendered.body = b'{"id": "broken", "object": "chat.completion", "choices": [{"index": 0,,}'
    return rendered


def render(reply: Reply, call: Call) -> Rendered | None:
    """Render an ``ok``/``usage_null`` reply for the endpoint hit; None if not an OpenAI endpoint."""
    if call.path == CHAT:
        return _chat_stream(reply, call) if call.stream else _maybe_cut(reply, _chat_json(reply, call))
    if call.path == RESPONSES:
        return (
            _responses_stream(reply, call) if call.stream else _maybe_cut(reply, _responses_json(reply, call))
        )
    if call.path == EMBEDDINGS:
        return _maybe_cut(reply, _embeddings_json(reply, call))
    return None


def _maybe_cut(reply: Reply, rendered: Rendered) -> Rendered:
    return truncated(rendered) if reply.cut_after is not None else rendered


def _model(reply: Reply, call: Call) -> str:
    return reply.model or call.model


# --- chat completions ------------------------------------------------------------------


def _chat_usage(reply: Reply) -> dict[str, Any] | None:
    if reply.kind == "usage_null":
        return None
    usage: dict[str, Any] = {
        "prompt_tokens": reply.input_tokens,
        "completion_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }
    if reply.details:
        usage["prompt_tokens_details"] = {
            "cached_tokens": reply.cache_read,
            "cache_write_tokens": reply.cache_write,
            "audio_tokens": 0,
        }
        usage["completion_tokens_details"] = {
            "reasoning_tokens": reply.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    return usage


def _chat_json(reply: Reply, call: Call) -> Rendered:
    body = {
        "id": f"chatcmpl-fake{call.seq:012d}",
        "object": "chat.completion",
        "created": call.created,
        "model": _model(reply, call),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text, "refusal": None, "annotations": []},
                "logprobs": None,
                "finish_reason": reply.finish_reason or "stop",
            }
        ],
        "usage": _chat_usage(reply),
        "service_tier": "default",
        "system_fingerprint": None,
    }
    return json_response(200, body, _headers(call))


def _chat_stream(reply: Reply, call: Call) -> Rendered:
    base: dict[str, Any] = {
        "id": f"chatcmpl-fake{call.seq:012d}",
        "object": "chat.completion.chunk",
        "created": call.created,
        "model": _model(reply, call),
        "service_tier": "default",
        "system_fingerprint": None,
    }

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        data = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if call.include_usage:
            data["usage"] = None
        return sse(data)

    events = [chunk({"role": "assistant", "content": "", "refusal": None}, None)]
    pieces = split_text(reply.text, reply.chunks)
    if reply.cut_after is not None:
        events += [chunk({"content": piece}, None) for piece in pieces[: reply.cut_after]]
        return sse_response(events, cut=True, headers=_headers(call))
    events += [chunk({"content": piece}, None) for piece in pieces]
    events.append(chunk({}, reply.finish_reason or "stop"))
    usage = _chat_usage(reply)
    if call.include_usage and usage is not None:
        events.append(sse({**base, "choices": [], "usage": usage}))
    events.append(b"data: [DONE]\n\n")
    return sse_response(events, cut=False, headers=_headers(call))


# --- Responses API ---------------------------------------------------------------------


def _responses_usage(reply: Reply) -> dict[str, Any] | None:
    if reply.kind == "usage_null":
        return None
    input_details: dict[str, int] = {"cached_tokens": reply.cache_read}
    if reply.details:
        input_details["cache_write_tokens"] = reply.cache_write
    return {
        "input_tokens": reply.input_tokens,
        "input_tokens_details": input_details,
        "output_tokens": reply.output_tokens,
        "output_tokens_details": {"reasoning_tokens": reply.reasoning},
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }


def _message_item(call: Call, text: str | None) -> dict[str, Any]:
    """The assistant message output item; ``text=None`` while it is still in progress."""
    done = text is not None
    return {
        "id": f"msg_fake{call.seq:012d}",
        "type": "message",
        "status": "completed" if done else "in_progress",
        "content": [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}] if done else [],
        "role": "assistant",
    }


def _tool_item(reply: Reply, call: Call, *, done: bool) -> dict[str, Any]:
    return {
        "id": f"fc_fake{call.seq:012d}",
        "type": "function_call",
        "status": "completed" if done else "in_progress",
        "arguments": reply.tool_args if done else "",
        "call_id": f"call_fake{call.seq:012d}",
        "name": reply.tool_name,
    }


def _output_item(reply: Reply, call: Call, *, done: bool) -> dict[str, Any]:
    if reply.tool_name is not None:
        return _tool_item(reply, call, done=done)
    return _message_item(call, reply.text if done else None)


def _final_status(reply: Reply) -> str:
    """Responses has no finish_reason: any other than "stop" makes the response incomplete."""
    return "completed" if reply.finish_reason in (None, "stop", "completed") else "incomplete"


def _incomplete_reason(reply: Reply) -> str:
    return "max_output_tokens" if reply.finish_reason == "length" else str(reply.finish_reason)


def _response_object(reply: Reply, call: Call, *, done: bool) -> dict[str, Any]:
    instructions = call.body.get("instructions")
    status = _final_status(reply) if done else "in_progress"
    return {
        "id": f"resp_fake{call.seq:012d}",
        "object": "response",
        "created_at": call.created,
        "status": status,
        "background": False,
        "completed_at": call.created if status == "completed" else None,
        "error": None,
        "incomplete_details": {"reason": _incomplete_reason(reply)} if status == "incomplete" else None,
        "instructions": instructions if isinstance(instructions, str) else None,
        "max_output_tokens": call.body.get("max_output_tokens"),
        "model": _model(reply, call),
        "output": [_output_item(reply, call, done=True)] if done else [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": _responses_usage(reply) if done else None,
        "user": None,
        "metadata": {},
    }


def _responses_json(reply: Reply, call: Call) -> Rendered:
    return json_response(200, _response_object(reply, call, done=True), _headers(call))


def _responses_stream(reply: Reply, call: Call) -> Rendered:
    seq = iter(range(1_000_000))
    item_id = f"msg_fake{call.seq:012d}"
    part: dict[str, Any] = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}

    def event(kind: str, **data: Any) -> bytes:
        return sse({"type": kind, **data, "sequence_number": next(seq)}, kind)

    in_progress = _response_object(reply, call, done=False)
    if reply.tool_name is not None:
        return _responses_tool_stream(reply, call, event, in_progress)
    events = [
        event("response.created", response=in_progress),
        event("response.in_progress", response=in_progress),
        event("response.output_item.added", item=_message_item(call, None), output_index=0),
        event("response.content_part.added", **where, part=part),
    ]
    pieces = split_text(reply.text, reply.chunks)
    if reply.cut_after is not None:
        pieces = pieces[: reply.cut_after]
    events += [event("response.output_text.delta", **where, delta=piece, logprobs=[]) for piece in pieces]
    if reply.cut_after is not None:
        return sse_response(events, cut=True, headers=_headers(call))
    events += [
        event("response.output_text.done", **where, text=reply.text, logprobs=[]),
        event("response.content_part.done", **where, part={**part, "text": reply.text}),
        event("response.output_item.done", item=_message_item(call, reply.text), output_index=0),
        event(f"response.{_final_status(reply)}", response=_response_object(reply, call, done=True)),
    ]
    return sse_response(events, cut=False, headers=_headers(call))


def _responses_tool_stream(reply: Reply, call: Call, event: Any, in_progress: dict[str, Any]) -> Rendered:
    item_id = f"fc_fake{call.seq:012d}"
    events = [
        event("response.created", response=in_progress),
        event("response.in_progress", response=in_progress),
        event("response.output_item.added", item=_tool_item(reply, call, done=False), output_index=0),
    ]
    where = {"item_id": item_id, "output_index": 0}
    events += [
        event("response.function_call_arguments.delta", **where, delta=piece)
        for piece in split_text(reply.tool_args, reply.chunks)
    ]
    events += [
        event("response.function_call_arguments.done", **where, arguments=reply.tool_args),
        event("response.output_item.done", item=_tool_item(reply, call, done=True), output_index=0),
        event("response.completed", response=_response_object(reply, call, done=True)),
    ]
    return sse_response(events, cut=False, headers=_headers(call))


# --- embeddings ------------------------------------------------------------------------


def _embeddings_json(reply: Reply, call: Call) -> Rendered:
    raw_input = call.body.get("input")
    count = (
        len(raw_input)
        if isinstance(raw_input, list) and raw_input and not isinstance(raw_input[0], int)
        else 1
    )
    dims = call.body.get("dimensions")
    size = dims if isinstance(dims, int) and not isinstance(dims, bool) and 0 < dims <= 4096 else 8
    as_base64 = call.body.get("encoding_format") == "base64"
    data = []
    for index in range(count):
        vector = [(index + 1) * (i + 1) / 1024 for i in range(size)]  # exact in float32
        embedding: object = (
            base64.b64encode(struct.pack(f"<{size}f", *vector)).decode("ascii") if as_base64 else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    usage = (
        None
        if reply.kind == "usage_null"
        else {"prompt_tokens": reply.input_tokens, "total_tokens": reply.input_tokens}
    )
    body = {"object": "list", "data": data, "model": _model(reply, call), "usage": usage}
    return json_response(200, body, _headers(call))
