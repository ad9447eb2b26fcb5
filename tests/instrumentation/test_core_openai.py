"""Real openai SDK -> fake server over HTTP -> instrumentation -> in-memory exporters."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from otel_tokens import names as n
from otel_tokens.fakellm import Reply
from tests.conftest import Telemetry, expected_cost

MSGS = [{"role": "user", "content": "hello"}]


def _client(fake: Any, is_async: bool) -> Any:
    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    return cls(base_url=fake.openai_base_url, api_key="sk-test-secret-key", max_retries=2)


def _run(is_async: bool, fn: Any) -> Any:
    return asyncio.run(fn()) if is_async else fn()


def _consume(stream: Any, mode: str, is_async: bool) -> Any:
    async def aread() -> int:
        seen = 0
        if mode == "ctx":
            async with stream as s:
                async for _ in s:
                    seen += 1
                    break
            return seen
        async for _ in stream:
            seen += 1
            if mode == "early":
                await stream.close()
                break
        return seen

    def read() -> int:
        seen = 0
        if mode == "ctx":
            with stream as s:
                for _ in s:
                    seen += 1
                    break
            return seen
        for _ in stream:
            seen += 1
            if mode == "early":
                stream.close()
                break
        return seen

    return aread() if is_async else read()


USAGE = dict(input_tokens=1200, output_tokens=300, cache_read=1024, reasoning=128)
TOKENS = {
    n.GEN_AI_USAGE_INPUT_TOKENS: 1200,
    n.GEN_AI_USAGE_OUTPUT_TOKENS: 300,
    n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 1024,
    n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: None,  # none written: left out of the span
    n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 128,
}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(
    ("mode", "include_usage", "usage_known", "outcome"),
    [
        ("json", None, True, "success"),
        ("end", True, True, "success"),
        ("end", False, False, "success"),  # no include_usage: usage unknown, never injected
        ("early", True, False, "cancelled"),  # closed by the user before the usage chunk
        ("ctx", True, False, "cancelled"),  # context manager left early
    ],
)
def test_chat_completions(
    telemetry: Telemetry,
    fake: Any,
    is_async: bool,
    mode: str,
    include_usage: bool | None,
    usage_known: bool,
    outcome: str,
) -> None:
    fake.enqueue(Reply.ok(**USAGE, model="gpt-4o-2024-08-06", chunks=6, finish_reason="stop"))
    client = _client(fake, is_async)
    kwargs: dict[str, Any] = dict(model="gpt-4o", messages=MSGS)
    if mode != "json":
        kwargs["stream"] = True
        if include_usage is not None:
            kwargs["stream_options"] = {"include_usage": include_usage}

    async def acall() -> Any:
        result = await client.chat.completions.create(**kwargs)
        if mode != "json":
            assert isinstance(result, openai.AsyncStream)
            await _consume(result, mode, True)
        return result

    def call() -> Any:
        result = client.chat.completions.create(**kwargs)
        if mode != "json":
            assert isinstance(result, openai.Stream)
            _consume(result, mode, False)
        return result

    result = _run(is_async, acall if is_async else call)
    if mode == "json":
        assert type(result).__name__ == "ChatCompletion" and result.usage.prompt_tokens == 1200
    sent = fake.requests[-1].json
    if include_usage is False:
        assert sent["stream_options"] == {"include_usage": False}
    if mode != "json" and include_usage is None:
        assert "stream_options" not in sent

    (span,) = telemetry.llm_spans()
    attrs = dict(span.attributes or {})
    assert span.name == "chat gpt-4o"
    assert attrs[n.GEN_AI_OPERATION_NAME] == "chat"
    assert attrs[n.GEN_AI_PROVIDER_NAME] == "openai"
    assert attrs[n.GEN_AI_REQUEST_MODEL] == "gpt-4o"
    assert attrs[n.GEN_AI_RESPONSE_MODEL] == "gpt-4o-2024-08-06"
    assert attrs[n.GEN_AI_REQUEST_STREAM] is (mode != "json")
    assert attrs[n.SERVER_ADDRESS] == "127.0.0.1"
    assert attrs[n.OUTCOME] == outcome
    if usage_known:
        assert {k: attrs.get(k) for k in TOKENS} == TOKENS
        cost = expected_cost("openai", "gpt-4o-2024-08-06", 1200, 300, cr=1024)
        assert attrs[n.GEN_AI_USAGE_COST] == cost
        assert attrs[n.COST_STATUS] == "priced"
        assert telemetry.total(n.M_COST) == cost
        assert telemetry.total(n.M_TOKENS, **{n.TOKEN_TYPE: "cache_read"}) == 1024
        assert telemetry.total(n.M_USAGE_REASONING) == 128
        assert attrs[n.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)
    else:
        assert not any(k in attrs for k in TOKENS)
        assert n.GEN_AI_USAGE_COST not in attrs
        assert attrs[n.COST_STATUS] == "unknown_usage"
        assert telemetry.points(n.M_COST) == []
    assert telemetry.total(n.M_CALLS, **{n.OUTCOME: outcome}) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_responses(telemetry: Telemetry, fake: Any, stream: bool) -> None:
    fake.enqueue(
        Reply.ok(input_tokens=9463, output_tokens=660, cache_read=8320, reasoning=512, model="gpt-5")
    )
    client = _client(fake, False)
    result = client.responses.create(model="gpt-5", input="hi", stream=stream)
    if stream:
        list(result)
    (span,) = telemetry.llm_spans()
    attrs = dict(span.attributes or {})
    assert span.name == "chat gpt-5"
    assert attrs[n.GEN_AI_USAGE_INPUT_TOKENS] == 9463
    assert attrs[n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 8320
    assert attrs[n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] == 512
    assert attrs[n.GEN_AI_USAGE_COST] == expected_cost("openai", "gpt-5", 9463, 660, cr=8320)


def test_embeddings_and_parse_and_raw(telemetry: Telemetry, fake: Any) -> None:
    client = _client(fake, False)
    fake.enqueue(Reply.ok(input_tokens=8, output_tokens=0))
    emb = client.embeddings.create(model="text-embedding-3-small", input="hello")
    assert emb.usage.prompt_tokens == 8
    fake.enqueue(Reply.ok(input_tokens=50, output_tokens=5, text='{"a": 1}'))
    parsed = client.chat.completions.parse(model="gpt-4o-mini", messages=MSGS)
    assert parsed.usage is not None
    fake.enqueue(Reply.ok(input_tokens=70, output_tokens=7))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSGS)
    assert raw.http_response.status_code == 200
    assert raw.parse().usage.prompt_tokens == 70
    spans = telemetry.llm_spans()
    assert [s.name for s in spans] == [
        "embeddings text-embedding-3-small",
        "chat gpt-4o-mini",
        "chat gpt-4o-mini",
    ]
    assert [dict(s.attributes or {})[n.GEN_AI_USAGE_INPUT_TOKENS] for s in spans] == [8, 50, 70]
    assert dict(spans[0].attributes or {})[n.GEN_AI_OPERATION_NAME] == "embeddings"
    assert dict(spans[0].attributes or {})[n.GEN_AI_USAGE_COST] == expected_cost(
        "openai", "text-embedding-3-small", 8, 0
    )


@pytest.mark.parametrize(
    ("reply", "error", "error_type"),
    [
        (Reply.error(400, message="bad"), openai.BadRequestError, "BadRequestError"),
        (Reply.error(404, message="nope"), openai.NotFoundError, "NotFoundError"),
    ],
)
def test_errors_pass_through_unchanged(
    telemetry: Telemetry, fake: Any, reply: Reply, error: type[Exception], error_type: str
) -> None:
    fake.enqueue(reply)
    with pytest.raises(error) as info:
        _client(fake, False).chat.completions.create(model="gpt-4o", messages=MSGS)
    assert type(info.value) is error
    (span,) = telemetry.llm_spans()
    attrs = dict(span.attributes or {})
    assert attrs[n.ERROR_TYPE] == error_type
    assert span.status.status_code.name == "ERROR"
    assert attrs[n.OUTCOME] == "error"
    assert telemetry.total(n.M_CALLS, **{n.OUTCOME: "error"}) == 1


def test_stream_cut_midway_is_partial(telemetry: Telemetry, fake: Any) -> None:
    fake.enqueue(Reply.ok(input_tokens=100, output_tokens=40, chunks=8, cut_after=3))
    client = _client(fake, False)
    stream = client.chat.completions.create(
        model="gpt-4o", messages=MSGS, stream=True, stream_options={"include_usage": True}
    )
    with pytest.raises(Exception):  # noqa: B017 - whatever the SDK raises, it reaches the user
        for _ in stream:
            pass
    (span,) = telemetry.llm_spans()
    attrs = dict(span.attributes or {})
    assert attrs[n.OUTCOME] == "partial"
    assert n.ERROR_TYPE in attrs


def test_unknown_model_counts_tokens_without_cost(telemetry: Telemetry, fake: Any) -> None:
    fake.enqueue(Reply.ok(input_tokens=10, output_tokens=3, model="acme-llm-7"))
    _client(fake, False).chat.completions.create(model="acme-llm-7", messages=MSGS)
    (span,) = telemetry.llm_spans()
    attrs = dict(span.attributes or {})
    assert attrs[n.COST_STATUS] == "unpriced"
    assert n.GEN_AI_USAGE_COST not in attrs
    assert attrs[n.GEN_AI_USAGE_INPUT_TOKENS] == 10
    assert telemetry.total(n.M_CALLS, **{n.COST_STATUS: "unpriced"}) == 1
    assert telemetry.total(n.M_TOKENS, **{n.TOKEN_TYPE: "input"}) == 10


def test_no_content_and_no_key_by_default(telemetry: Telemetry, fake: Any) -> None:
    _client(fake, False).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "SECRET"}]
    )
    (span,) = telemetry.llm_spans()
    dumped = repr(dict(span.attributes or {}))
    assert "SECRET" not in dumped and "sk-test-secret-key" not in dumped
    assert n.GEN_AI_INPUT_MESSAGES not in (span.attributes or {})


def test_raw_response_stream_is_observed(telemetry: Telemetry, fake: Any) -> None:
    fake.enqueue(Reply.ok(input_tokens=90, output_tokens=9, chunks=3))
    client = _client(fake, False)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=MSGS, stream=True, stream_options={"include_usage": True}
    )
    assert raw.http_response.status_code == 200
    stream = raw.parse()
    assert stream is raw.parse()  # the SDK's cached parse: the object we observe is the user's
    chunks = list(stream)
    assert chunks[-1].usage.prompt_tokens == 90
    (span,) = telemetry.llm_spans()
    attrs = dict(span.attributes or {})
    assert (attrs[n.GEN_AI_USAGE_INPUT_TOKENS], attrs[n.GEN_AI_USAGE_OUTPUT_TOKENS]) == (90, 9)


def test_unknown_usage_is_said_once_with_the_fix(
    telemetry: Telemetry, fake: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from otel_tokens.telemetry import recorder

    recorder._unknown_said.clear()
    client = _client(fake, False)
    for _ in range(3):
        list(client.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True))
    said = [r.getMessage() for r in caplog.records if "reported no token usage" in r.getMessage()]
    assert len(said) == 1
    assert "stream_options={'include_usage': True}" in said[0]


def test_content_is_captured_only_when_opted_in(fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import otel_tokens

    monkeypatch.setenv(n.ENV_CAPTURE_CONTENT, "true")
    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    otel_tokens.instrument(tracer_provider=tp)
    try:
        messages = [{"role": "user", "content": "OPTED-IN-PROMPT"}]
        _client(fake, False).chat.completions.create(model="gpt-4o", messages=messages)
    finally:
        otel_tokens.uninstrument()
    (span,) = exporter.get_finished_spans()
    attrs = dict(span.attributes or {})
    assert json.loads(str(attrs[n.GEN_AI_INPUT_MESSAGES])) == messages
    assert "sk-test-secret-key" not in repr(attrs)


def test_streaming_response_body_is_left_to_the_user(telemetry: Telemetry, fake: Any) -> None:
    fake.enqueue(Reply.ok(input_tokens=42, output_tokens=4, text="left alone"))
    client = _client(fake, False)
    with client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MSGS) as response:
        body = b"".join(response.iter_bytes())
    assert b"left alone" in body
    (span,) = telemetry.llm_spans()
    assert dict(span.attributes or {})[n.COST_STATUS] == "unknown_usage"


def test_a_failed_call_is_no_usage_not_unknown_usage(telemetry: Telemetry, fake: Any) -> None:
    """unknown_usage means spend we could not see (and fires the unseen-spend alert); a call
    refused before any output is not that."""
    fake.enqueue(Reply.error(400, message="bad"))
    with pytest.raises(openai.BadRequestError):
        _client(fake, False).chat.completions.create(model="gpt-4o", messages=MSGS)
    (span,) = telemetry.llm_spans()
    assert dict(span.attributes or {})[n.COST_STATUS] == "no_usage"
    assert telemetry.total(n.M_CALLS, **{n.COST_STATUS: "no_usage", n.OUTCOME: "error"}) == 1
    assert telemetry.total(n.M_CALLS, **{n.COST_STATUS: "unknown_usage"}) == 0


def test_exemplars_point_at_the_call_span(telemetry: Telemetry, fake: Any) -> None:
    import otel_tokens

    fake.enqueue(Reply.ok(input_tokens=10, output_tokens=2))
    with otel_tokens.task("exemplars"):
        _client(fake, False).chat.completions.create(model="gpt-4o", messages=MSGS)
    (call,) = telemetry.llm_spans()
    assert call.context is not None
    data = telemetry.reader.get_metrics_data()  # once: a collection hands its exemplars out once
    exemplars: dict[str, set[int]] = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    exemplars.setdefault(m.name, set()).update(e.span_id for e in p.exemplars)
    # the cost links spend to the trace; the conventions' histograms carry no exemplar
    assert exemplars.get(n.M_COST) == {call.context.span_id}
    for metric in (n.M_OPERATION_DURATION, n.M_TOKEN_USAGE):
        assert exemplars.get(metric) == set(), metric
