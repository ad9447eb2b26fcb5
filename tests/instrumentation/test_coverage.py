"""Methods that recorded nothing: responses.parse, legacy completions.create, and
@task on generator and async-generator functions. Real openai SDK over HTTP to the fake server."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import openai
import pytest
from pydantic import BaseModel

import otel_tokens
from otel_tokens import names as n
from otel_tokens.fakellm import Reply
from tests.conftest import Telemetry, expected_cost

MSGS = [{"role": "user", "content": "hello"}]


def _client(fake: Any, is_async: bool = False) -> Any:
    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    return cls(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


class Answer(BaseModel):
    a: int


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_responses_parse(telemetry: Telemetry, fake: Any, is_async: bool) -> None:
    fake.enqueue(Reply.ok(input_tokens=300, output_tokens=12, text='{"a": 1}', model="gpt-4o-2024-08-06"))

    async def acall() -> Any:
        return await _client(fake, True).responses.parse(model="gpt-4o", input="hi", text_format=Answer)

    if is_async:
        parsed = asyncio.run(acall())
    else:
        parsed = _client(fake).responses.parse(model="gpt-4o", input="hi", text_format=Answer)
    assert parsed.output_parsed == Answer(a=1)
    (span,) = telemetry.llm_spans()
    attrs = _attrs(span)
    assert (attrs[n.GEN_AI_USAGE_INPUT_TOKENS], attrs[n.GEN_AI_USAGE_OUTPUT_TOKENS]) == (300, 12)
    assert attrs[n.GEN_AI_USAGE_COST] == expected_cost("openai", "gpt-4o-2024-08-06", 300, 12)


def _completion(**usage: int) -> dict[str, Any]:
    return {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "gpt-3.5-turbo-instruct",
        "choices": [{"index": 0, "text": "hi", "finish_reason": "length", "logprobs": None}],
        **({"usage": usage} if usage else {}),
    }


def test_legacy_completions(telemetry: Telemetry, fake: Any) -> None:
    body = _completion(prompt_tokens=40, completion_tokens=7, total_tokens=47)
    fake.enqueue(Reply.raw(200, {"content-type": "application/json"}, json.dumps(body).encode()))
    result = _client(fake).completions.create(model="gpt-3.5-turbo-instruct", prompt="say hi")
    assert result.choices[0].text == "hi"
    events = [
        {**_completion(), "choices": [{"index": 0, "text": "h", "finish_reason": None, "logprobs": None}]},
        {**_completion(), "choices": [{"index": 0, "text": "i", "finish_reason": "stop", "logprobs": None}]},
        {
            **_completion(),
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
        },
    ]
    sse = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    fake.enqueue(Reply.raw(200, {"content-type": "text/event-stream"}, sse))
    chunks = list(
        _client(fake).completions.create(
            model="gpt-3.5-turbo-instruct",
            prompt="say hi",
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert len(chunks) == 3
    plain, streamed = telemetry.llm_spans()
    for span, usage, reason in ((plain, (40, 7), "length"), (streamed, (5, 2), "stop")):
        attrs = _attrs(span)
        assert span.name == "text_completion gpt-3.5-turbo-instruct"
        assert attrs[n.GEN_AI_OPERATION_NAME] == "text_completion"
        assert (attrs[n.GEN_AI_USAGE_INPUT_TOKENS], attrs[n.GEN_AI_USAGE_OUTPUT_TOKENS]) == usage
        assert attrs[n.GEN_AI_RESPONSE_FINISH_REASONS] == (reason,)
        assert attrs[n.GEN_AI_USAGE_COST] == expected_cost("openai", "gpt-3.5-turbo-instruct", *usage)


def _task_of(telemetry: Telemetry, name: str) -> dict[str, Any]:
    (span,) = [s for s in telemetry.spans() if s.name == f"invoke_workflow {name}"]
    return _attrs(span)


def test_task_on_a_generator_function(telemetry: Telemetry, fake: Any) -> None:
    client = _client(fake)

    @otel_tokens.task("produce")
    def produce(count: int) -> Any:
        for i in range(count):
            client.chat.completions.create(model="gpt-4o", messages=MSGS)
            yield i

    seen = []
    for item in produce(3):
        seen.append(item)
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)  # the consumer's own call
    assert seen == [0, 1, 2]
    names = [(_attrs(s)[n.GEN_AI_REQUEST_MODEL], _attrs(s).get(n.TASK_NAME)) for s in telemetry.llm_spans()]
    assert names == [("gpt-4o", "produce"), ("gpt-4o-mini", None)] * 3
    assert _task_of(telemetry, "produce")[n.TASK_LLM_CALLS] == 3


def test_task_on_an_async_generator_function(telemetry: Telemetry, fake: Any) -> None:
    client = _client(fake, True)

    @otel_tokens.task("aproduce")
    async def produce(count: int) -> Any:
        for i in range(count):
            await client.chat.completions.create(model="gpt-4o", messages=MSGS)
            yield i

    async def consume() -> list[int]:
        return [i async for i in produce(3)]

    assert asyncio.run(consume()) == [0, 1, 2]
    assert [_attrs(s).get(n.TASK_NAME) for s in telemetry.llm_spans()] == ["aproduce"] * 3
    assert _task_of(telemetry, "aproduce")[n.TASK_LLM_CALLS] == 3


def test_a_generator_task_left_early_ends_once(telemetry: Telemetry, fake: Any) -> None:
    client = _client(fake)

    @otel_tokens.task("early")
    def produce() -> Any:
        while True:
            client.chat.completions.create(model="gpt-4o", messages=MSGS)
            yield 1

    gen = produce()
    next(gen)
    next(gen)
    del gen
    gc.collect()
    assert _task_of(telemetry, "early")[n.TASK_LLM_CALLS] == 2
