"""Usage extraction as tables: pure functions over SDK objects, no patching, no server.

Rows: full, partial, null, zero and missing usage details, for every provider and API flavour,
non-streaming, stream read to the end, stream cut early.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai._models import construct_type
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response
from pydantic import TypeAdapter

from otel_tokens.instrumentation.adapters import anthropic as an
from otel_tokens.instrumentation.adapters import openai as oa
from otel_tokens.record import MAX_TOKENS, CallRecord, Usage, normalised_usage

BASE = CallRecord(provider="p", operation="chat", request_model="m")


def U(i: int, o: int, cr: int = 0, cw: int = 0, rs: int = 0) -> Usage:
    return Usage(i, o, cr, cw, rs)


# --- openai chat ---------------------------------------------------------------------------
def chat(usage: Any) -> ChatCompletion:
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "x"}}],
    }
    if usage != "absent":
        body["usage"] = usage
    return ChatCompletion.model_validate(body)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param(
            {
                "prompt_tokens": 1370,
                "completion_tokens": 155,
                "total_tokens": 1525,
                "prompt_tokens_details": {"cached_tokens": 1280, "cache_write_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 64},
            },
            U(1370, 155, cr=1280, rs=64),
            id="full",
        ),
        pytest.param(
            {
                "prompt_tokens": 4020,
                "completion_tokens": 4,
                "total_tokens": 4024,
                "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 4012},
            },
            U(4020, 4, cw=4012),
            id="cache-write",
        ),
        pytest.param(
            {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}, U(10, 3), id="no-details"
        ),
        pytest.param(
            {
                "prompt_tokens": 10,
                "completion_tokens": 3,
                "total_tokens": 13,
                "prompt_tokens_details": None,
                "completion_tokens_details": None,
            },
            U(10, 3),
            id="null-details",
        ),
        pytest.param({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}, U(0, 0), id="zero"),
        pytest.param(
            {
                "prompt_tokens": 100,
                "completion_tokens": 3,
                "total_tokens": 103,
                "prompt_tokens_details": {"cached_tokens": 128},
            },
            U(128, 3, cr=128),
            id="provider-breaks-invariant-clamped",
        ),
    ],
)
def test_chat_usage(usage: dict[str, Any], expected: Usage) -> None:
    record = oa.chat_record(chat(usage), BASE)
    assert record.usage == expected
    assert record.usage_reported
    assert (record.response_model, record.response_id, record.finish_reasons) == (
        "gpt-4o-2024-08-06",
        "chatcmpl-1",
        ("stop",),
    )


@pytest.mark.parametrize("usage", [None, "absent"], ids=["null", "missing"])
def test_chat_without_usage(usage: Any) -> None:
    record = oa.chat_record(chat(usage), BASE)
    assert not record.usage_reported and record.usage == Usage()


def _chunk(
    i: int, content: str | None, finish: str | None = None, usage: Any = None, choices: bool = True
) -> Any:
    body: dict[str, Any] = {
        "id": "chatcmpl-s",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}] if choices else [],
    }
    if usage is not None:
        body["usage"] = usage
    return ChatCompletionChunk.model_validate(body)


STREAM = [_chunk(0, "a"), _chunk(1, "b"), _chunk(2, None, "stop")]
USAGE_CHUNK = _chunk(
    3,
    None,
    usage={
        "prompt_tokens": 75,
        "completion_tokens": 51,
        "total_tokens": 126,
        "completion_tokens_details": {"reasoning_tokens": 7},
    },
    choices=False,
)


@pytest.mark.parametrize(
    ("chunks", "reported", "usage", "reasons"),
    [
        pytest.param([*STREAM, USAGE_CHUNK], True, U(75, 51, rs=7), ("stop",), id="to-end-with-usage"),
        pytest.param(STREAM, False, Usage(), ("stop",), id="to-end-no-include-usage"),
        pytest.param(STREAM[:1], False, Usage(), (), id="cut-early"),
        pytest.param([], False, Usage(), (), id="no-chunks"),
    ],
)
def test_chat_stream(chunks: list[Any], reported: bool, usage: Usage, reasons: tuple[str, ...]) -> None:
    obs = oa.ChatStreamObserver()
    for c in chunks:
        obs.observe(c)
    record = obs.record(BASE, complete=True)
    assert (record.usage_reported, record.usage, record.finish_reasons) == (reported, usage, reasons)
    if chunks:
        assert record.response_id == "chatcmpl-s"


# --- openai responses and embeddings ---------------------------------------------------------
def response(usage: Any, **top: Any) -> Any:
    body: dict[str, Any] = {
        "id": "resp_1",
        "object": "response",
        "created_at": 0,
        "model": "gpt-5",
        "status": "completed",
        "output": [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }
    if usage is not None:
        body["usage"] = usage
    body.update(top)
    return construct_type(type_=Response, value=body)  # lenient, as the SDK parses


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param(
            {
                "input_tokens": 9463,
                "output_tokens": 660,
                "total_tokens": 10123,
                "input_tokens_details": {"cached_tokens": 8320},
                "output_tokens_details": {"reasoning_tokens": 512},
            },
            U(9463, 660, cr=8320, rs=512),
            id="cached-reasoning",
        ),
        pytest.param(
            {
                "input_tokens": 4020,
                "output_tokens": 5,
                "total_tokens": 4025,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 4012},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
            U(4020, 5, cw=4012),
            id="cache-write",
        ),
        pytest.param(
            {
                "input_tokens": 0,
                "output_tokens": 0,
                "total_tokens": 0,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
            U(0, 0),
            id="zero",
        ),
    ],
)
def test_responses_usage(usage: dict[str, Any], expected: Usage) -> None:
    record = oa.responses_record(response(usage), BASE)
    assert (record.usage, record.usage_reported, record.finish_reasons) == (expected, True, ("completed",))


def test_responses_without_usage() -> None:
    assert not oa.responses_record(response(None), BASE).usage_reported


def test_responses_stream_uses_terminal_event() -> None:
    class Event:
        def __init__(self, r: Any) -> None:
            self.response = r

    obs = oa.ResponsesStreamObserver()
    obs.observe(Event(response(None)))  # response.created
    obs.observe(object())  # a delta event without a response
    cut = obs.record(BASE, complete=False)
    assert (cut.response_id, cut.usage_reported) == ("resp_1", False)
    obs.observe(
        Event(
            response(
                {
                    "input_tokens": 53,
                    "output_tokens": 469,
                    "total_tokens": 522,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens_details": {"reasoning_tokens": 448},
                }
            )
        )
    )
    assert obs.record(BASE, complete=True).usage == U(53, 469, rs=448)


def test_embeddings_usage() -> None:
    body = {
        "object": "list",
        "data": [],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 8, "total_tokens": 8},
    }
    record = oa.embeddings_record(CreateEmbeddingResponse.model_validate(body), BASE)
    assert record.usage == U(8, 0)


# --- anthropic ---------------------------------------------------------------------------------
def message(usage: dict[str, Any]) -> Message:
    return Message.model_validate(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
    )


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param(
            {
                "input_tokens": 3,
                "output_tokens": 33,
                "cache_read_input_tokens": 1111,
                "cache_creation_input_tokens": 418,
            },
            U(1532, 33, cr=1111, cw=418),
            id="read-and-write",
        ),
        pytest.param(
            {
                "input_tokens": 16,
                "output_tokens": 344,
                "cache_read_input_tokens": 13637,
                "cache_creation_input_tokens": 7049,
                "output_tokens_details": {"thinking_tokens": 33},
            },
            U(20702, 344, cr=13637, cw=7049, rs=33),
            id="thinking",
        ),
        pytest.param({"input_tokens": 21, "output_tokens": 561}, U(21, 561), id="no-cache-fields"),
        pytest.param(
            {
                "input_tokens": 21,
                "output_tokens": 561,
                "cache_read_input_tokens": None,
                "cache_creation_input_tokens": None,
            },
            U(21, 561),
            id="null-cache-fields",
        ),
        pytest.param({"input_tokens": 0, "output_tokens": 0}, U(0, 0), id="zero"),
    ],
)
def test_anthropic_usage(usage: dict[str, Any], expected: Usage) -> None:
    record = an.message_record(message(usage), BASE)
    assert (record.usage, record.finish_reasons, record.response_id) == (expected, ("end_turn",), "msg_1")


EVENT = TypeAdapter(RawMessageStreamEvent)
START = EVENT.validate_python(
    {
        "type": "message_start",
        "message": {
            "id": "msg_s",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-6",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": 2293,
                "output_tokens": 1,
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 0,
            },
        },
    }
)
DELTA_CUMULATIVE = EVENT.validate_python(
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {
            "input_tokens": 4714,
            "output_tokens": 304,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        },
    }
)
DELTA_LEGACY = EVENT.validate_python(
    {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 201},
    }
)


@pytest.mark.parametrize(
    ("events", "usage", "reported"),
    [
        pytest.param([START, DELTA_CUMULATIVE], U(4714, 304), True, id="delta-input-wins"),
        pytest.param([START, DELTA_LEGACY], U(2293, 201), True, id="legacy-delta-output-only"),
        pytest.param([START], U(2293, 1), True, id="cut-after-start"),
        pytest.param([], Usage(), False, id="nothing"),
    ],
)
def test_anthropic_stream(events: list[Any], usage: Usage, reported: bool) -> None:
    obs = an.MessageStreamObserver()
    for e in events:
        obs.observe(e)
    record = obs.record(BASE, complete=True)
    assert (record.usage, record.usage_reported) == (usage, reported)


# --- the record's normalisation rules --------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"input_tokens": 10, "output_tokens": 5}, U(10, 5)),
        ({"input_tokens": None, "output_tokens": None}, U(0, 0)),
        (
            {"input_tokens": 5, "output_tokens": 1, "cache_read_tokens": 4, "cache_write_tokens": 4},
            U(8, 1, 4, 4),
        ),
        # implausible counts (a buggy or hostile server) count as 0 and flag the usage
        (
            {"input_tokens": -3, "output_tokens": 5, "reasoning_tokens": 9},
            replace(U(0, 9, rs=9), implausible=True),
        ),
        ({"input_tokens": 2**63, "output_tokens": 5}, replace(U(0, 5), implausible=True)),
        ({"input_tokens": 10, "output_tokens": 2**53}, replace(U(10, 0), implausible=True)),
        (
            {"input_tokens": 10, "output_tokens": 5, "cache_read_tokens": -1},
            replace(U(10, 5), implausible=True),
        ),
        ({"input_tokens": MAX_TOKENS, "output_tokens": MAX_TOKENS}, U(MAX_TOKENS, MAX_TOKENS)),
        (
            {"input_tokens": 1, "output_tokens": 1, "cache_read_tokens": MAX_TOKENS, "cache_write_tokens": 9},
            U(MAX_TOKENS + 9, 1, MAX_TOKENS, 9),  # each count plausible: the sum fits int64 still
        ),
    ],
)
def test_normalised_usage(kwargs: dict[str, Any], expected: Usage) -> None:
    assert normalised_usage(**kwargs) == expected


# --- pricing dimensions beyond tokens: tiers, lifetimes, server tools, modalities ---------------
XAI = CallRecord(provider="x_ai", operation="chat", request_model="grok-3-mini")


@pytest.mark.parametrize(
    ("record", "expected", "tier"),
    [
        pytest.param(
            oa.chat_record(
                chat(
                    {
                        "prompt_tokens": 900,
                        "total_tokens": 1200,
                        "completion_tokens": 300,
                        "prompt_tokens_details": {"cached_tokens": 128, "audio_tokens": 400},
                        "completion_tokens_details": {"audio_tokens": 250, "reasoning_tokens": 0},
                    }
                ),
                BASE,
            ),
            Usage(900, 300, 128, input_audio_tokens=400, output_audio_tokens=250),
            None,
            id="chat-audio",
        ),
        pytest.param(
            oa.chat_record(
                chat(
                    {
                        "prompt_tokens": 563,
                        "completion_tokens": 116,
                        "total_tokens": 679,
                        "prompt_cache_hit_tokens": 512,
                    }
                ),
                BASE,
            ),
            U(563, 116, cr=512),
            None,
            id="deepseek-hit-tokens",
        ),
        pytest.param(
            oa.chat_record(
                chat(
                    {
                        "prompt_tokens": 10,
                        "completion_tokens": 5,
                        "total_tokens": 15,
                        "completion_tokens_details": {"reasoning_tokens": 20},
                    }
                ),
                XAI,
            ),
            U(10, 25, rs=20),
            None,
            id="xai-reasoning-outside-completion",
        ),
        pytest.param(
            oa.chat_record(
                ChatCompletion.model_validate(
                    {
                        **chat({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}).model_dump(),
                        "service_tier": "flex",
                    }
                ),
                BASE,
            ),
            U(1, 1),
            "flex",
            id="chat-service-tier",
        ),
        pytest.param(
            oa.responses_record(
                response(
                    {"input_tokens": 9463, "output_tokens": 660, "total_tokens": 10123},
                    service_tier="priority",
                    output=[
                        {
                            "type": "web_search_call",
                            "id": f"ws_{i}",
                            "status": "completed",
                            "action": {"type": "search"},
                        }
                        for i in range(2)
                    ],
                ),
                BASE,
            ),
            Usage(9463, 660, web_searches=2),
            "priority",
            id="responses-web-search-calls",
        ),
        pytest.param(
            an.message_record(
                message(
                    {
                        "input_tokens": 3,
                        "output_tokens": 33,
                        "cache_read_input_tokens": 1111,
                        "cache_creation_input_tokens": 418,
                        "cache_creation": {
                            "ephemeral_5m_input_tokens": 118,
                            "ephemeral_1h_input_tokens": 300,
                        },
                        "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 0},
                        "service_tier": "standard",
                    }
                ),
                BASE,
            ),
            Usage(1532, 33, 1111, 418, 0, cache_write_1h_tokens=300, web_searches=3),
            "standard",
            id="anthropic-1h-writes-and-searches",
        ),
    ],
)
def test_pricing_dimensions(record: CallRecord, expected: Usage, tier: str | None) -> None:
    assert (record.usage, record.service_tier) == (expected, tier)


def test_chat_stream_takes_the_model_from_the_first_chunk_that_names_it() -> None:
    head = ChatCompletionChunk.model_validate(
        {"id": "", "object": "chat.completion.chunk", "created": 0, "model": "", "choices": []}
    )
    obs = oa.ChatStreamObserver()
    for c in [head, *STREAM, USAGE_CHUNK]:
        obs.observe(c)
    record = obs.record(BASE, complete=True)
    assert (record.response_model, record.response_id) == ("gpt-4o-mini", "chatcmpl-s")
