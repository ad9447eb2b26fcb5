"""AWS Bedrock runtime wire format: ``/model/{modelId}/converse``, ``/converse-stream``,
``/invoke`` and ``/invoke-with-response-stream`` (the last two with Anthropic message bodies).

Streams use AWS event-stream framing (``application/vnd.amazon.eventstream``): each message is
a prelude (total and header lengths, CRC32), string headers (``:event-type``,
``:content-type``, ``:message-type``), a JSON payload and a CRC32 of the whole message.
``invoke-with-response-stream`` wraps each Anthropic stream event as base64 in a ``chunk`` event,
as Bedrock does.

Converse usage from a :class:`Reply`: ``inputTokens`` is the *uncached* input (``input_tokens -
cache_read - cache_write``), with ``cacheReadInputTokens`` / ``cacheWriteInputTokens`` beside it;
``outputTokens`` includes reasoning.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

from otel_tokens.fakellm import wire_anthropic
from otel_tokens.fakellm.replies import Reply
from otel_tokens.fakellm.wire import Call, Rendered, dumps, json_response, split_text, truncated

_OPS = ("/converse", "/converse-stream", "/invoke", "/invoke-with-response-stream")
PATHS = tuple(f"/model/{{modelId}}{op}" for op in _OPS)
EVENT_STREAM = "application/vnd.amazon.eventstream"

_ERRORS: dict[int, str] = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}


def is_bedrock_path(path: str) -> bool:
    return path.startswith("/model/") and path.endswith(_OPS)


def _split(path: str) -> tuple[str, str]:
    rest = path[len("/model/") :]
    model, _, op = rest.rpartition("/")
    return unquote(model), op


def frame(event_type: str, payload: object, message_type: str = "event") -> bytes:
    """One event-stream message with a JSON payload."""
    headers = b""
    for name, value in (
        (":event-type", event_type),
        (":content-type", "application/json"),
        (":message-type", message_type),
    ):
        raw = value.encode()
        headers += bytes([len(name)]) + name.encode() + b"\x07" + struct.pack(">H", len(raw)) + raw
    body = dumps(payload)
    prelude = struct.pack(">II", 12 + len(headers) + len(body) + 4, len(headers))
    prelude += struct.pack(">I", binascii.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + headers + body
    return message + struct.pack(">I", binascii.crc32(message) & 0xFFFFFFFF)


def _headers(call: Call) -> dict[str, str]:
    return {"x-amzn-requestid": f"fake-{call.seq:012d}"}


def error(status: int, message: str | None, call: Call) -> Rendered:
    kind = _ERRORS.get(status, "InternalServerException" if status >= 500 else "ValidationException")
    headers = {
        **_headers(call),
        "x-amzn-errortype": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
    }
    return json_response(status, {"message": message or f"fake {kind}"}, headers)


def malformed(call: Call) -> Rendered:
    _, op = _split(call.path)
    if op.endswith("stream"):
        return Rendered(
            200, {"content-type": EVENT_STREAM}, events=[b"\x00\x00\x00\x20garbage-garbage-garbage!"]
        )
    rendered = json_response(200, {}, _headers(call))
    rendered.body = b'{"output": {"message": [,,]'
    return rendered


def usage(reply: Reply) -> dict[str, int]:
    out = {
        "inputTokens": reply.input_tokens - reply.cache_read - reply.cache_write,
        "outputTokens": reply.output_tokens,
        "totalTokens": reply.input_tokens + reply.output_tokens,
    }
    if reply.details:
        out["cacheReadInputTokens"] = reply.cache_read
        out["cacheWriteInputTokens"] = reply.cache_write
    return out


def _converse(reply: Reply, call: Call) -> Rendered:
    body: dict[str, Any] = {
        "output": {"message": {"role": "assistant", "content": [{"text": reply.text}]}},
        "stopReason": reply.finish_reason or "end_turn",
        "metrics": {"latencyMs": 1},
    }
    if reply.kind != "usage_null":
        body["usage"] = usage(reply)
    rendered = json_response(200, body, _headers(call))
    return truncated(rendered) if reply.cut_after is not None else rendered


def _stream(events: list[bytes], cut: bool, call: Call) -> Rendered:
    return Rendered(200, {"content-type": EVENT_STREAM, **_headers(call)}, events=events, cut=cut)


def _converse_stream(reply: Reply, call: Call) -> Rendered:
    events = [frame("messageStart", {"role": "assistant"})]
    pieces = split_text(reply.text, reply.chunks)
    if reply.cut_after is not None:
        pieces = pieces[: reply.cut_after]
    events += [frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": p}}) for p in pieces]
    if reply.cut_after is not None:
        return _stream(events, True, call)
    events += [
        frame("contentBlockStop", {"contentBlockIndex": 0}),
        frame("messageStop", {"stopReason": reply.finish_reason or "end_turn"}),
    ]
    metadata: dict[str, Any] = {"metrics": {"latencyMs": 1}}
    if reply.kind != "usage_null":
        metadata["usage"] = usage(reply)
    events.append(frame("metadata", metadata))
    return _stream(events, False, call)


def _invoke(reply: Reply, call: Call, model: str, stream: bool) -> Rendered:
    """Anthropic message bodies, as Bedrock returns them for Anthropic models."""
    anthropic_call = replace(
        call, path=wire_anthropic.MESSAGES, json={**call.body, "model": model, "stream": stream}
    )
    rendered = wire_anthropic.render(reply, anthropic_call)
    assert rendered is not None
    rendered.headers.pop("request-id", None)
    rendered.headers.update(_headers(call))
    if not stream:
        return rendered
    events = []
    for sse in rendered.events or []:
        data = next(line[6:] for line in sse.decode().splitlines() if line.startswith("data: "))
        events.append(
            frame("chunk", {"bytes": base64.b64encode(json.dumps(json.loads(data)).encode()).decode()})
        )
    return _stream(events, rendered.cut, call)


def render(reply: Reply, call: Call) -> Rendered | None:
    if not is_bedrock_path(call.path):
        return None
    model, op = _split(call.path)
    if op == "converse":
        return _converse(reply, call)
    if op == "converse-stream":
        return _converse_stream(reply, call)
    return _invoke(reply, call, model, stream=op == "invoke-with-response-stream")
