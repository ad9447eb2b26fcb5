"""Real google-genai SDK -> fake server over HTTP (Gemini API and Vertex AI) -> instrumentation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from google import genai
from google.genai import errors
from google.oauth2.credentials import Credentials

from otel_tokens import names as n
from otel_tokens.fakellm import Reply
from tests.conftest import Telemetry, expected_cost

MODEL = "gemini-2.5-flash"
USAGE = dict(input_tokens=1200, output_tokens=300, cache_read=1024, reasoning=128)
TOKENS = {
    n.GEN_AI_USAGE_INPUT_TOKENS: 1200,
    n.GEN_AI_USAGE_OUTPUT_TOKENS: 300,
    n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 1024,
    n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: None,  # none written: left out of the span
    n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 128,
}


def client(fake: Any, vertex: bool) -> genai.Client:
    options = {"base_url": fake.google_base_url, "retry_options": {"attempts": 1}}
    if vertex:
        return genai.Client(
            vertexai=True,
            project="p",
            location="us-central1",
            credentials=Credentials(token="fake-token"),  # type: ignore[no-untyped-call]
            http_options=options,
        )
    return genai.Client(api_key="fake-key", http_options=options)


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


async def _aread(c: genai.Client, mode: str) -> int:
    if mode == "json":
        await c.aio.models.generate_content(model=MODEL, contents="hello")
        return 1
    seen = 0
    stream = await c.aio.models.generate_content_stream(model=MODEL, contents="hello")
    async for _ in stream:
        seen += 1
        if mode == "early":
            await stream.aclose()  # type: ignore[attr-defined]
            break
    return seen


def _read(c: genai.Client, mode: str) -> int:
    if mode == "json":
        c.models.generate_content(model=MODEL, contents="hello")
        return 1
    seen = 0
    stream = c.models.generate_content_stream(model=MODEL, contents="hello")
    for _ in stream:
        seen += 1
        if mode == "early":
            stream.close()  # type: ignore[attr-defined]
            break
    return seen


@pytest.mark.parametrize("vertex", [False, True], ids=["gemini", "vertex"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("mode", ["json", "end", "early"])
def test_generate_content(telemetry: Telemetry, fake: Any, vertex: bool, is_async: bool, mode: str) -> None:
    fake.enqueue(Reply.ok(**USAGE, model=MODEL, chunks=4))
    c = client(fake, vertex)
    seen = asyncio.run(_aread(c, mode)) if is_async else _read(c, mode)
    assert seen == (1 if mode != "end" else 4)
    (span,) = telemetry.llm_spans()
    attrs = _attrs(span)
    provider = "gcp.vertex_ai" if vertex else "gcp.gemini"
    assert span.name == f"chat {MODEL}"
    assert attrs[n.GEN_AI_PROVIDER_NAME] == provider
    assert attrs[n.GEN_AI_REQUEST_MODEL] == MODEL
    assert attrs[n.GEN_AI_RESPONSE_MODEL] == MODEL
    assert attrs[n.GEN_AI_RESPONSE_ID].startswith("fake")
    assert attrs[n.GEN_AI_REQUEST_STREAM] is (mode != "json")
    assert attrs[n.SERVER_ADDRESS] == "127.0.0.1" and attrs[n.SERVER_PORT] == fake.port
    # closed early: the SDK's generator drops ours, which queues its finish (drained on read)
    assert attrs[n.OUTCOME] == ("cancelled" if mode == "early" else "success")
    assert telemetry.total(n.M_CALLS) == 1
    if mode == "early":
        # the first chunk carries the prompt, the thoughts and the first candidates so far
        assert attrs[n.GEN_AI_USAGE_INPUT_TOKENS] == 1200
        assert attrs[n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 128
        assert attrs[n.GEN_AI_USAGE_OUTPUT_TOKENS] == 128 + (300 - 128) // 5
        assert n.GEN_AI_RESPONSE_FINISH_REASONS not in attrs
        return
    assert {k: attrs.get(k) for k in TOKENS} == TOKENS
    assert attrs[n.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    cost = expected_cost("google", MODEL, 1200, 300, cr=1024)
    assert attrs[n.GEN_AI_USAGE_COST] == cost
    assert telemetry.total(n.M_COST) == cost


@pytest.mark.parametrize("vertex", [False, True], ids=["gemini", "vertex"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_embed_content(telemetry: Telemetry, fake: Any, vertex: bool, is_async: bool) -> None:
    model = "gemini-embedding-001"  # Vertex sends it to :predict, with per-instance statistics
    fake.enqueue(Reply.ok(input_tokens=9, output_tokens=0))
    c = client(fake, vertex)
    if is_async:
        result = asyncio.run(c.aio.models.embed_content(model=model, contents=["ab", "cd"]))
    else:
        result = c.models.embed_content(model=model, contents=["ab", "cd"])
    assert result.embeddings is not None and len(result.embeddings) == 2
    (span,) = telemetry.llm_spans()
    attrs = _attrs(span)
    assert span.name == f"embeddings {model}"
    assert attrs[n.GEN_AI_OPERATION_NAME] == "embeddings"
    assert attrs[n.GEN_AI_USAGE_INPUT_TOKENS] == 9
    assert attrs[n.GEN_AI_USAGE_OUTPUT_TOKENS] == 0
    assert attrs[n.GEN_AI_USAGE_COST] == expected_cost("google", model, 9, 0)


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize(
    ("status", "error", "error_type"),
    [(400, errors.ClientError, "ClientError"), (503, errors.ServerError, "ServerError")],
)
def test_errors_are_the_sdks_own(
    telemetry: Telemetry,
    fake: Any,
    is_async: bool,
    stream: bool,
    status: int,
    error: type[Exception],
    error_type: str,
) -> None:
    fake.enqueue(Reply.error(status, message="nope"))
    c = client(fake, vertex=False)
    with pytest.raises(error) as info:
        if is_async:
            asyncio.run(_aread(c, "end" if stream else "json"))
        else:
            _read(c, "end" if stream else "json")
    assert type(info.value) is error and info.value.code == status
    (span,) = telemetry.llm_spans()
    attrs = _attrs(span)
    assert attrs[n.ERROR_TYPE] == error_type
    assert attrs[n.OUTCOME] == "error"
    assert span.status.status_code.name == "ERROR"
    assert telemetry.total(n.M_CALLS, **{n.OUTCOME: "error"}) == 1


def test_stream_cut_mid_way_is_partial(telemetry: Telemetry, fake: Any) -> None:
    fake.enqueue(Reply.ok(**USAGE, model=MODEL, chunks=4, cut_after=2))
    c = client(fake, vertex=False)
    with pytest.raises(Exception) as info:
        _read(c, "end")
    assert not isinstance(info.value, AssertionError)
    (span,) = telemetry.llm_spans()
    attrs = _attrs(span)
    assert attrs[n.OUTCOME] == "partial"
    assert attrs[n.GEN_AI_USAGE_INPUT_TOKENS] == 1200


def test_a_stream_never_iterated_records_nothing(telemetry: Telemetry, fake: Any) -> None:
    c = client(fake, vertex=False)
    stream = c.models.generate_content_stream(model=MODEL, contents="hello")
    del stream
    assert telemetry.llm_spans() == [] and fake.requests == []


def test_automatic_function_calling_records_each_request(telemetry: Telemetry, fake: Any) -> None:
    """Two requests behind one public call: two spans, each with its own usage."""
    from otel_tokens.fakellm.wire_google import usage_metadata

    def weather(city: str) -> str:
        """The weather in a city."""
        return "sunny"

    call = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"functionCall": {"name": "weather", "args": {"city": "x"}}}],
                },
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": usage_metadata(Reply.ok(50, 10)),
        "modelVersion": MODEL,
    }
    import json

    fake.enqueue(
        Reply.raw(200, {"content-type": "application/json"}, json.dumps(call).encode()),
        Reply.ok(80, 20, model=MODEL),
    )
    c = client(fake, vertex=False)
    result = c.models.generate_content(model=MODEL, contents="weather?", config={"tools": [weather]})
    assert result.text == "hi"
    spans = telemetry.llm_spans()
    assert [_attrs(s)[n.GEN_AI_USAGE_INPUT_TOKENS] for s in spans] == [50, 80]
    assert telemetry.total(n.M_COST) == pytest.approx(
        expected_cost("google", MODEL, 50, 10) + expected_cost("google", MODEL, 80, 20), abs=1e-15
    )


def test_uninstrument_stops_recording(telemetry: Telemetry, fake: Any) -> None:
    import otel_tokens

    otel_tokens.uninstrument()
    c = client(fake, vertex=False)
    c.models.generate_content(model=MODEL, contents="hello")
    list(c.models.generate_content_stream(model=MODEL, contents="hello"))
    assert telemetry.llm_spans() == []


def test_an_unknown_model_gives_tokens_and_no_cost(telemetry: Telemetry, fake: Any) -> None:
    fake.enqueue(Reply.ok(input_tokens=10, output_tokens=5, model="gemini-from-the-future"))
    c = client(fake, vertex=False)  # keep the client: a collected one closes its HTTP client
    c.models.generate_content(model="gemini-from-the-future", contents="hi")
    (span,) = telemetry.llm_spans()
    attrs = _attrs(span)
    assert attrs[n.GEN_AI_USAGE_INPUT_TOKENS] == 10 and attrs[n.COST_STATUS] == "unpriced"
    assert n.GEN_AI_USAGE_COST not in attrs


def test_a_telemetry_failure_leaves_the_call_alone(
    telemetry: Telemetry, fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With internal errors swallowed (as users run), a broken usage reader changes nothing."""
    from otel_tokens.instrumentation.adapters import google_genai as adapter

    def broken(metadata: Any) -> dict[str, int]:
        raise RuntimeError("bug in usage extraction")

    monkeypatch.delenv(n.ENV_RAISE_INTERNAL_ERRORS)
    monkeypatch.setattr(adapter, "usage_counts", broken)
    fake.enqueue(Reply.ok(input_tokens=10, output_tokens=5, model=MODEL))
    c = client(fake, vertex=False)
    result = c.models.generate_content(model=MODEL, contents="hi")
    assert result.text == "hi" and result.usage_metadata is not None
    (span,) = telemetry.llm_spans()
    assert dict(span.attributes or {})[n.COST_STATUS] == "unknown_usage"
