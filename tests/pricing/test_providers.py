"""The provider resolver: the base URL (and the user's map) decides who bills a call."""

from __future__ import annotations

import json
import logging
from typing import Any

import openai
import pytest
from genai_prices.data_snapshot import get_snapshot

from otel_tokens import names as n
from otel_tokens.fakellm import Reply
from otel_tokens.pricing.pricer import reset_default_pricer
from otel_tokens.pricing.providers import (
    ProviderResolver,
    parse_provider_map,
    price_provider_id,
    provider_name,
)
from tests.conftest import Telemetry

MSGS = [{"role": "user", "content": "hi"}]

# (SDK, base URL as the SDK sees it, gen_ai.provider.name, genai-prices id)
URLS = [
    ("openai", "https://api.openai.com/v1/", "openai", "openai"),
    ("anthropic", "https://api.anthropic.com", "anthropic", "anthropic"),
    ("openai", "https://api.groq.com/openai/v1", "groq", "groq"),
    ("openai", "https://api.deepseek.com", "deepseek", "deepseek"),
    ("openai", "https://api.deepseek.com/v1", "deepseek", "deepseek"),
    ("anthropic", "https://api.deepseek.com/anthropic", "deepseek", "deepseek"),
    ("openai", "https://openrouter.ai/api/v1", "openrouter", "openrouter"),
    ("openai", "https://generativelanguage.googleapis.com/v1beta/openai/", "gcp.gemini", "google"),
    (
        "openai",
        "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/endpoints/openapi",
        "gcp.vertex_ai",
        "google",
    ),
    ("openai", "https://my-res.openai.azure.com/openai/deployments/prod-gpt4o/", "azure.ai.openai", "azure"),
    ("openai", "https://my-res.cognitiveservices.azure.com/openai/v1/", "azure.ai.openai", "azure"),
    ("openai", "https://my-proj.services.ai.azure.com/models", "azure.ai.inference", "azure"),
    ("openai", "https://api.x.ai/v1", "x_ai", "x-ai"),
    ("openai", "https://api.mistral.ai/v1", "mistral_ai", "mistral"),
    ("openai", "https://api.together.xyz/v1", "together", "together"),
    ("openai", "https://api.fireworks.ai/inference/v1", "fireworks", "fireworks"),
    ("openai", "https://api.cerebras.ai/v1", "cerebras", "cerebras"),
    ("openai", "https://api.moonshot.ai/v1", "moonshot_ai", "moonshotai"),
    ("openai", "https://router.huggingface.co/groq/openai/v1", "huggingface_groq", "huggingface_groq"),
    ("anthropic", "https://bedrock-runtime.us-east-1.amazonaws.com", "aws.bedrock", "aws"),
    ("openai", "http://127.0.0.1:8080/v1", "openai", "openai"),
    ("anthropic", "http://localhost:4000", "anthropic", "anthropic"),
    ("openai", "https://llm-gw.internal:8443/v1", "openai", "openai"),  # unknown: the SDK's provider
]


def _split(url: str) -> tuple[str, int, str]:
    import httpx

    u = httpx.URL(url)
    return u.host, u.port or (443 if u.scheme == "https" else 80), u.path


@pytest.mark.parametrize(("sdk", "url", "name", "price_id"), URLS, ids=[u[1] for u in URLS])
def test_resolve_from_base_url(sdk: str, url: str, name: str, price_id: str) -> None:
    host, port, path = _split(url)
    got = ProviderResolver(read_env=False).resolve(sdk, host, port, path)
    assert got == name
    assert price_provider_id(got) == price_id
    # the genai-prices id is a provider genai-prices knows (so calls are priced as it)
    assert any(p.id == price_id for p in get_snapshot().providers)


def test_user_map_wins_host_port_before_host(monkeypatch: pytest.MonkeyPatch) -> None:
    r = ProviderResolver({"llm-gw.internal": "openrouter", "api.openai.com": "azure"})
    monkeypatch.setenv(n.ENV_PROVIDERS, json.dumps({"llm-gw.internal:8443": "groq"}))
    assert r.resolve("openai", "llm-gw.internal", 8443, "/v1") == "groq"  # env, host:port
    assert r.resolve("openai", "LLM-GW.internal", 9000, "/v1") == "openrouter"  # file, host
    assert r.resolve("openai", "api.openai.com", 443) == "azure.ai.openai"  # the user beats detection
    monkeypatch.setenv(n.ENV_PROVIDERS, json.dumps({"llm-gw.internal": "x-ai"}))
    assert r.resolve("openai", "llm-gw.internal", 8443, "/v1") == "x_ai"  # the env is re-read


def test_bad_env_map_is_ignored_with_one_clear_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(n.ENV_PROVIDERS, "{not json")
    with caplog.at_level(logging.WARNING, logger="otel_tokens"):
        assert ProviderResolver().resolve("openai", "api.groq.com", 443) == "groq"
        assert ProviderResolver().resolve("openai", "api.groq.com", 443) == "groq"
    (msg,) = [r.getMessage() for r in caplog.records if n.ENV_PROVIDERS in r.getMessage()]
    assert "not valid JSON" in msg and "fix:" in msg


def test_parse_provider_map_names_each_problem() -> None:
    got, errors = parse_provider_map(
        {"https://gw/v1": "groq", "gw:1": "", "GW:2": "Groq", "ok": 3}, "prices.yaml:4"
    )
    assert got == {"gw:2": "groq"}
    assert len(errors) == 3 and all(e.startswith("prices.yaml:4: ") and "fix:" in e for e in errors)
    (error,) = parse_provider_map(["x"], "E")[1]
    example = '{"llm-gw.internal:8443": "groq"}'
    assert error == f"E: the provider map must be a JSON object; it is ignored (fix: e.g. {example})"


def test_names_round_trip() -> None:
    for pid in ("openai", "anthropic", "google", "aws", "azure", "x-ai", "mistral", "groq", "openrouter"):
        assert price_provider_id(provider_name(pid)) == pid


@pytest.fixture
def groq_gateway(monkeypatch: pytest.MonkeyPatch, fake: Any) -> Any:
    host_port = fake.openai_base_url.split("//", 1)[1].split("/", 1)[0]
    monkeypatch.setenv(n.ENV_PROVIDERS, json.dumps({host_port: "groq"}))
    reset_default_pricer()
    yield fake
    reset_default_pricer()


def test_openai_sdk_at_a_mapped_gateway_is_groq(telemetry: Telemetry, groq_gateway: Any) -> None:
    """The real openai SDK over HTTP: the span says groq and the call is priced as Groq's."""
    import genai_prices

    fake = groq_gateway
    fake.enqueue(Reply.ok(input_tokens=1000, output_tokens=200, model="llama-3.3-70b-versatile"))
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="k", max_retries=0)
    client.chat.completions.create(model="llama-3.3-70b-versatile", messages=MSGS)
    (span,) = telemetry.llm_spans()
    attrs = dict(span.attributes or {})
    assert attrs[n.GEN_AI_PROVIDER_NAME] == "groq"
    body = {"model": "llama-3.3-70b-versatile", "usage": {"prompt_tokens": 1000, "completion_tokens": 200}}
    oracle = genai_prices.extract_usage(body, provider_id="groq").calc_price().total_price
    assert attrs[n.GEN_AI_USAGE_COST] == pytest.approx(float(oracle), abs=1e-9)
    metric = telemetry.total(n.M_COST, **{n.GEN_AI_PROVIDER_NAME: "groq"})
    assert metric == pytest.approx(float(oracle), abs=1e-9)
