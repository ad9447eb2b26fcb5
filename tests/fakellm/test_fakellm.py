"""The fake LLM server, driven by the real openai and anthropic SDKs over loopback HTTP.

Assertions are on what the SDKs parsed; expected numbers are written out by hand from the
wire rules (OpenAI: prompt_tokens includes cached; Anthropic: input_tokens is the uncached part).
"""

from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import httpx2
import openai
import pytest

from otel_tokens.fakellm import CassetteError, FakeLLM, Reply, default_reply, load_cassette, reply_from_spec
from tests.conftest import SHARED as SHARED_ROOT
from tests.conftest import needs_shared

SHARED = SHARED_ROOT / "real-responses"
MSGS: list[Any] = [{"role": "user", "content": "hello world!"}]  # 4 + 12 chars -> 4 default input tokens
CLAUDE = "claude-fake-1"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeLLM) -> FakeLLM:
    server.reset()
    return server


@pytest.fixture(scope="module")
def oai(server: FakeLLM) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test") as client:
        yield client


@pytest.fixture(scope="module")
def ant(server: FakeLLM) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="sk-ant-test") as client:
        yield client


def chat(client: openai.OpenAI, **kwargs: Any) -> Any:
    return client.chat.completions.create(model="gpt-4o", messages=MSGS, **kwargs)


def claude(client: anthropic.Anthropic, **kwargs: Any) -> Any:
    return client.messages.create(model=CLAUDE, max_tokens=64, messages=MSGS, **kwargs)


# --- OpenAI chat completions -----------------------------------------------------------

CHAT_USAGE = [
    pytest.param(
        Reply.ok(input_tokens=100, output_tokens=20),
        {
            "prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
            "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        },
        id="plain",
    ),
    pytest.param(
        Reply.ok(input_tokens=1370, output_tokens=155, cache_read=1280, cache_write=64, reasoning=30),
        {
            "prompt_tokens": 1370, "completion_tokens": 155, "total_tokens": 1525,
            "prompt_tokens_details": {"cached_tokens": 1280, "cache_write_tokens": 64, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 30, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        },
        id="cached-reasoning",
    ),
    pytest.param(
        Reply.ok(input_tokens=11, output_tokens=0, details=False),
        {"prompt_tokens": 11, "completion_tokens": 0, "total_tokens": 11},
        id="no-details",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("reply", "usage"), CHAT_USAGE)
def test_chat_json_usage(fake: FakeLLM, oai: openai.OpenAI, reply: Reply, usage: dict[str, Any]) -> None:
    fake.enqueue(reply)
    response = chat(oai)
    assert response.usage.to_dict() == usage
    assert (response.model, response.choices[0].message.content, response.choices[0].finish_reason) == (
        "gpt-4o",
        "hi",
        "stop",
    )


@pytest.mark.parametrize("include_usage", [True, False])
@pytest.mark.parametrize(("reply", "usage"), CHAT_USAGE)
def test_chat_stream(
    fake: FakeLLM, oai: openai.OpenAI, reply: Reply, usage: dict[str, Any], include_usage: bool
) -> None:
    fake.enqueue(reply)
    options = {"stream_options": {"include_usage": True}} if include_usage else {}
    chunks = list(chat(oai, stream=True, **options))
    # role chunk, 5 content chunks, finish chunk, and the usage-only chunk only when asked for
    assert len(chunks) == (8 if include_usage else 7)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "hi"
    assert [c.choices[0].finish_reason for c in chunks[:7]] == [None] * 6 + ["stop"]
    if include_usage:
        assert chunks[-1].choices == []
        assert chunks[-1].usage.to_dict() == usage
        assert [c.usage for c in chunks[:-1]] == [None] * 7
    else:
        assert all(c.usage is None and "usage" not in c.to_dict() for c in chunks)


def test_chat_model_and_finish_reason_overrides(fake: FakeLLM, oai: openai.OpenAI) -> None:
    fake.enqueue(Reply.ok(model="gpt-4o-2024-08-06", finish_reason="length", text="abcdefghij", chunks=3))
    response = chat(oai)
    assert (response.model, response.choices[0].finish_reason) == ("gpt-4o-2024-08-06", "length")
    fake.enqueue(Reply.ok(model="gpt-4o-2024-08-06", finish_reason="length", text="abcdefghij", chunks=3))
    deltas = [c.choices[0].delta.content for c in chat(oai, stream=True)]
    assert deltas == ["", "abc", "def", "ghij", None]


# --- OpenAI Responses and embeddings ---------------------------------------------------

RESPONSES_USAGE = {
    "input_tokens": 9463,
    "input_tokens_details": {"cached_tokens": 8320, "cache_write_tokens": 100},
    "output_tokens": 660,
    "output_tokens_details": {"reasoning_tokens": 512},
    "total_tokens": 10123,
}
RESPONSES_REPLY = Reply.ok(
    input_tokens=9463, output_tokens=660, cache_read=8320, cache_write=100, reasoning=512
)


def test_responses_json(fake: FakeLLM, oai: openai.OpenAI) -> None:
    fake.enqueue(RESPONSES_REPLY)
    response = oai.responses.create(model="gpt-5", input="hello world!")
    assert response.usage is not None
    assert response.usage.to_dict() == RESPONSES_USAGE
    assert (response.model, response.output_text, response.status) == ("gpt-5", "hi", "completed")


def test_responses_stream(fake: FakeLLM, oai: openai.OpenAI) -> None:
    fake.enqueue(RESPONSES_REPLY)
    events = list(oai.responses.create(model="gpt-5", input="hello world!", stream=True))
    assert [e.type for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.content_part.added", *["response.output_text.delta"] * 5, "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed",
    ]  # fmt: skip
    assert [e.sequence_number for e in events] == list(range(13))
    final = events[-1].response
    assert final.usage.to_dict() == RESPONSES_USAGE
    assert (final.output_text, events[0].response.usage) == ("hi", None)


def test_responses_stream_helper(fake: FakeLLM, oai: openai.OpenAI) -> None:
    fake.enqueue(RESPONSES_REPLY)
    with oai.responses.stream(model="gpt-5", input="hello world!") as stream:
        final = stream.get_final_response()
    assert final.usage is not None
    assert (final.usage.to_dict(), final.output_text) == (RESPONSES_USAGE, "hi")


@pytest.mark.parametrize(
    ("finish_reason", "status", "incomplete"),
    [(None, "completed", None), ("length", "incomplete", "max_output_tokens"),
     ("content_filter", "incomplete", "content_filter")],
)  # fmt: skip
def test_responses_finish_reason(
    fake: FakeLLM, oai: openai.OpenAI, finish_reason: str | None, status: str, incomplete: str | None
) -> None:
    fake.enqueue(Reply.ok(finish_reason=finish_reason), Reply.ok(finish_reason=finish_reason))
    response = oai.responses.create(model="gpt-5", input="x")
    last = list(oai.responses.create(model="gpt-5", input="x", stream=True))[-1]
    for final in (response, last.response):
        assert (final.status, final.incomplete_details and final.incomplete_details.reason) == (
            status,
            incomplete,
        )
    assert (last.type, last.response.usage.output_tokens) == (f"response.{status}", 20)


@pytest.mark.parametrize("encoding_format", ["float", "base64", None])
def test_embeddings(fake: FakeLLM, oai: openai.OpenAI, encoding_format: str | None) -> None:
    fake.enqueue(Reply.ok(input_tokens=8, output_tokens=0))
    extra: dict[str, Any] = {"encoding_format": encoding_format} if encoding_format else {}
    response = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"], dimensions=4, **extra)
    assert response.usage.to_dict() == {"prompt_tokens": 8, "total_tokens": 8}
    vectors = [item.embedding for item in response.data]
    if encoding_format == "base64":  # the SDK returns what was asked for: packed little-endian float32
        vectors = [list(struct.unpack("<4f", base64.b64decode(v))) for v in vectors]  # type: ignore[arg-type]
    assert vectors == [[1 / 1024, 2 / 1024, 3 / 1024, 4 / 1024], [2 / 1024, 4 / 1024, 6 / 1024, 8 / 1024]]
    assert fake.requests[0].json["encoding_format"] == (encoding_format or "base64")


# --- Anthropic messages ----------------------------------------------------------------

ANTHROPIC_CASES = [
    pytest.param(
        Reply.ok(input_tokens=20700, output_tokens=344, cache_read=13637, cache_write=7049, reasoning=33),
        {"input_tokens": 14, "cache_creation_input_tokens": 7049, "cache_read_input_tokens": 13637},
        {"output_tokens": 344, "output_tokens_details": {"thinking_tokens": 33}},
        id="cache-read-write-thinking",
    ),
    pytest.param(
        Reply.ok(input_tokens=50, output_tokens=93),
        {"input_tokens": 50, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        {"output_tokens": 93},
        id="plain",
    ),
    pytest.param(
        Reply.ok(input_tokens=21, output_tokens=5, details=False),
        {"input_tokens": 21},
        {"output_tokens": 5},
        id="no-details",
    ),
]


def _full_usage(reply: Reply, inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    usage = {**inputs, **outputs}
    if reply.details:
        usage["cache_creation"] = {
            "ephemeral_5m_input_tokens": reply.cache_write,
            "ephemeral_1h_input_tokens": 0,
        }
    return {**usage, "service_tier": "standard"}


@pytest.mark.parametrize(("reply", "inputs", "outputs"), ANTHROPIC_CASES)
def test_anthropic_json(
    fake: FakeLLM, ant: anthropic.Anthropic, reply: Reply, inputs: dict[str, Any], outputs: dict[str, Any]
) -> None:
    fake.enqueue(reply)
    message = claude(ant)
    assert message.usage.to_dict() == _full_usage(reply, inputs, outputs)
    assert (message.model, message.content[0].text, message.stop_reason) == (CLAUDE, "hi", "end_turn")


@pytest.mark.parametrize(("reply", "inputs", "outputs"), ANTHROPIC_CASES)
def test_anthropic_stream(
    fake: FakeLLM, ant: anthropic.Anthropic, reply: Reply, inputs: dict[str, Any], outputs: dict[str, Any]
) -> None:
    fake.enqueue(reply)
    events = list(claude(ant, stream=True))
    assert [e.type for e in events] == [
        "message_start", "content_block_start", *["content_block_delta"] * 5,
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    start = events[0].message.usage.to_dict()
    assert start == _full_usage(reply, inputs, {"output_tokens": 1})
    assert events[-2].usage.to_dict() == {**inputs, **outputs}
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == "hi"


@pytest.mark.parametrize(("reply", "inputs", "outputs"), ANTHROPIC_CASES)
def test_anthropic_stream_helper(
    fake: FakeLLM, ant: anthropic.Anthropic, reply: Reply, inputs: dict[str, Any], outputs: dict[str, Any]
) -> None:
    fake.enqueue(reply)
    with ant.messages.stream(model=CLAUDE, max_tokens=64, messages=MSGS) as stream:
        final = stream.get_final_message()
    assert final.usage.to_dict() == _full_usage(reply, inputs, outputs)
    assert final.content[0].text == "hi"


async def test_async_clients(fake: FakeLLM) -> None:
    fake.enqueue(
        Reply.ok(input_tokens=30, output_tokens=4), Reply.ok(input_tokens=40, output_tokens=6, cache_read=8)
    )
    async with openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="sk-test") as oai:
        chunks = [c async for c in await chat(oai, stream=True, stream_options={"include_usage": True})]
    async with anthropic.AsyncAnthropic(base_url=fake.anthropic_base_url, api_key="sk-ant-test") as ant:
        message = await claude(ant)
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (30, 4)
    assert (
        message.usage.input_tokens,
        message.usage.cache_read_input_tokens,
        message.usage.output_tokens,
    ) == (
        32,
        8,
        6,
    )


# --- errors and retries ----------------------------------------------------------------


def _call(client: str, oai: openai.OpenAI, ant: anthropic.Anthropic) -> Any:
    return chat(oai) if client == "openai" else claude(ant)


@pytest.mark.parametrize("client", ["openai", "anthropic"])
@pytest.mark.parametrize("status", [429, 500, 529])
def test_retryable_error_then_success(
    fake: FakeLLM, oai: openai.OpenAI, ant: anthropic.Anthropic, client: str, status: int
) -> None:
    fake.enqueue(Reply.error(status), Reply.error(status), Reply.ok(input_tokens=77, output_tokens=7))
    started = time.perf_counter()
    result = _call(client, oai, ant)
    elapsed = time.perf_counter() - started
    assert (result.usage.completion_tokens if client == "openai" else result.usage.output_tokens) == 7
    assert [r.headers["x-stainless-retry-count"] for r in fake.requests] == ["0", "1", "2"]
    assert elapsed < 1.0, "retry-after-ms: 1 beats the SDK back-off (>= 1.125 s for two retries)"


@pytest.mark.parametrize(
    ("client", "error"),
    [
        ("openai", openai.RateLimitError),
        ("anthropic", anthropic.RateLimitError),
    ],
)
def test_retries_exhausted(
    fake: FakeLLM, oai: openai.OpenAI, ant: anthropic.Anthropic, client: str, error: type[Exception]
) -> None:
    fake.enqueue(*[Reply.error(429, retry_after=0.01)] * 3)
    with pytest.raises(error) as caught:
        _call(client, oai, ant)
    assert len(fake.requests) == 3  # max_retries=2
    headers = caught.value.response.headers  # type: ignore[attr-defined]
    assert (headers["retry-after-ms"], headers["retry-after"]) == ("10", "1")


@pytest.mark.parametrize(
    ("client", "status", "error", "body"),
    [
        ("openai", 400, openai.BadRequestError,
         {"message": "bad", "type": "invalid_request_error", "param": None, "code": None}),
        ("openai", 404, openai.NotFoundError,
         {"message": "bad", "type": "invalid_request_error", "param": None, "code": "not_found"}),
        ("anthropic", 400, anthropic.BadRequestError,
         {"type": "error", "error": {"type": "invalid_request_error", "message": "bad"}}),
        ("anthropic", 401, anthropic.AuthenticationError,
         {"type": "error", "error": {"type": "authentication_error", "message": "bad"}}),
    ],
)  # fmt: skip
def test_client_errors_are_not_retried(
    fake: FakeLLM,
    oai: openai.OpenAI,
    ant: anthropic.Anthropic,
    client: str,
    status: int,
    error: type[Exception],
    body: dict[str, Any],
) -> None:
    fake.enqueue(Reply.error(status, message="bad", retry_after=5.0))
    with pytest.raises(error) as caught:
        _call(client, oai, ant)
    assert len(fake.requests) == 1
    exc: Any = caught.value
    headers = exc.response.headers
    assert exc.status_code == status
    if client == "anthropic":
        assert exc.body.pop("request_id") == headers["request-id"]
    assert exc.body == body
    assert "retry-after" not in headers and "retry-after-ms" not in headers


@pytest.mark.parametrize("should_retry", [False, True])
def test_x_should_retry(fake: FakeLLM, oai: openai.OpenAI, should_retry: bool) -> None:
    fake.enqueue(Reply.error(429, should_retry=should_retry), Reply.error(400))
    with pytest.raises(openai.APIStatusError) as caught:
        chat(oai)
    assert (len(fake.requests), caught.value.status_code) == ((2, 400) if should_retry else (1, 429))


# --- usage null, cut streams, malformed ------------------------------------------------


def test_usage_null(fake: FakeLLM, oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    fake.enqueue(*[Reply.usage_null()] * 7)
    assert chat(oai).usage is None
    chunks = list(chat(oai, stream=True, stream_options={"include_usage": True}))
    assert (len(chunks), [c.usage for c in chunks]) == (7, [None] * 7)  # no usage-only chunk
    assert oai.responses.create(model="gpt-5", input="x").usage is None
    assert oai.embeddings.create(model="e", input="x", encoding_format="float").usage is None
    assert "usage" not in claude(ant).to_dict()
    events = list(claude(ant, stream=True))
    assert "usage" not in events[0].message.to_dict() and "usage" not in events[-2].to_dict()
    with (
        ant.messages.stream(model=CLAUDE, max_tokens=64, messages=MSGS) as stream,
        pytest.raises(AttributeError, match="output_tokens"),
    ):
        stream.get_final_message()  # the SDK's accumulator needs message_delta.usage


def test_cut_streams(fake: FakeLLM, oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    text = "0123456789"
    fake.enqueue(*[Reply.ok(text=text, chunks=5, cut_after=3)] * 3)
    seen: list[str | None] = []
    with pytest.raises(openai.APIConnectionError):
        seen.extend(
            c.choices[0].delta.content for c in chat(oai, stream=True, stream_options={"include_usage": True})
        )
    assert seen == ["", "01", "23", "45"]
    deltas: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        for event in oai.responses.create(model="gpt-5", input="x", stream=True):
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
    assert deltas == ["01", "23", "45"]
    types: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):  # anthropic 2.12 lets the transport error through
        types.extend(e.type for e in claude(ant, stream=True))
    assert types == ["message_start", "content_block_start", *["content_block_delta"] * 3]
    assert len(fake.requests) == 3  # streams are never retried mid-body


@pytest.mark.parametrize(
    ("reply", "stream"),
    [(Reply.ok(cut_after=0), False), (Reply.malformed(), False), (Reply.malformed(), True)],
    ids=["cut-json", "malformed-json", "malformed-sse"],
)
def test_broken_bodies(
    fake: FakeLLM, oai: openai.OpenAI, ant: anthropic.Anthropic, reply: Reply, stream: bool
) -> None:
    fake.enqueue(reply, reply)
    with pytest.raises(json.JSONDecodeError):
        list(chat(oai, stream=True)) if stream else chat(oai)
    with pytest.raises(json.JSONDecodeError):
        list(claude(ant, stream=True)) if stream else claude(ant)
    assert len(fake.requests) == 2


# --- default replies, control API, header override -------------------------------------


def test_default_reply_is_derived_from_the_request(
    fake: FakeLLM, oai: openai.OpenAI, ant: anthropic.Anthropic
) -> None:
    usage = chat(oai, max_tokens=5).usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (4, 5)  # ceil((4 + 12) / 4); max_tokens 5 < 16
    message = claude(ant, system="x" * 40)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (14, 16)  # ceil(56 / 4); min(64, 16)
    assert message.content[0].text == " ".join(["ok"] * 16)
    assert [r.reply for r in fake.requests] == [default_reply(r.json, r.path) for r in fake.requests]


def test_control_api(fake: FakeLLM, oai: openai.OpenAI) -> None:
    specs = [
        {"kind": "ok", "input_tokens": 50, "output_tokens": 5, "cache_read": 10},
        {"kind": "error", "status": 400},
    ]
    posted = httpx.post(fake.base_url + "/_fake/enqueue", json=specs)
    assert (posted.status_code, posted.json()) == (200, {"queued": 2, "pending": 2})
    assert chat(oai).usage.prompt_tokens_details.cached_tokens == 10
    with pytest.raises(openai.BadRequestError):
        chat(oai)
    recorded = httpx.get(fake.base_url + "/_fake/requests").json()
    assert [(r["method"], r["path"], r["json"]["messages"], r["reply"]["kind"]) for r in recorded] == [
        ("POST", "/v1/chat/completions", MSGS, "ok"),
        ("POST", "/v1/chat/completions", MSGS, "error"),
    ]
    assert recorded[0]["headers"]["authorization"] == "Bearer sk-test"
    assert httpx.post(fake.base_url + "/_fake/reset").json() == {"ok": True}
    assert (fake.requests, httpx.get(fake.base_url + "/_fake/health").json()) == (
        [],
        {"ok": True, "pending": 0},
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "nope"}, "unknown kind 'nope'"),
        ({"kind": "ok", "input_tokens": 1, "cache_read": 2}, "exceed input_tokens"),
        ({"kind": "ok", "colour": 1}, "unknown field(s) colour"),
        ({"kind": "error"}, "needs 'status'"),
        ({"kind": "raw", "status": 200, "body": "x", "body_b64": "eA=="}, "not both"),
        ([1], "must be a JSON object"),
    ],
)
def test_control_api_rejects_bad_specs(fake: FakeLLM, spec: Any, message: str) -> None:
    posted = httpx.post(fake.base_url + "/_fake/enqueue", json=spec if isinstance(spec, list) else [spec])
    assert posted.status_code == 400
    assert message in posted.json()["error"]["message"]
    assert fake.pending == 0


def test_header_override_beats_queue(fake: FakeLLM, oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    fake.enqueue(Reply.ok(input_tokens=1, output_tokens=1))
    spec = json.dumps({"kind": "ok", "input_tokens": 900, "output_tokens": 9, "cache_write": 100})
    usage = chat(oai, extra_headers={"x-fake-reply": spec}).usage
    assert (usage.prompt_tokens, usage.prompt_tokens_details.cache_write_tokens) == (900, 100)
    message = claude(ant, extra_headers={"x-fake-reply": spec})
    assert (message.usage.input_tokens, message.usage.cache_creation_input_tokens) == (800, 100)
    assert fake.pending == 1
    with pytest.raises(openai.BadRequestError, match="bad x-fake-reply header"):
        chat(oai, extra_headers={"x-fake-reply": "{not json"})
    assert fake.pending == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply.ok(input_tokens=5, output_tokens=0, text="", chunks=1, cut_after=0, details=True, latency=0.5),
        Reply.error(503, message="busy", retry_after=None, should_retry=False),
        Reply.usage_null(text="x", model="m", chunks=2),
        Reply.malformed(),
        Reply.raw(201, {"content-type": "text/plain"}, b"\x00\xffbytes", chunked=True),
    ],
    ids=lambda r: r.kind,
)
def test_reply_spec_round_trip(reply: Reply) -> None:
    assert reply_from_spec(json.loads(json.dumps(reply.to_spec()))) == reply


# --- raw replay of real recordings -----------------------------------------------------

EXPECTED = json.loads((SHARED / "expected_usage.json").read_text()) if SHARED.is_dir() else {}
CASSETTES = sorted(name for name in EXPECTED if name.startswith(("openai/", "anthropic/")))


def _sdk_usage(replay: Reply, oai: openai.OpenAI, ant: anthropic.Anthropic) -> dict[str, Any] | None:
    """Call the SDK method matching the recorded request; return the usage the SDK parsed."""
    assert replay.recorded is not None
    uri, body = replay.recorded.uri, replay.recorded.json or {}
    stream = body.get("stream") is True
    try:
        if "/chat/completions" in uri:
            options = {"stream_options": body["stream_options"]} if "stream_options" in body else {}
            if stream:
                last = list(chat(oai, stream=True, **options))[-1]
                return {"last_chunk.usage": last.usage.to_dict(), "last_chunk.choices_len": len(last.choices)}
            return {"usage": chat(oai).usage.to_dict()}
        if uri.endswith("/v1/responses"):
            if stream:
                done = [
                    e
                    for e in oai.responses.create(model="m", input="x", stream=True)
                    if e.type == "response.completed"
                ]
                return {"response.completed.usage": done[0].response.usage.to_dict()}
            return {"usage": oai.responses.create(model="m", input="x").usage.to_dict()}
        if uri.endswith("/v1/embeddings"):
            return {
                "usage": oai.embeddings.create(model="m", input="x", encoding_format="float").usage.to_dict()
            }
        if "/v1/messages" in uri:
            if stream:
                events = list(claude(ant, stream=True))
                start = next(e for e in events if e.type == "message_start")
                delta = next(e for e in events if e.type == "message_delta")
                return {
                    "message_start.usage": start.message.usage.to_dict(),
                    "message_delta.usage": delta.usage.to_dict(),
                }
            return {"usage": claude(ant).usage.to_dict()}
    except (openai.APIStatusError, anthropic.APIStatusError) as exc:
        error = exc.body if isinstance(exc, openai.APIStatusError) else exc.body["error"]  # type: ignore[index]
        return {"error": error}
    path = "/" + uri.split("/", 3)[3]  # not an LLM call (file upload/delete): replayed as is
    response = httpx.request(replay.recorded.method, str(oai.base_url.join(path)))
    assert response.content == replay.body
    return None


@needs_shared
@pytest.mark.parametrize("name", CASSETTES)
def test_replay_real_recordings_through_the_sdks(
    fake: FakeLLM, oai: openai.OpenAI, ant: anthropic.Anthropic, name: str
) -> None:
    replays = load_cassette(SHARED / name)
    fake.enqueue(*replays)
    got = [_sdk_usage(replay, oai, ant) for replay in replays]
    assert got == [row["usage"] for row in EXPECTED[name]["interactions"]]
    assert fake.pending == 0


@needs_shared
@pytest.mark.parametrize(
    ("name", "content_type", "chunked", "starts"),
    [
        ("openai/chat_prompt_caching_gzip_body.yaml", "application/json", False, b"{"),  # gzip !!binary
        ("openai/chat_prompt_cache_e2e.yaml", "application/json", False, b'{"choices"'),  # parsed_body
        (
            "anthropic/messages_stream_thinking_tokens.yaml",
            "text/event-stream; charset=utf-8",
            True,
            b"event:",
        ),
        ("openai/chat_cached_tokens.yaml", "application/json", False, b"{"),  # recorded without headers
    ],
)
def test_load_cassette_formats(name: str, content_type: str, chunked: bool, starts: bytes) -> None:
    replay = load_cassette(SHARED / name)[0]
    assert (replay.kind, replay.status, replay.headers["content-type"], replay.chunked) == (
        "raw",
        200,
        content_type,
        chunked,
    )
    assert replay.body.startswith(starts)
    assert not {"content-encoding", "content-length", "transfer-encoding"} & set(replay.headers)
    assert replay.recorded is not None and replay.recorded.method == "POST"
    assert replay.recorded.json["model"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("just: text\n", "no 'interactions' list"),
        ("interactions:\n- request: {}\n", "interaction 0: KeyError"),
    ],
)
def test_load_cassette_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CassetteError, match=f"bad.yaml: {message}"):
        load_cassette(path)


# --- server behaviour: latency, concurrency, disconnects, CLI --------------------------


def test_latency_and_chunk_delay() -> None:
    with (
        FakeLLM(latency=0.2, chunk_delay=0.05) as slow,
        openai.OpenAI(base_url=slow.openai_base_url, api_key="sk-test") as client,
    ):
        started = time.perf_counter()
        chat(client)
        assert 0.2 <= time.perf_counter() - started < 2.0
        slow.enqueue(Reply.ok(chunks=4, latency=0.0))
        started = time.perf_counter()
        list(chat(client, stream=True))
        assert 0.3 <= time.perf_counter() - started < 2.0  # 7 events, 6 gaps of 0.05 s


def test_concurrent_clients_and_disconnects(fake: FakeLLM, capfd: pytest.CaptureFixture[str]) -> None:
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            with openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test") as client:
                for _ in range(5):
                    assert chat(client).usage.prompt_tokens == 4
                    stream = chat(client, stream=True)
                    next(iter(stream))
                    stream.close()  # client goes away mid-stream
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(fake.requests) == 16 * 10
    time.sleep(0.1)
    assert capfd.readouterr().err == ""


def test_stop_closes_kept_alive_connections() -> None:
    fake = FakeLLM().start()
    name = f"fakellm-{fake.port}"
    with openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test") as client:
        chat(client)  # leaves a kept-alive connection with a handler thread waiting on it
        assert [t.name for t in threading.enumerate() if t.name.startswith(name)] == [name, name + "-conn"]
        started = time.perf_counter()
        fake.stop()
        assert time.perf_counter() - started < 1.5
        assert [t.name for t in threading.enumerate() if t.name.startswith(name)] == []
        with pytest.raises(openai.APIConnectionError):
            client.with_options(max_retries=0).chat.completions.create(model="m", messages=MSGS)


def test_module_cli_serves_and_prints_its_url() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "otel_tokens.fakellm", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("FAKE_LLM_URL=http://127.0.0.1:")
        url = line.split("=", 1)[1]
        httpx.post(url + "/_fake/enqueue", json=[{"kind": "ok", "input_tokens": 12, "output_tokens": 3}])
        with anthropic.Anthropic(base_url=url, api_key="sk-ant-test") as client:
            assert claude(client).usage.input_tokens == 12
        assert [r["path"] for r in httpx.get(url + "/_fake/requests").json()] == ["/v1/messages"]
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert (proc.returncode, err) == (0, "")
