"""Replay every real recorded response the covered SDKs can read (OpenAI, Anthropic, and
DeepSeek's OpenAI-compatible API, as DeepSeek) through the real SDK and the instrumentation;
assert the recorded tokens and the exact cost.

The recordings live in ../shared/real-responses (never copied here). Expected token counts
come from ``expected_usage.json`` (the provider's raw usage), normalised here by the rules
of the record (Anthropic input adds cache read + write). The expected cost is an oracle that
shares nothing with our extraction: ``genai_prices.extract_usage`` over the recorded response
body (the final chunk / ``response.completed`` / Anthropic's merged stream usage), with the
provider and API flavour, then ``calc_price`` with the body's ``service_tier``; Responses'
``web_search_call`` items, which genai-prices' extractor does not count, are added here.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import genai_prices
import openai
import pytest

from otel_tokens import names as n
from otel_tokens.fakellm.cassettes import load_cassette
from tests.conftest import SHARED, Telemetry, needs_shared

ROOT = SHARED / "real-responses"
EXPECTED: dict[str, Any] = json.loads((ROOT / "expected_usage.json").read_text()) if ROOT.exists() else {}

CASES = [
    (name, it)
    for name, entry in sorted(EXPECTED.items())
    if name.startswith(("openai/", "anthropic/", "openai-compatible/deepseek"))
    for it in entry["interactions"]
    if "/files" not in it["uri"]
]


def _expected_tokens(provider: str, usage_block: dict[str, Any]) -> dict[str, int] | None:
    if provider == "openai":
        u = (
            usage_block.get("usage")
            or usage_block.get("last_chunk.usage")
            or usage_block.get("response.completed.usage")
        )
        if u is None or "error" in usage_block:
            return None
        if "prompt_tokens" in u:
            inp, out = u["prompt_tokens"], u.get("completion_tokens", 0)
            det_in, det_out = u.get("prompt_tokens_details") or {}, u.get("completion_tokens_details") or {}
        else:
            inp, out = u["input_tokens"], u["output_tokens"]
            det_in, det_out = u.get("input_tokens_details") or {}, u.get("output_tokens_details") or {}
        return {
            n.GEN_AI_USAGE_INPUT_TOKENS: inp,
            n.GEN_AI_USAGE_OUTPUT_TOKENS: out,
            n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: det_in.get("cached_tokens", 0),
            n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: det_in.get("cache_write_tokens", 0),
            n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: det_out.get("reasoning_tokens", 0),
        }
    if "error" in usage_block:
        return None
    u = dict(usage_block.get("usage") or usage_block["message_start.usage"])
    u.update({k: v for k, v in (usage_block.get("message_delta.usage") or {}).items() if v is not None})
    cr, cw = u.get("cache_read_input_tokens") or 0, u.get("cache_creation_input_tokens") or 0
    return {
        n.GEN_AI_USAGE_INPUT_TOKENS: u["input_tokens"] + cr + cw,
        n.GEN_AI_USAGE_OUTPUT_TOKENS: u["output_tokens"],
        n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: cr,
        n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: cw,
        n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: (u.get("output_tokens_details") or {}).get(
            "thinking_tokens", 0
        ),
    }


def _events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for line in raw.decode("utf-8").splitlines():
        if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
            out.append(json.loads(line[5:]))
    return out


def _final_body(raw: bytes, sse: bool, provider: str) -> dict[str, Any]:
    """The response as a non-streamed body, read from the recorded wire bytes."""
    if not sse:
        body: dict[str, Any] = json.loads(raw)
        return body
    events = _events(raw)
    if provider == "anthropic":
        start = next(e["message"] for e in events if e.get("type") == "message_start")
        usage = dict(start["usage"])
        for e in events:
            if e.get("type") == "message_delta":
                usage.update({k: v for k, v in (e.get("usage") or {}).items() if v is not None})
        return {**start, "usage": usage}
    completed = [e["response"] for e in events if e.get("type") == "response.completed"]
    if completed:
        return dict(completed[-1])
    return dict(next(e for e in reversed(events) if e.get("usage")))


def _oracle(provider: str, it: dict[str, Any], body: dict[str, Any]) -> float | None:
    uri = it["uri"]
    flavor = (
        "embeddings"
        if "/embeddings" in uri
        else "responses"
        if "/responses" in uri
        else "default"
        if provider == "anthropic"
        else "chat"
    )
    try:
        extracted = genai_prices.extract_usage(body, provider_id=provider, api_flavor=flavor)
        if extracted.model is None:
            return None
    except LookupError:
        return None
    searches = sum(1 for item in body.get("output") or () if item.get("type") == "web_search_call")
    if searches:
        extracted.usage.web_searches = searches
    tier = body.get("service_tier") or (body.get("usage") or {}).get("service_tier")
    total = extracted.calc_price(price_context={"service_tier": tier} if tier else None).total_price
    return float(total)


def _call(fake: Any, provider: str, it: dict[str, Any], body: dict[str, Any]) -> None:
    model = body.get("model", it["model"])
    stream = bool(it["sse"])
    if provider in ("openai", "deepseek"):
        client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)
        if "/embeddings" in it["uri"]:
            client.embeddings.create(model=model, input=body.get("input", "x"))
            return
        if "/responses" in it["uri"]:
            result: Any = client.responses.create(model=model, input=body.get("input", "x"), stream=stream)
        else:
            kwargs: dict[str, Any] = {
                "model": model,
                "messages": body.get("messages") or [],
                "stream": stream,
            }
            if it.get("stream_options"):
                kwargs["stream_options"] = it["stream_options"]
            result = client.chat.completions.create(**kwargs)
        if stream:
            list(result)
        return
    aclient = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
    result = aclient.messages.create(
        model=model,
        max_tokens=body.get("max_tokens", 1024),
        messages=body.get("messages") or [],
        stream=stream,
    )
    if stream:
        list(result)


@needs_shared
@pytest.mark.parametrize(("name", "it"), CASES, ids=[f"{c[0]}#{c[1]['i']}" for c in CASES])
def test_replay(
    telemetry: Telemetry, fake: Any, monkeypatch: pytest.MonkeyPatch, name: str, it: dict[str, Any]
) -> None:
    provider = "deepseek" if "deepseek" in name else name.split("/")[0]
    if provider == "deepseek":  # the fake server stands in for api.deepseek.com
        host_port = fake.openai_base_url.split("//", 1)[1].split("/", 1)[0]
        monkeypatch.setenv(n.ENV_PROVIDERS, json.dumps({host_port: "deepseek"}))
    reply = load_cassette(ROOT / name)[it["i"]]
    body = (reply.recorded.json if reply.recorded else None) or {}
    fake.enqueue(reply)
    expected = _expected_tokens("anthropic" if provider == "anthropic" else "openai", it["usage"] or {})
    if expected is None:
        with pytest.raises((openai.APIStatusError, anthropic.APIStatusError)):
            _call(fake, provider, it, body)
        (span,) = telemetry.llm_spans()
        assert span.status.status_code.name == "ERROR"
        assert dict(span.attributes or {})[n.OUTCOME] == "error"
        return
    _call(fake, provider, it, body)
    (span,) = telemetry.llm_spans()
    attrs = dict(span.attributes or {})
    got = {k: attrs.get(k, 0) for k in expected}
    assert got == expected
    assert attrs[n.GEN_AI_PROVIDER_NAME] == provider
    cost = _oracle(provider, it, _final_body(reply.body, bool(it["sse"]), provider))
    if cost is None:
        assert attrs[n.COST_STATUS] == "unpriced" and n.GEN_AI_USAGE_COST not in attrs
    else:
        assert attrs[n.COST_STATUS] == "priced"
        assert attrs[n.GEN_AI_USAGE_COST] == pytest.approx(cost, abs=1e-9)
        assert telemetry.total(n.M_COST) == pytest.approx(cost, abs=1e-9)
        tier = _final_body(reply.body, bool(it["sse"]), provider).get("service_tier")
        if tier:
            assert attrs[n.SERVICE_TIER] == tier
