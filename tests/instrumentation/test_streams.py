"""Every stream is finalised exactly once, whatever the user does with it; a finaliser never
records on the stack it interrupts. Real openai SDK over HTTP to the fake server."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import subprocess
import sys
import threading
from typing import Any

import openai
import pytest

from otel_tokens import names as n
from otel_tokens.fakellm import Reply
from tests.conftest import REPO, Telemetry, expected_cost

MSGS = [{"role": "user", "content": "hello"}]
WITH_USAGE = {"stream_options": {"include_usage": True}}


def _client(fake: Any, is_async: bool = False) -> Any:
    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    return cls(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def _next_call(fake: Any) -> None:
    """Any instrumented call is a safe point: finishes queued by finalisers run there."""
    _client(fake).embeddings.create(model="text-embedding-3-small", input="x")


def _chat_spans(telemetry: Telemetry) -> list[Any]:
    return [s for s in telemetry.llm_spans() if _attrs(s)[n.GEN_AI_OPERATION_NAME] == "chat"]


def test_abandoned_streams_never_hang_the_metric_reader(fake: Any) -> None:
    """The garbage collector finalises abandoned streams inside the reader's snapshot (lock held).
    Before the fix the finaliser recorded there and waited forever on that lock."""
    count = 20
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.instrumentation.abandoned_streams_child",
            fake.openai_base_url,
            str(count),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["reader_finished"] is True
    assert result["calls"] == {"success": 2, "cancelled": count}


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_a_stream_never_iterated_is_finalised_when_collected(
    telemetry: Telemetry, fake: Any, is_async: bool
) -> None:
    fake.enqueue(Reply.ok(input_tokens=10, output_tokens=2))

    async def acreate() -> None:
        await _client(fake, True).chat.completions.create(model="gpt-4o", messages=MSGS, stream=True)

    if is_async:
        asyncio.run(acreate())
    else:
        _client(fake).chat.completions.create(model="gpt-4o", messages=MSGS, stream=True, **WITH_USAGE)
    gc.collect()
    _next_call(fake)
    (span,) = _chat_spans(telemetry)
    attrs = _attrs(span)
    assert (attrs[n.OUTCOME], attrs[n.COST_STATUS]) == ("cancelled", "unknown_usage")
    assert telemetry.total(n.M_CALLS, **{n.OUTCOME: "cancelled"}) == 1


def test_an_abandoned_stream_keeps_its_end_time(telemetry: Telemetry, fake: Any) -> None:
    import time

    stream = _client(fake).chat.completions.create(model="gpt-4o", messages=MSGS, stream=True)
    next(iter(stream))
    del stream
    gc.collect()
    collected = time.time_ns()
    time.sleep(0.05)
    _next_call(fake)
    (span,) = _chat_spans(telemetry)
    assert span.end_time is not None and span.end_time <= collected


def test_a_cut_stream_is_cancelled_with_the_usage_it_saw(telemetry: Telemetry, fake: Any) -> None:
    fake.enqueue(Reply.ok(input_tokens=100, output_tokens=20, model="gpt-4o-2024-08-06", chunks=3))
    stream = _client(fake).chat.completions.create(model="gpt-4o", messages=MSGS, stream=True, **WITH_USAGE)
    for chunk in stream:
        if chunk.usage is not None:
            break  # the usage chunk arrived; the user stops before the end of the stream
    stream.close()
    (span,) = _chat_spans(telemetry)
    attrs = _attrs(span)
    assert (attrs[n.OUTCOME], attrs[n.COST_STATUS]) == ("cancelled", "priced")
    assert (attrs[n.GEN_AI_USAGE_INPUT_TOKENS], attrs[n.GEN_AI_USAGE_OUTPUT_TOKENS]) == (100, 20)
    assert attrs[n.GEN_AI_USAGE_COST] == expected_cost("openai", "gpt-4o-2024-08-06", 100, 20)


def test_closed_before_iteration_then_collected_is_one_call(telemetry: Telemetry, fake: Any) -> None:
    stream = _client(fake).chat.completions.create(model="gpt-4o", messages=MSGS, stream=True)
    stream.close()
    stream.close()
    del stream
    gc.collect()
    _next_call(fake)
    (span,) = _chat_spans(telemetry)
    assert _attrs(span)[n.OUTCOME] == "cancelled"


def test_racing_closes_end_the_span_once(telemetry: Telemetry, fake: Any) -> None:
    for _ in range(20):
        stream = _client(fake).chat.completions.create(model="gpt-4o", messages=MSGS, stream=True)
        barrier = threading.Barrier(6)

        def close(s: Any = stream, b: threading.Barrier = barrier) -> None:
            b.wait()
            s.close()

        threads = [threading.Thread(target=close) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        del stream
    gc.collect()
    _next_call(fake)
    assert len(_chat_spans(telemetry)) == 20
    assert telemetry.total(n.M_CALLS, **{n.OUTCOME: "cancelled"}) == 20


def test_a_server_cut_is_partial_with_the_error(telemetry: Telemetry, fake: Any) -> None:
    fake.enqueue(Reply.ok(input_tokens=100, output_tokens=40, chunks=8, cut_after=3))
    stream = _client(fake).chat.completions.create(model="gpt-4o", messages=MSGS, stream=True, **WITH_USAGE)
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    (span,) = _chat_spans(telemetry)
    attrs = _attrs(span)
    assert attrs[n.OUTCOME] == "partial" and n.ERROR_TYPE in attrs
    assert attrs[n.COST_STATUS] == "unknown_usage"


def _sse(*events: object) -> bytes:
    return b"".join(
        b"data: " + (e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n\n" for e in events
    )


def _chunk(**fields: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o", **fields}


def test_a_usage_chunk_with_null_choices_is_read(telemetry: Telemetry, fake: Any) -> None:
    """OpenAI-compatible servers send the usage chunk with ``"choices": null``; that raised a
    TypeError from our observer into the user's loop."""
    body = _sse(
        _chunk(choices=[{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]),
        _chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        _chunk(choices=None, usage={"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}),
        b"[DONE]",
    )
    fake.enqueue(Reply.raw(200, {"content-type": "text/event-stream"}, body))
    stream = _client(fake).chat.completions.create(model="gpt-4o", messages=MSGS, stream=True, **WITH_USAGE)
    chunks = list(stream)
    assert chunks[-1].choices is None and chunks[-1].usage.prompt_tokens == 12
    (span,) = _chat_spans(telemetry)
    attrs = _attrs(span)
    assert (attrs[n.OUTCOME], attrs[n.GEN_AI_USAGE_INPUT_TOKENS], attrs[n.GEN_AI_USAGE_OUTPUT_TOKENS]) == (
        "success",
        12,
        3,
    )
    assert attrs[n.GEN_AI_RESPONSE_FINISH_REASONS] == ("stop",)


@pytest.mark.parametrize(
    ("options", "hint"),
    [
        ({}, True),
        ({"stream_options": {"include_usage": True}}, False),
        ({"stream_options": {"include_usage": False}}, False),
    ],
    ids=["absent", "true-but-no-usage", "declined"],
)
def test_the_include_usage_hint_only_when_the_option_was_absent(
    telemetry: Telemetry, fake: Any, caplog: pytest.LogCaptureFixture, options: dict[str, Any], hint: bool
) -> None:
    from otel_tokens.telemetry import recorder

    recorder._unknown_said.clear()
    fake.enqueue(Reply.usage_null(), Reply.ok())
    caplog.set_level(logging.WARNING, logger="otel_tokens")
    list(_client(fake).chat.completions.create(model="gpt-4o", messages=MSGS, stream=True, **options))
    # a stream the user cuts says nothing (it is cancelled, not a call that reported no usage)
    stream = _client(fake).chat.completions.create(model="gpt-4o", messages=MSGS, stream=True, **options)
    stream.close()
    said = [r.getMessage() for r in caplog.records if "reported no token usage" in r.getMessage()]
    assert len(said) == 1
    assert ("include_usage" in said[0]) is hint


def test_a_stream_collected_inside_a_task_rolls_up_into_it(telemetry: Telemetry, fake: Any) -> None:
    import otel_tokens

    fake.enqueue(Reply.ok(input_tokens=10, output_tokens=2))
    with otel_tokens.task("abandoning") as t:
        stream = _client(fake).chat.completions.create(model="gpt-4o", messages=MSGS, stream=True)
        next(iter(stream))
        del stream
        gc.collect()
    assert t.totals().llm_calls == 1  # the task's end is a safe point: the finish ran before it reported
    (task_span,) = [s for s in telemetry.spans() if s.name == "invoke_workflow abandoning"]
    assert _attrs(task_span)[n.TASK_LLM_CALLS] == 1
