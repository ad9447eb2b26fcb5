"""In-process HTTP for benchmarks: the real `openai` SDK, canned JSON and SSE, no sockets.

openai 3.x sends through `httpx2`; `canned_openai_client()` passes an `httpx2.Client` whose
transport answers every request from bytes built once, so a benchmark measures the SDK and
the instrumentation around it, not the network or a server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx2
import openai

MODEL = "gpt-4o-mini"
RESPONSE_MODEL = "gpt-4o-mini-2024-07-18"
USAGE = {
    "prompt_tokens": 1_200,
    "completion_tokens": 350,
    "total_tokens": 1_550,
    "prompt_tokens_details": {"cached_tokens": 1_024, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
}


def chat_completion_body() -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1_760_000_000,
            "model": RESPONSE_MODEL,
            "system_fingerprint": "fp_bench",
            "service_tier": "default",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "A short answer. " * 8, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": USAGE,
        }
    ).encode()


def chat_stream_events(chunks: int) -> list[bytes]:
    """`chunks` SSE events as the SDK yields them: content deltas, a finish chunk, a
    usage-only chunk (``stream_options.include_usage``); then ``[DONE]`` (not a chunk)."""
    assert chunks >= 3
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_760_000_000}
    head |= {"model": RESPONSE_MODEL, "system_fingerprint": "fp_bench", "service_tier": "default"}

    def event(choices: list[dict[str, Any]], usage: Any = None) -> bytes:
        return b"data: " + json.dumps({**head, "choices": choices, "usage": usage}).encode() + b"\n\n"

    def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}

    out = [event([choice({"role": "assistant", "content": "", "refusal": None})])]
    out += [event([choice({"content": f"word{i} "})]) for i in range(chunks - 3)]
    out.append(event([choice({}, "stop")]))
    out.append(event([], USAGE))
    out.append(b"data: [DONE]\n\n")
    return out


class _Events(httpx2.SyncByteStream):
    def __init__(self, events: list[bytes]) -> None:
        self._events = events

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._events)


class CannedTransport(httpx2.BaseTransport):
    """Answers chat completions from canned bytes: SSE when the request asks to stream."""

    def __init__(self, stream_chunks: int = 50) -> None:
        self.body = chat_completion_body()
        self.events = chat_stream_events(stream_chunks)
        self.json_headers = [(b"content-type", b"application/json"), (b"x-request-id", b"req_bench")]
        self.sse_headers = [(b"content-type", b"text/event-stream"), (b"x-request-id", b"req_bench")]

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        content = request.read()
        if b'"stream":true' in content or b'"stream": true' in content:
            return httpx2.Response(200, headers=self.sse_headers, stream=_Events(self.events))
        return httpx2.Response(200, headers=self.json_headers, content=self.body)


def canned_openai_client(stream_chunks: int = 50) -> openai.OpenAI:
    http = httpx2.Client(transport=CannedTransport(stream_chunks), base_url="https://api.openai.com/v1")
    return openai.OpenAI(api_key="sk-bench-not-a-key", http_client=http, max_retries=0)
