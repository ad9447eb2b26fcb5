"""Real litellm (its own OpenAI, Anthropic and Gemini code paths) -> fake server over HTTP."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch litellm's price map

import litellm

from otel_tokens import names as n
from otel_tokens.fakellm import Reply
from tests.conftest import Telemetry, expected_cost

# litellm's own import-time and per-call warnings (pydantic ReadOnly TypedDicts, deprecations)
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

MSGS = [{"role": "user", "content": "hello"}]
# (litellm model, base-url attribute of the fake, genai-prices provider, gen_ai.provider.name, path)
ROUTES = {
    "openai": ("openai/gpt-4o", "openai_base_url", "openai", "openai", "/v1/chat/completions"),
    "anthropic": (
        "anthropic/claude-sonnet-4-5",
        "anthropic_base_url",
        "anthropic",
        "anthropic",
        "/v1/messages",
    ),
    "gemini": ("gemini/gemini-2.5-flash", "base_url", "google", "gcp.gemini", ":generateContent"),
}
USAGE = {
    "openai": dict(input_tokens=1200, output_tokens=300, cache_read=1024, reasoning=100),
    "anthropic": dict(input_tokens=1200, output_tokens=300, cache_read=1000, cache_write=100),
    "gemini": dict(input_tokens=1200, output_tokens=300, cache_read=1000, reasoning=100),
}


def _attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def _kwargs(fake: Any, route: str, stream: bool) -> dict[str, Any]:
    model, base, *_ = ROUTES[route]
    kwargs: dict[str, Any] = dict(model=model, messages=MSGS, api_base=getattr(fake, base), api_key="sk-fake")
    kwargs["num_retries"] = 0
    if stream:
        kwargs["stream"] = True
        if route == "openai":
            kwargs["stream_options"] = {"include_usage": True}
    return kwargs


async def _acall(kwargs: dict[str, Any], mode: str) -> Any:
    result = await litellm.acompletion(**kwargs)
    if mode == "json":
        return result
    async for _ in result:
        if mode == "early":
            await result.aclose()
            break
    return result


def _call(kwargs: dict[str, Any], mode: str) -> Any:
    result = litellm.completion(**kwargs)
    if mode == "json":
        return result
    for _ in result:
        if mode == "early":
            result.close()
            break
    return result


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("mode", ["json", "end", "early"])
def test_completion(telemetry: Telemetry, fake: Any, route: str, is_async: bool, mode: str) -> None:
    model, _base, price_id, provider, path = ROUTES[route]
    name = model.split("/", 1)[1]
    u = USAGE[route]
    fake.enqueue(Reply.ok(**u, model=name, chunks=4))
    kwargs = _kwargs(fake, route, stream=mode != "json")
    result = asyncio.run(_acall(kwargs, mode)) if is_async else _call(kwargs, mode)
    assert path.lstrip(":") in fake.requests[-1].path.replace("streamG", "g")
    (span,) = telemetry.llm_spans()
    attrs = _attrs(span)
    assert span.name == f"chat {name}"
    assert attrs[n.GEN_AI_PROVIDER_NAME] == provider
    assert attrs[n.GEN_AI_REQUEST_MODEL] == name
    assert attrs[n.GEN_AI_REQUEST_STREAM] is (mode != "json")
    assert attrs[n.SERVER_ADDRESS] == "127.0.0.1" and attrs[n.SERVER_PORT] == fake.port
    assert telemetry.total(n.M_CALLS) == 1
    if mode == "early":
        if route == "openai":  # closed before the usage-only last chunk
            assert attrs[n.COST_STATUS] == "unknown_usage"
        else:  # Anthropic's message_start and every Gemini chunk carry the usage so far
            assert attrs[n.GEN_AI_USAGE_INPUT_TOKENS] == 1200
            assert 0 < attrs[n.GEN_AI_USAGE_OUTPUT_TOKENS] < 300
        return
    tokens = {
        n.GEN_AI_USAGE_INPUT_TOKENS: 1200,
        n.GEN_AI_USAGE_OUTPUT_TOKENS: 300,
        n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: u.get("cache_read", 0),
        n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: u.get("cache_write", 0),
        n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: u.get("reasoning", 0),
    }
    assert {k: attrs.get(k, 0) for k in tokens} == tokens
    cost = expected_cost(price_id, name, 1200, 300, cr=u.get("cache_read", 0), cw=u.get("cache_write", 0))
    assert attrs[n.GEN_AI_USAGE_COST] == cost
    assert telemetry.total(n.M_COST) == cost
    if mode == "json":
        assert result.usage.prompt_tokens == 1200
        assert litellm_cost_agrees(result, cost) is (n.COST_REPORTED not in attrs)


def litellm_cost_agrees(result: Any, cost: float) -> bool:
    reported = result._hidden_params.get("response_cost")
    return reported is None or abs(reported - cost) <= 1e-12


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_embedding(telemetry: Telemetry, fake: Any, is_async: bool) -> None:
    fake.enqueue(Reply.ok(input_tokens=9, output_tokens=0))
    kwargs = dict(
        model="openai/text-embedding-3-small", input=["ab"], api_base=fake.openai_base_url, api_key="sk-fake"
    )
    result = asyncio.run(litellm.aembedding(**kwargs)) if is_async else litellm.embedding(**kwargs)
    assert result.usage.prompt_tokens == 9
    (span,) = telemetry.llm_spans()
    attrs = _attrs(span)
    assert span.name == "embeddings text-embedding-3-small"
    assert attrs[n.GEN_AI_USAGE_INPUT_TOKENS] == 9
    assert attrs[n.GEN_AI_USAGE_COST] == expected_cost("openai", "text-embedding-3-small", 9, 0)


@pytest.mark.parametrize("route", sorted(ROUTES))
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("status", "error"), [(400, litellm.BadRequestError), (429, litellm.RateLimitError)])
def test_errors_are_litellms_own(
    telemetry: Telemetry, fake: Any, route: str, is_async: bool, status: int, error: type[Exception]
) -> None:
    fake.enqueue(Reply.error(status, message="nope", retry_after=None))
    kwargs = _kwargs(fake, route, stream=False)
    with pytest.raises(error) as info:
        asyncio.run(_acall(kwargs, "json")) if is_async else _call(kwargs, "json")
    assert type(info.value) is error
    (span,) = telemetry.llm_spans()
    attrs = _attrs(span)
    assert attrs[n.ERROR_TYPE] == error.__name__ and attrs[n.OUTCOME] == "error"


def test_a_gateway_is_priced_as_who_bills_it(
    telemetry: Telemetry, fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """openai/ prefix, but the base URL is a Groq gateway (named by the user's map): priced as
    Groq; litellm's own figure (as OpenAI's model, which it does not know) is kept apart."""
    monkeypatch.setenv(n.ENV_PROVIDERS, f'{{"127.0.0.1:{fake.port}": "groq"}}')
    fake.enqueue(Reply.ok(input_tokens=1000, output_tokens=200, model="llama-3.3-70b-versatile"))
    result = litellm.completion(
        model="openai/llama-3.3-70b-versatile", messages=MSGS, api_base=fake.openai_base_url, api_key="k"
    )
    (span,) = telemetry.llm_spans()
    attrs = _attrs(span)
    assert attrs[n.GEN_AI_PROVIDER_NAME] == "groq"
    cost = expected_cost("groq", "llama-3.3-70b-versatile", 1000, 200)
    assert attrs[n.GEN_AI_USAGE_COST] == cost
    reported = result._hidden_params.get("response_cost")
    assert reported != cost
    assert attrs.get(n.COST_REPORTED) == (None if reported is None else float(reported))


def test_an_sdk_litellm_drives_records_nothing_itself(telemetry: Telemetry, fake: Any) -> None:
    """A litellm custom provider that calls the (instrumented) openai SDK: still one span."""
    import openai
    from litellm import CustomLLM
    from litellm.types.utils import ModelResponse

    class ViaOpenAI(CustomLLM):  # type: ignore[misc]
        def completion(self, *args: Any, **kwargs: Any) -> ModelResponse:
            client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
            r = client.chat.completions.create(model="gpt-4o", messages=kwargs["messages"])
            return ModelResponse(
                id=r.id,
                model=r.model,
                choices=[{"message": {"role": "assistant", "content": "hi"}}],
                usage=r.usage.model_dump(),
            )

    litellm.custom_provider_map = [{"provider": "via-openai", "custom_handler": ViaOpenAI()}]
    try:
        fake.enqueue(Reply.ok(input_tokens=500, output_tokens=50, model="gpt-4o"))
        litellm.completion(model="via-openai/gpt-4o", messages=MSGS)
    finally:
        litellm.custom_provider_map = []
    (span,) = telemetry.llm_spans()
    attrs = _attrs(span)
    assert attrs[n.GEN_AI_USAGE_INPUT_TOKENS] == 500
    assert telemetry.total(n.M_CALLS) == 1


def test_uninstrument_stops_recording(telemetry: Telemetry, fake: Any) -> None:
    import otel_tokens

    otel_tokens.uninstrument()
    litellm.completion(**_kwargs(fake, "openai", stream=False))
    assert telemetry.llm_spans() == []


def test_an_unknown_model_gives_tokens_and_no_cost(telemetry: Telemetry, fake: Any) -> None:
    fake.enqueue(Reply.ok(input_tokens=10, output_tokens=5, model="gpt-from-the-future"))
    litellm.completion(
        model="openai/gpt-from-the-future", messages=MSGS, api_base=fake.openai_base_url, api_key="k"
    )
    (span,) = telemetry.llm_spans()
    attrs = _attrs(span)
    assert attrs[n.GEN_AI_USAGE_INPUT_TOKENS] == 10 and attrs[n.COST_STATUS] == "unpriced"
    assert n.GEN_AI_USAGE_COST not in attrs
