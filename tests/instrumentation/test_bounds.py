"""Hot path and cardinality: repeats from a bounded fingerprint at constant cost, and every
metric bounded in series, not only per key. Real openai SDK over HTTP to the fake server."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

import otel_tokens
from otel_tokens import names as n
from otel_tokens.telemetry.fingerprint import fingerprint
from tests.conftest import Telemetry

USER = {"role": "user", "content": "fix the build"}


def _turn(call_id: str, result: str = "error: missing file") -> list[dict[str, Any]]:
    call = {"id": call_id, "type": "function", "function": {"name": "run", "arguments": '{"cmd": "make"}'}}
    return [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call_id, "content": result},
    ]


def _client(fake: Any, base_url: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url or fake.openai_base_url, api_key="sk-test", max_retries=0)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ([USER], [USER], True),
        ([USER, *_turn("call_1")], [USER, *_turn("call_1"), *_turn("call_2")], True),  # ids left out
        ([USER, *_turn("call_1")], [USER, *_turn("call_1", "ok")], False),
        ([USER], [{"role": "user", "content": "fix the tests"}], False),
        ("a prompt", "a prompt", True),
        ("a prompt", "another prompt", False),
        (
            [{"role": "user", "content": "x" * 10_000 + "a"}],
            [{"role": "user", "content": "x" * 10_000 + "b"}],
            False,
        ),
    ],
)
def test_fingerprint_is_the_last_turns(a: Any, b: Any, same: bool) -> None:
    assert (fingerprint("gpt-4o", a) == fingerprint("gpt-4o", b)) is same
    assert fingerprint("gpt-4o", a) != fingerprint("gpt-4o-mini", a)


def test_fingerprint_costs_the_same_whatever_the_request_size() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 5_000_000}}
    big = [{"role": "user", "content": "y" * 200_000}] * 50 + [{"role": "user", "content": [image]}]

    def cost(messages: Any) -> float:
        start = time.perf_counter()
        for _ in range(200):
            fingerprint("gpt-4o", messages)
        return (time.perf_counter() - start) / 200

    small, huge = cost([USER]), cost(big)
    assert huge < 0.0005, f"{huge * 1e3:.3f} ms per fingerprint of a 15 MB request"
    assert huge < 50 * small + 0.0001


def test_a_real_agent_loop_is_a_repeat(telemetry: Telemetry, fake: Any) -> None:
    """The history grows each turn; the loop is the same tool call getting the same result."""
    client = _client(fake)
    history: list[dict[str, Any]] = [USER]
    with otel_tokens.task("looping") as t:
        for i in range(4):
            client.chat.completions.create(model="gpt-4o", messages=history)
            history = [*history, *_turn(f"call_{i}")]
    repeats = [dict(s.attributes or {}).get(n.LOOP_REPEAT, False) for s in telemetry.llm_spans()]
    assert repeats == [False, False, True, True]
    assert t.totals().loop_repeats == 2
    assert telemetry.total(n.M_LOOP_REPEATS) == 2


def test_series_are_bounded_not_only_each_key(
    telemetry: Telemetry, fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(n.ENV_MAX_SERIES, "3")
    client = _client(fake)
    for i in range(7):
        with otel_tokens.task(f"task-{i}"):
            client.chat.completions.create(model="gpt-4o", messages=[USER])
    points = telemetry.points(n.M_CALLS)
    assert len(points) == 4
    assert {a.get(n.TASK_NAME) for a, _ in points} == {"task-0", "task-1", "task-2", None}
    ((overflow, value),) = [(a, v) for a, v in points if n.METRIC_OVERFLOW in a]
    assert overflow == {n.METRIC_OVERFLOW: True} and value == 4
    assert telemetry.total(n.M_CALLS) == 7  # totals stay exact
    assert len(telemetry.points(n.M_TASKS)) == 4
    assert len(telemetry.points(n.M_OPERATION_DURATION)) <= 4


def test_server_address_and_task_outcomes_are_bounded_on_metrics(
    telemetry: Telemetry, fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_tokens.telemetry import recorder

    monkeypatch.setenv(n.ENV_MAX_ATTR_VALUES, "1")
    monkeypatch.setattr(recorder, "_servers", {})
    monkeypatch.setattr(recorder, "_models", {})
    local = fake.openai_base_url.replace("127.0.0.1", "localhost")
    for i, url in enumerate((fake.openai_base_url, local)):
        with otel_tokens.task("t") as t:
            _client(fake, url).chat.completions.create(model="gpt-4o", messages=[USER])
            t.set_outcome(f"free text {i}")
    addresses = {a.get(n.SERVER_ADDRESS) for a, _ in telemetry.points(n.M_OPERATION_DURATION)}
    assert addresses == {"127.0.0.1", n.OVERFLOW_VALUE}
    outcomes = {a.get(n.TASK_OUTCOME) for a, _ in telemetry.points(n.M_TASKS)}
    assert outcomes == {"free text 0", n.OVERFLOW_VALUE}
    spans = {dict(s.attributes or {}).get(n.SERVER_ADDRESS) for s in telemetry.llm_spans()}
    assert spans == {"127.0.0.1", "localhost"}  # spans keep the real values


@pytest.mark.parametrize("reader", [False, True])
def test_no_instrument_work_when_nothing_reads_the_meter(fake: Any, reader: bool) -> None:
    """Local-store mode has no metric reader: the span (with its cost) and the task rollup are
    recorded, the instruments nobody reads get nothing; with a reader, the same calls count."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from otel_tokens.instrumentation import core

    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    readers = [InMemoryMetricReader()] if reader else []
    otel_tokens.instrument(tracer_provider=tp, meter_provider=MeterProvider(metric_readers=readers))
    try:
        assert core.active.recorder is not None
        metrics = core.active.recorder.metrics
        with otel_tokens.task("local") as task:
            for _ in range(3):
                _client(fake).chat.completions.create(model="gpt-4o", messages=[USER])
            assert task.totals().llm_calls == 3
        llm = [s for s in spans.get_finished_spans() if s.kind.name == "CLIENT"]
        assert len(llm) == 3 and all(isinstance(s.attributes[n.GEN_AI_USAGE_COST], float) for s in llm)
        rows = metrics.ours.snapshot()
        assert (sum(row[0] for _key, row in rows) == 3) if reader else rows == []
        assert bool(metrics.semconv.snapshot()) is reader
    finally:
        otel_tokens.uninstrument()
