"""Shared pieces of the wire modules: the request being answered and the rendered answer."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from otel_tokens.fakellm.replies import Reply

DEFAULT_MAX_OUTPUT = 16
_TEXT_KEYS = ("messages", "input", "system", "instructions", "prompt", "contents", "requests")


@dataclass(frozen=True)
class Call:
    """The request a reply is rendered for."""

    path: str
    json: Any
    seq: int
    created: int

    @property
    def body(self) -> dict[str, Any]:
        return self.json if isinstance(self.json, dict) else {}

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def include_usage(self) -> bool:
        options = self.body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    @property
    def model(self) -> str:
        model = self.body.get("model")
        return model if isinstance(model, str) and model else "fake-model"


@dataclass
class Rendered:
    """A response ready to send: a JSON/text body, or a list of SSE events sent chunked.

    ``cut`` closes the connection after the events without the terminating chunk, which the
    client sees as an interrupted transfer.
    """

    status: int
    headers: dict[str, str]
    body: bytes = b""
    events: list[bytes] | None = None
    cut: bool = False


def dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sse(data: object, event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return head.encode("utf-8") + b"data: " + dumps(data) + b"\n\n"


def json_response(status: int, obj: object, headers: dict[str, str] | None = None) -> Rendered:
    return Rendered(status, {"content-type": "application/json", **(headers or {})}, body=dumps(obj))


def sse_response(events: list[bytes], cut: bool, headers: dict[str, str] | None = None) -> Rendered:
    base = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
    return Rendered(200, {**base, **(headers or {})}, events=events, cut=cut)


def truncated(rendered: Rendered) -> Rendered:
    """The same JSON response with its body cut in half (a body the server never finished)."""
    rendered.body = rendered.body[: len(rendered.body) // 2]
    return rendered


def split_text(text: str, parts: int) -> list[str]:
    """Exactly ``parts`` consecutive pieces of ``text`` (some empty when text is short)."""
    size = len(text)
    return [text[i * size // parts : (i + 1) * size // parts] for i in range(parts)]


def _chars(value: object) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_chars(v) for v in value.values())
    if isinstance(value, list):
        return sum(_chars(v) for v in value)
    return 0


def default_reply(request_json: object, path: str = "/v1/chat/completions") -> Reply:
    """The reply used when the queue is empty: deterministic in the request.

    input_tokens = max(1, ceil(characters of all strings under messages/input/system/
    instructions/prompt/contents/requests / 4)); output_tokens = min(max_tokens or max_completion_tokens or
    max_output_tokens or 16, 16), 0 for embeddings; text = "ok" repeated output_tokens times.
    """
    body = request_json if isinstance(request_json, dict) else {}
    chars = sum(_chars(body.get(key)) for key in _TEXT_KEYS)
    input_tokens = max(1, math.ceil(chars / 4))
    if path.endswith(("/embeddings", ":batchEmbedContents", ":predict", ":embedContent")):
        return Reply.ok(input_tokens=input_tokens, output_tokens=0, text="")
    limit = DEFAULT_MAX_OUTPUT
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            limit = value
            break
    output_tokens = min(limit, DEFAULT_MAX_OUTPUT)
    return Reply.ok(
        input_tokens=input_tokens, output_tokens=output_tokens, text=" ".join(["ok"] * output_tokens)
    )
