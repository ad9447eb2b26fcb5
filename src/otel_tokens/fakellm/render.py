"""Turn a :class:`Reply` into a :class:`Rendered` response for the endpoint a request hit."""

from __future__ import annotations

import math
import re
from typing import Protocol

from otel_tokens.fakellm import wire_anthropic, wire_bedrock, wire_google, wire_openai
from otel_tokens.fakellm.replies import Reply, is_retryable
from otel_tokens.fakellm.wire import Call, Rendered

_SSE_EVENT_END = re.compile(rb"(?<=\n\n)")


class _Wire(Protocol):
    """What a wire module provides (wire_openai, wire_anthropic, wire_google, wire_bedrock)."""

    PATHS: tuple[str, ...]

    def render(self, reply: Reply, call: Call) -> Rendered | None: ...
    def error(self, status: int, message: str | None, call: Call) -> Rendered: ...
    def malformed(self, call: Call) -> Rendered: ...


def provider(path: str) -> _Wire:
    if wire_google.is_google_path(path):
        return wire_google
    if wire_bedrock.is_bedrock_path(path):
        return wire_bedrock
    return wire_anthropic if wire_anthropic.is_anthropic_path(path) else wire_openai


def render(reply: Reply, call: Call) -> Rendered:
    wire = provider(call.path)
    if reply.kind == "raw":
        if reply.chunked:
            events = [part for part in _SSE_EVENT_END.split(reply.body) if part]
            return Rendered(reply.status, dict(reply.headers), events=events)
        return Rendered(reply.status, dict(reply.headers), body=reply.body)
    if reply.kind == "malformed":
        return wire.malformed(call)
    if reply.kind == "error":
        rendered = wire.error(reply.status, reply.message, call)
        if reply.retry_after is not None and is_retryable(reply.status):
            milliseconds = max(reply.retry_after * 1000.0, 1.0)
            rendered.headers["retry-after-ms"] = f"{milliseconds:g}"
            rendered.headers["retry-after"] = str(math.ceil(reply.retry_after))
        if reply.should_retry is not None:
            rendered.headers["x-should-retry"] = "true" if reply.should_retry else "false"
        return rendered
    ok = wire.render(reply, call)
    if ok is None:
        known = ", ".join(wire_openai.PATHS + wire_anthropic.PATHS + wire_google.PATHS + wire_bedrock.PATHS)
        return wire.error(404, f"fakellm: no endpoint {call.path}; ok replies render on {known}", call)
    return ok
