"""Real anthropic SDK -> fake server over HTTP -> instrumentation -> in-memory exporters."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import anthropic
import pytest

from otel_tokens import names as n
from otel_tokens.fakellm import Reply
from tests.conftest import Telemetry, expected_cost

MSGS = [{"role": "user", "content": "hello"}]
MODEL = "claude-sonnet-4-5"
# normalised: input includes cache read + write
USAGE = dict(input_tokens=2150, output_tokens=400, cache_read=1111, cache_write=418, reasoning=33)
TOKENS = {
    n.GEN_AI_USAGE_INPUT_TOKENS: 2150,
    n.GEN_AI_USAGE_OUTPUT_TOKENS: 400,
    n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 1111,
    n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: 418,
    n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 33,
}


def _client(fake: Any, is_async: bool) -> Any:
    cls = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    return cls(base_url=fake.anthropic_base_url, api_key="sk-ant-test-secret", max_retries=2)


async def _acall(client: Any, mode: str) -> None:
    kwargs: dict[str, Any] = dict(model=MODEL, max_tokens=500, messages=MSGS)
    if mode == "json":
        msg = await client.messages.create(**kwargs)
        assert msg.usage.cache_read_input_tokens == 1111
    elif mode == "stream":
        async for _ in await client.messages.create(**kwargs, stream=True):
            pass
    elif mode == "helper":
        async with client.messages.stream(**kwargs) as stream:
            final = await stream.get_final_message()
            assert final.usage.output_tokens == 400
    elif mode == "early":
        stream = await client.messages.create(**kwargs, stream=True)
        async for _ in stream:
            break
        await stream.close()


def _call(client: Any, mode: str) -> None:
    kwargs: dict[str, Any] = dict(model=MODEL, max_tokens=500, messages=MSGS)
    if mode == "json":
        msg = client.messages.create(**kwargs)
        assert msg.usage.cache_read_input_tokens == 1111
    elif mode == "stream":
        for _ in client.messages.create(**kwargs, stream=True):
            pass
    elif mode == "helper":
        with client.messages.stream(**kwargs) as stream:
            final = stream.get_final_message()
            assert final.usage.output_tokens == 400
    elif mode == "early":
        stream = client.messages.create(**kwargs, stream=True)
        for _ in stream:
            break
        stream.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("mode", ["json", "stream", "helper", "early"])
def test_messages(telemetry: Telemetry, fake: Any, is_async: bool, mode: str) -> None:
    fake.enqueue(Reply.ok(**USAGE, chunks=4))
    client = _client(fake, is_async)
    if is_async:
        asyncio.run(_acall(client, mode))
    else:
        _call(client, mode)
    (span,) = telemetry.llm_spans()
    attrs = dict(span.attributes or {})
    assert span.name == f"chat {MODEL}"
    assert attrs[n.GEN_AI_PROVIDER_NAME] == "anthropic"
    assert attrs[n.GEN_AI_REQUEST_STREAM] is (mode != "json")
    if mode == "early":
        # message_start carried input and cache usage; output is what message_start said so far
        assert attrs[n.GEN_AI_USAGE_INPUT_TOKENS] == 2150
        assert attrs[n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] == 1111
        return
    assert {k: attrs.get(k) for k in TOKENS} == TOKENS
    cost = expected_cost("anthropic", MODEL, 2150, 400, cr=1111, cw=418)
    assert attrs[n.GEN_AI_USAGE_COST] == cost
    assert telemetry.total(n.M_COST) == cost
    assert attrs[n.GEN_AI_RESPONSE_FINISH_REASONS] == ("end_turn",)


def test_sdk_own_telemetry_is_switched_off_so_usage_is_counted_once(telemetry: Telemetry, fake: Any) -> None:
    from opentelemetry import trace

    assert os.environ.get("ANTHROPIC_OPEN_TELEMETRY") == "false"
    client = anthropic.Anthropic(
        base_url=fake.anthropic_base_url,
        api_key="sk-ant-x",
        open_telemetry={"tracer_provider": telemetry.tracer_provider},  # SDK spans forced on
    )
    client.messages.create(model=MODEL, max_tokens=10, messages=MSGS)
    usage_spans = [s for s in telemetry.spans() if n.GEN_AI_USAGE_INPUT_TOKENS in (s.attributes or {})]
    ours = [s for s in usage_spans if s.instrumentation_scope.name == "otel_tokens"]
    assert len(ours) == 1
    assert trace.get_tracer_provider() is not None


def test_uninstrument_restores_env(fake: Any) -> None:
    import otel_tokens

    os.environ.pop("ANTHROPIC_OPEN_TELEMETRY", None)
    otel_tokens.instrument()
    assert os.environ["ANTHROPIC_OPEN_TELEMETRY"] == "false"
    otel_tokens.uninstrument()
    assert "ANTHROPIC_OPEN_TELEMETRY" not in os.environ
