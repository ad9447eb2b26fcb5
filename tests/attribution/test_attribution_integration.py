"""Attribution end to end: real SDKs over HTTP to the fake server, instrumented, in tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import anthropic
import genai_prices
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan

from otel_tokens import names as n
from otel_tokens.attribution import propagation
from otel_tokens.attribution import scopes as attribution
from otel_tokens.fakellm import Reply
from tests.conftest import Telemetry

MSGS = [{"role": "user", "content": "hello"}]


def price(provider: str, model: str, inp: int, out: int) -> Decimal:
    """The price computed independently, straight from genai-prices."""
    usage = genai_prices.Usage(input_tokens=inp, output_tokens=out)
    total: Decimal = genai_prices.calc_price(usage, model, provider_id=provider).total_price
    return total


def scopes(telemetry: Telemetry) -> tuple[Any, Any]:
    kw = {"tracer_provider": telemetry.tracer_provider, "meter_provider": telemetry.meter_provider}

    def task(name: str, **extra: Any) -> attribution.ScopeManager:
        return attribution.task(name, **kw, **extra)

    def agent(name: str) -> attribution.ScopeManager:
        return attribution.agent(name, **kw)

    return task, agent


def by_name(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    (span,) = [s for s in spans if s.name == name]
    return span


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_task_with_agents_and_an_sdk_retry(telemetry: Telemetry, fake: Any) -> None:
    task, agent = scopes(telemetry)
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=2)

    def chat(text: str) -> None:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": text}])

    fake.enqueue(
        Reply.ok(input_tokens=1000, output_tokens=200, model="gpt-4o"),
        Reply.error(429, retry_after=0.02),
        Reply.ok(input_tokens=3000, output_tokens=100, model="gpt-4o"),
        Reply.ok(input_tokens=500, output_tokens=50, model="gpt-4o"),
        Reply.ok(input_tokens=700, output_tokens=70, model="gpt-4o"),
    )
    with task("support-ticket", id="T-42", size="M", user="ann", team="care") as t:
        with agent("planner"):
            chat("plan")
        with agent("solver"):
            chat("step 1")  # 429 first, retried by the SDK
            chat("step 2")
        chat("summarise")

    spans = telemetry.spans()
    llm = sorted(telemetry.llm_spans(), key=lambda s: s.start_time or 0)
    assert len(llm) == 4
    identity = {
        n.TASK_NAME: "support-ticket",
        n.TASK_ID: "T-42",
        n.TASK_SIZE: "M",
        n.USER_ID: "ann",
        n.TEAM: "care",
    }
    expected = [("planner", 1, 0), ("solver", 1, 1), ("solver", 2, 0), (None, 1, 0)]
    for span, (agent_name, iteration, retries) in zip(llm, expected, strict=True):
        a = attrs(span)
        assert {k: a.get(k) for k in identity} == identity
        assert (a.get(n.GEN_AI_AGENT_NAME), a[n.AGENT_ITERATION], a.get(n.RETRY_COUNT, 0)) == (
            agent_name,
            iteration,
            retries,
        )
    (event,) = llm[1].events
    assert (event.name, dict(event.attributes or {})) == (
        n.EVENT_RETRY,
        {n.RETRY_REASON: n.RETRY_RATE_LIMIT, n.EVENT_RETRY_WAIT: 0.02, n.EVENT_ATTEMPT_STATUS: 429},
    )
    assert [s.events for s in (llm[0], llm[2], llm[3])] == [(), (), ()]
    retries = [(a[n.RETRY_REASON], a[n.TASK_NAME], v) for a, v in telemetry.points(n.M_RETRIES)]
    assert retries == [(n.RETRY_RATE_LIMIT, "support-ticket", 1)]

    # parents: LLM spans sit under their agent, agents under the task
    ids = {s.name: s.context.span_id for s in spans}
    assert llm[0].parent.span_id == ids["invoke_agent planner"]  # type: ignore[union-attr]
    assert llm[3].parent.span_id == ids["invoke_workflow support-ticket"]  # type: ignore[union-attr]

    # the rollup equals the sum of the children exactly, and the independent price
    children = [Decimal(repr(attrs(s)[n.GEN_AI_USAGE_COST])) for s in llm]
    independent = sum(
        price("openai", "gpt-4o", i, o) for i, o in ((1000, 200), (3000, 100), (500, 50), (700, 70))
    )
    task_attrs = attrs(by_name(spans, "invoke_workflow support-ticket"))
    assert task_attrs[n.TASK_COST] == float(sum(children)) == float(independent)
    assert t.totals().cost == independent
    assert {
        k: task_attrs[k]
        for k in (n.TASK_LLM_CALLS, n.TASK_INPUT_TOKENS, n.TASK_OUTPUT_TOKENS, n.TASK_RETRIES)
    } == {
        n.TASK_LLM_CALLS: 4,
        n.TASK_INPUT_TOKENS: 5200,
        n.TASK_OUTPUT_TOKENS: 420,
        n.TASK_RETRIES: 1,
    }
    solver = attrs(by_name(spans, "invoke_agent solver"))
    assert (solver[n.TASK_LLM_CALLS], solver[n.TASK_RETRIES]) == (2, 1)
    assert solver[n.TASK_COST] == float(
        price("openai", "gpt-4o", 3000, 100) + price("openai", "gpt-4o", 500, 50)
    )
    ((cost_attrs, cost_point),) = telemetry.points(n.M_TASK_COST)
    assert (cost_point.sum, cost_point.count) == (float(independent), 1)
    assert cost_attrs[n.TASK_NAME] == "support-ticket" and n.TASK_ID not in cost_attrs


def test_repeated_request_in_a_task_is_marked(telemetry: Telemetry, fake: Any) -> None:
    task, _ = scopes(telemetry)
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test")
    fake.enqueue(Reply.ok(), Reply.ok(), Reply.ok())
    with task("stuck-loop"):
        for text in ("same", "different", "same"):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": text}])
    llm = sorted(telemetry.llm_spans(), key=lambda s: s.start_time or 0)
    assert [attrs(s).get(n.LOOP_REPEAT) for s in llm] == [None, None, True]
    assert attrs(by_name(telemetry.spans(), "invoke_workflow stuck-loop"))[n.TASK_LOOP_REPEATS] == 1


async def test_asyncio_gather_of_tasks_with_nested_agents(telemetry: Telemetry, fake: Any) -> None:
    task, agent = scopes(telemetry)
    client = anthropic.AsyncAnthropic(base_url=fake.anthropic_base_url, api_key="sk-ant-test")

    async def work(name: str, calls: int) -> None:
        async with task(name):
            async with agent("outer"):
                for _ in range(calls):
                    async with agent("inner"):
                        await client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=MSGS)

    fake.enqueue(*[Reply.ok(input_tokens=100, output_tokens=10, model="claude-sonnet-4-5")] * 5)
    await asyncio.gather(work("a", 2), work("b", 3))
    spans = telemetry.spans()
    unit = price("anthropic", "claude-sonnet-4-5", 100, 10)
    for name, calls in (("a", 2), ("b", 3)):
        a = attrs(by_name(spans, f"invoke_workflow {name}"))
        assert (a[n.TASK_LLM_CALLS], a[n.TASK_COST]) == (calls, float(unit * calls))
    per_task = sorted((attrs(s)[n.TASK_NAME], attrs(s)[n.AGENT_ITERATION]) for s in telemetry.llm_spans())
    assert per_task == [("a", 1), ("a", 1), ("b", 1), ("b", 1), ("b", 1)]  # each in its own inner agent
    assert all(attrs(s)[n.GEN_AI_AGENT_NAME] == "inner" for s in telemetry.llm_spans())


@pytest.fixture
def threads() -> Iterator[None]:
    propagation.install()
    try:
        yield
    finally:
        propagation.uninstall()


def test_thread_pool_calls_roll_up_into_the_task(telemetry: Telemetry, fake: Any, threads: None) -> None:
    task, _ = scopes(telemetry)
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test")
    fake.enqueue(*[Reply.ok(input_tokens=40, output_tokens=4, model="gpt-4o")] * 6)

    def one(i: int) -> None:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": str(i)}])

    with task("batch") as t, ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(one, range(6)))
    assert sorted(attrs(s)[n.AGENT_ITERATION] for s in telemetry.llm_spans()) == [1, 2, 3, 4, 5, 6]
    assert all(attrs(s)[n.TASK_ID] == t.id for s in telemetry.llm_spans())
    assert t.totals().cost == price("openai", "gpt-4o", 40, 4) * 6


def test_repeats_are_per_task_and_free_outside_tasks(fake: Any) -> None:
    """Identical requests inside one task are marked; outside any task nothing is hashed."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import otel_tokens
    from otel_tokens import names as n
    from otel_tokens.attribution import context

    exporter = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(exporter))
    context.reset_for_tests({})
    otel_tokens.instrument(tracer_provider=tp)
    try:
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-x", max_retries=0)
        same = [{"role": "user", "content": "same"}]
        client.chat.completions.create(model="gpt-4o", messages=same)
        client.chat.completions.create(model="gpt-4o", messages=same)
        with otel_tokens.task("loop", tracer_provider=tp):
            for _ in range(3):
                client.chat.completions.create(model="gpt-4o", messages=same)
    finally:
        otel_tokens.uninstrument()
        context.reset_for_tests()
    llm = [s for s in exporter.get_finished_spans() if s.kind.name == "CLIENT"]
    assert [bool((s.attributes or {}).get(n.LOOP_REPEAT)) for s in llm] == [False, False, False, True, True]
    (task_span,) = [s for s in exporter.get_finished_spans() if s.name == "invoke_workflow loop"]
    assert (task_span.attributes or {})[n.TASK_LOOP_REPEATS] == 2
