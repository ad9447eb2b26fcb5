"""Real boto3 bedrock-runtime (and anthropic's Bedrock / Vertex clients) -> fake server over HTTP."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from otel_tokens import names as n
from otel_tokens.fakellm import Reply
from tests.conftest import Telemetry, expected_cost

MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"
NOVA = "amazon.nova-lite-v1:0"
MSGS = [{"role": "user", "content": [{"text": "hello"}]}]
USAGE = dict(input_tokens=1200, output_tokens=300, cache_read=1000, cache_write=100)
TOKENS = {
    n.GEN_AI_USAGE_INPUT_TOKENS: 1200,
    n.GEN_AI_USAGE_OUTPUT_TOKENS: 300,
    n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 1000,
    n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: 100,
}


def bedrock(fake: Any) -> Any:
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=fake.base_url,
        aws_access_key_id="AKIDFAKE",
        aws_secret_access_key="fake-secret",
        config=Config(retries={"total_max_attempts": 1}),
    )


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def _check(telemetry: Telemetry, fake: Any, model: str, *, stream: bool, tokens: dict[str, int]) -> None:
    (span,) = telemetry.llm_spans()
    attrs = _attrs(span)
    assert span.name == f"chat {model}"
    assert attrs[n.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    assert attrs[n.GEN_AI_REQUEST_MODEL] == model
    assert attrs[n.GEN_AI_REQUEST_STREAM] is stream
    assert attrs[n.SERVER_ADDRESS] == "127.0.0.1" and attrs[n.SERVER_PORT] == fake.port
    assert {k: attrs.get(k, 0) for k in tokens} == tokens
    cost = expected_cost(
        "aws",
        model,
        tokens[n.GEN_AI_USAGE_INPUT_TOKENS],
        tokens[n.GEN_AI_USAGE_OUTPUT_TOKENS],
        cr=tokens.get(n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, 0),
        cw=tokens.get(n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, 0),
    )
    assert attrs[n.GEN_AI_USAGE_COST] == cost
    assert telemetry.total(n.M_COST) == cost
    assert telemetry.total(n.M_CALLS) == 1


@pytest.mark.parametrize("model", [MODEL, NOVA])
def test_converse(telemetry: Telemetry, fake: Any, model: str) -> None:
    fake.enqueue(Reply.ok(**USAGE, finish_reason="end_turn"))
    result = bedrock(fake).converse(modelId=model, messages=MSGS)
    assert result["usage"]["inputTokens"] == 100
    _check(telemetry, fake, model, stream=False, tokens=TOKENS)
    (span,) = telemetry.llm_spans()
    assert _attrs(span)[n.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
    assert _attrs(span)[n.GEN_AI_RESPONSE_ID] == result["ResponseMetadata"]["RequestId"]


@pytest.mark.parametrize("mode", ["end", "early", "break"])
def test_converse_stream(telemetry: Telemetry, fake: Any, mode: str) -> None:
    fake.enqueue(Reply.ok(**USAGE, chunks=3))
    stream = bedrock(fake).converse_stream(modelId=MODEL, messages=MSGS)["stream"]
    events = []
    for event in stream:
        events.append(event)
        if mode != "end":
            break
    if mode == "early":
        stream.close()
    if mode == "end":
        assert "metadata" in events[-1]
        _check(telemetry, fake, MODEL, stream=True, tokens=TOKENS)
        assert _attrs(telemetry.llm_spans()[0])[n.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)
        return
    del stream, events  # a loop left with break finishes the call when the stream is dropped
    (span,) = telemetry.llm_spans()
    attrs = _attrs(span)
    assert attrs[n.COST_STATUS] == "unknown_usage" and n.GEN_AI_USAGE_INPUT_TOKENS not in attrs
    assert attrs[n.OUTCOME] == "cancelled"  # the user stopped before the end


def test_converse_stream_cut_is_partial(telemetry: Telemetry, fake: Any) -> None:
    fake.enqueue(Reply.ok(**USAGE, chunks=3, cut_after=1))
    stream = bedrock(fake).converse_stream(modelId=MODEL, messages=MSGS)["stream"]
    with pytest.raises(Exception) as info:
        list(stream)
    assert not isinstance(info.value, AssertionError)
    (span,) = telemetry.llm_spans()
    assert _attrs(span)[n.OUTCOME] == "partial"


def test_invoke_model_anthropic_body_stays_readable(telemetry: Telemetry, fake: Any) -> None:
    fake.enqueue(Reply.ok(**USAGE, reasoning=20))
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
    }
    result = bedrock(fake).invoke_model(modelId=MODEL, body=json.dumps(body))
    message = json.loads(result["body"].read())
    assert message["usage"]["input_tokens"] == 100 and message["content"][0]["text"] == "hi"
    _check(
        telemetry, fake, MODEL, stream=False, tokens={**TOKENS, n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 20}
    )
    assert _attrs(telemetry.llm_spans()[0])[n.GEN_AI_RESPONSE_ID] == message["id"]


def test_other_operations_and_services_are_not_llm_calls(telemetry: Telemetry, fake: Any) -> None:
    client = bedrock(fake)
    result = client.invoke_model(modelId="cohere.embed-english-v3", body=json.dumps({"texts": ["a"]}))
    result["body"].read()
    with pytest.raises(ClientError):
        client.list_async_invokes()
    assert telemetry.llm_spans() == []


@pytest.mark.parametrize(("status", "code"), [(400, "ValidationException"), (429, "ThrottlingException")])
@pytest.mark.parametrize("op", ["converse", "converse_stream"])
def test_errors_are_botocores_own(telemetry: Telemetry, fake: Any, status: int, code: str, op: str) -> None:
    fake.enqueue(Reply.error(status, message="nope"))
    client = bedrock(fake)
    with pytest.raises(ClientError) as info:
        getattr(client, op)(modelId=MODEL, messages=MSGS)
    assert info.value.response["Error"]["Code"] == code
    assert type(info.value).__name__ == code
    (span,) = telemetry.llm_spans()
    attrs = _attrs(span)
    assert attrs[n.ERROR_TYPE] == code and attrs[n.OUTCOME] == "error"


# --- anthropic's own Bedrock and Vertex clients --------------------------------------------


def _anthropic(fake: Any, kind: str, is_async: bool) -> Any:
    if kind == "bedrock":
        cls: Any = anthropic.AsyncAnthropicBedrock if is_async else anthropic.AnthropicBedrock
        return cls(
            aws_region="us-east-1",
            base_url=fake.base_url,
            aws_access_key="AKIDFAKE",
            aws_secret_key="s",
            max_retries=0,
        )
    cls = anthropic.AsyncAnthropicVertex if is_async else anthropic.AnthropicVertex
    return cls(
        region="us-east5", project_id="p", access_token="fake-token", base_url=fake.base_url, max_retries=0
    )


@pytest.mark.parametrize("kind", ["bedrock", "vertex"])
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_anthropic_bedrock_and_vertex_clients(
    telemetry: Telemetry, fake: Any, kind: str, is_async: bool, stream: bool
) -> None:
    model = "anthropic.claude-sonnet-4-5-20250929-v1:0" if kind == "bedrock" else "claude-sonnet-4-5@20250929"
    fake.enqueue(Reply.ok(**USAGE))
    client = _anthropic(fake, kind, is_async)
    kwargs: dict[str, Any] = dict(
        model=model, max_tokens=64, messages=[{"role": "user", "content": "hi"}], stream=stream
    )

    async def acall() -> None:
        result = await client.messages.create(**kwargs)
        if stream:
            async for _ in result:
                pass

    def call() -> None:
        result = client.messages.create(**kwargs)
        if stream:
            for _ in result:
                pass

    asyncio.run(acall()) if is_async else call()
    (span,) = telemetry.llm_spans()
    attrs = _attrs(span)
    assert attrs[n.GEN_AI_PROVIDER_NAME] == ("aws.bedrock" if kind == "bedrock" else "gcp.vertex_ai")
    assert {k: attrs.get(k, 0) for k in TOKENS} == TOKENS
    cost = expected_cost("aws" if kind == "bedrock" else "google", model, 1200, 300, cr=1000, cw=100)
    assert attrs[n.GEN_AI_USAGE_COST] == cost
    if kind == "bedrock":  # Bedrock's regional endpoints bill 10 % above Anthropic's own API
        assert cost != expected_cost("anthropic", "claude-sonnet-4-5", 1200, 300, cr=1000, cw=100)


def test_uninstrument_stops_recording(telemetry: Telemetry, fake: Any) -> None:
    import otel_tokens

    otel_tokens.uninstrument()
    bedrock(fake).converse(modelId=MODEL, messages=MSGS)
    assert telemetry.llm_spans() == []


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param(
            {
                "inputTokens": 10,
                "outputTokens": 5,
                "cacheReadInputTokens": 80,
                "cacheWriteInputTokens": 30,
                "cacheDetails": [{"ttl": "1h", "inputTokens": 20}, {"ttl": "5m", "inputTokens": 10}],
            },
            (120, 5, 80, 30, 20),
            id="cache-lifetimes",
        ),
        pytest.param({"inputTokens": 10, "outputTokens": 5}, (10, 5, 0, 0, 0), id="plain"),
        pytest.param({"outputTokens": 5}, (0, 5, 0, 0, 0), id="partial"),
    ],
)
def test_converse_usage_table(usage: dict[str, Any], expected: tuple[int, ...]) -> None:
    from otel_tokens.instrumentation.adapters.bedrock import converse_usage

    u = converse_usage(usage)
    assert (
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.cache_write_1h_tokens,
    ) == expected


def test_an_unknown_model_gives_tokens_and_no_cost(telemetry: Telemetry, fake: Any) -> None:
    fake.enqueue(Reply.ok(input_tokens=10, output_tokens=5))
    bedrock(fake).converse(modelId="acme.unknown-model-v1:0", messages=MSGS)
    (span,) = telemetry.llm_spans()
    attrs = _attrs(span)
    assert attrs[n.GEN_AI_USAGE_INPUT_TOKENS] == 10 and attrs[n.COST_STATUS] == "unpriced"
    assert n.GEN_AI_USAGE_COST not in attrs
