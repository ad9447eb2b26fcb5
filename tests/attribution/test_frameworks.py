"""Agent frameworks' own invoke_agent spans as our agent scope, with our rollups on them.

Two real frameworks from PyPI, each driving the real openai SDK against the fake server:
pydantic-ai (its own OpenTelemetry instrumentation) and the OpenAI Agents SDK (through
``opentelemetry-instrumentation-openai-agents-v2``).
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from otel_tokens import names as n
from otel_tokens.fakellm import Reply
from tests.conftest import Telemetry, expected_cost

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


def tool_call(name: str, args: dict[str, Any], input_tokens: int, output_tokens: int, seq: int) -> Reply:
    """A chat completion asking for one tool call (the fake's chat wire has no tool replies)."""
    body = {
        "id": f"chatcmpl-tool{seq}",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": f"call_{seq}",
                            "type": "function",
                            "function": {"name": name, "arguments": json.dumps(args)},
                        }
                    ],
                },
            }
        ],
        "usage": {
            "prompt_tokens": input_tokens,
            "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
    }
    return Reply.raw(200, {"content-type": "application/json"}, json.dumps(body).encode())


def _by_scope(telemetry: Telemetry, scope: str) -> list[Any]:
    return [s for s in telemetry.spans() if s.instrumentation_scope and s.instrumentation_scope.name == scope]


def _rollup(span: Any) -> dict[str, Any]:
    attrs = dict(span.attributes or {})
    return {
        k: attrs.get(k) for k in (n.TASK_COST, n.TASK_LLM_CALLS, n.TASK_INPUT_TOKENS, n.TASK_OUTPUT_TOKENS)
    }


def test_pydantic_ai_agent_run_is_the_agent_scope(telemetry: Telemetry, fake: Any) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.capabilities import Instrumentation
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(base_url=fake.openai_base_url, api_key="k"))
    settings = InstrumentationSettings(tracer_provider=telemetry.tracer_provider)
    agent = Agent(model, name="weather-bot", capabilities=[Instrumentation(settings=settings)])

    @agent.tool_plain
    def weather(city: str) -> str:
        return "sunny"

    fake.enqueue(
        tool_call("weather", {"city": "Oslo"}, 100, 20, 1),
        tool_call("weather", {"city": "Oslo"}, 150, 20, 2),
        Reply.ok(input_tokens=200, output_tokens=10, text="sunny", model="gpt-4o"),
    )
    assert agent.run_sync("weather in Oslo?").output == "sunny"

    ours = telemetry.llm_spans()
    assert [dict(s.attributes or {})[n.AGENT_ITERATION] for s in ours] == [1, 2, 3]
    assert {dict(s.attributes or {})[n.GEN_AI_AGENT_NAME] for s in ours} == {"weather-bot"}
    (run,) = [s for s in _by_scope(telemetry, "pydantic-ai") if s.name == "invoke_agent weather-bot"]
    cost = sum(expected_cost("openai", "gpt-4o", i, o) for i, o in ((100, 20), (150, 20), (200, 10)))
    assert _rollup(run) == {
        n.TASK_COST: pytest.approx(cost, abs=1e-15),
        n.TASK_LLM_CALLS: 3,
        n.TASK_INPUT_TOKENS: 450,
        n.TASK_OUTPUT_TOKENS: 50,
    }
    assert dict(run.attributes or {})[n.TASK_COST] == pytest.approx(telemetry.total(n.M_COST), abs=1e-15)
    # our LLM spans sit under the framework's own chat spans, inside the run's trace
    assert {s.context.trace_id for s in ours} == {run.context.trace_id}
    # a tool span with no LLM call under it gets no rollup
    tools = [s for s in _by_scope(telemetry, "pydantic-ai") if s.name.startswith("execute_tool")]
    assert tools and all(n.TASK_LLM_CALLS not in dict(s.attributes or {}) for s in tools)
    # metrics are labelled with the framework's agent
    assert telemetry.total(n.M_CALLS, **{n.GEN_AI_AGENT_NAME: "weather-bot"}) == 3


def test_each_run_is_its_own_scope(telemetry: Telemetry, fake: Any) -> None:
    """The same request in two runs is no repeat; within one run it is."""
    from pydantic_ai import Agent
    from pydantic_ai.capabilities import Instrumentation
    from pydantic_ai.models.instrumented import InstrumentationSettings
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(base_url=fake.openai_base_url, api_key="k"))
    settings = InstrumentationSettings(tracer_provider=telemetry.tracer_provider)
    agent = Agent(model, name="bot", capabilities=[Instrumentation(settings=settings)])
    fake.enqueue(Reply.ok(50, 5, model="gpt-4o"), Reply.ok(50, 5, model="gpt-4o"))
    agent.run_sync("same question")
    agent.run_sync("same question")
    ours = [dict(s.attributes or {}) for s in telemetry.llm_spans()]
    assert [a[n.AGENT_ITERATION] for a in ours] == [1, 1]
    assert not any(a.get(n.LOOP_REPEAT) for a in ours)
    runs = [s for s in _by_scope(telemetry, "pydantic-ai") if s.name == "invoke_agent bot"]
    assert [_rollup(r)[n.TASK_LLM_CALLS] for r in runs] == [1, 1]


def test_openai_agents_sdk_agent_span_is_the_agent_scope(telemetry: Telemetry, fake: Any) -> None:
    from opentelemetry.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(False)
    instrumentor = OpenAIAgentsInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider)
    try:

        @function_tool
        def weather(city: str) -> str:
            """The weather in a city."""
            return "sunny"

        client = openai.AsyncOpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
        agent = Agent(
            name="helper",
            instructions="be brief",
            tools=[weather],
            model=OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client),
        )
        fake.enqueue(
            tool_call("weather", {"city": "Oslo"}, 120, 15, 1),
            Reply.ok(input_tokens=180, output_tokens=8, text="sunny", model="gpt-4o"),
        )
        assert Runner.run_sync(agent, "weather in Oslo?").final_output == "sunny"
    finally:
        instrumentor.uninstrument()

    ours = telemetry.llm_spans()
    assert [dict(s.attributes or {})[n.AGENT_ITERATION] for s in ours] == [1, 2]
    assert {dict(s.attributes or {})[n.GEN_AI_AGENT_NAME] for s in ours} == {"helper"}
    framework = _by_scope(telemetry, "opentelemetry.instrumentation.openai_agents")
    (run,) = [s for s in framework if s.name == "invoke_agent helper"]
    cost = expected_cost("openai", "gpt-4o", 120, 15) + expected_cost("openai", "gpt-4o", 180, 8)
    assert _rollup(run) == {
        n.TASK_COST: pytest.approx(cost, abs=1e-15),
        n.TASK_LLM_CALLS: 2,
        n.TASK_INPUT_TOKENS: 300,
        n.TASK_OUTPUT_TOKENS: 23,
    }


def test_our_own_agent_inside_a_framework_span_is_nearer(telemetry: Telemetry, fake: Any) -> None:
    import otel_tokens

    tracer = telemetry.tracer_provider.get_tracer("some-framework")
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
    fake.enqueue(Reply.ok(10, 1), Reply.ok(20, 2))
    with tracer.start_as_current_span(
        "invoke_agent outer", attributes={n.GEN_AI_OPERATION_NAME: "invoke_agent"}
    ):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "a"}])
        with otel_tokens.agent("inner"):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "b"}])
    names = [dict(s.attributes or {})[n.GEN_AI_AGENT_NAME] for s in telemetry.llm_spans()]
    assert names == ["outer", "inner"]
    (outer,) = [s for s in telemetry.spans() if s.name == "invoke_agent outer"]
    assert _rollup(outer)[n.TASK_LLM_CALLS] == 1
