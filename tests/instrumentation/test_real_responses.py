"""Replay every real recorded OpenAI and Anthropic response through the real SDK and the
instrumentation; assert the recorded tokens and the exact cost.

The recordings live in ../shared/real-responses (never copied here). Expected token counts
come from ``expected_usage.json`` (the provider's raw usage), normalised here by the rules
of the record (Anthropic input adds cache read + write); expected costs come straight from
``genai_prices.calc_price``.
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
    if name.startswith(("openai/", "anthropic/"))
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


def _expected_cost(provider: str, model: str, t: dict[str, int]) -> float | None:
    usage = genai_prices.Usage(
        input_tokens=t[n.GEN_AI_USAGE_INPUT_TOKENS],
        output_tokens=t[n.GEN_AI_USAGE_OUTPUT_TOKENS],
        cache_read_tokens=t[n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] or None,
        cache_write_tokens=t[n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS] or None,
    )
    try:
        return float(genai_prices.calc_price(usage, model, provider_id=provider).total_price)
    except LookupError:
        return None


def _call(fake: Any, provider: str, it: dict[str, Any], body: dict[str, Any]) -> None:
    model = body.get("model", it["model"])
    stream = bool(it["sse"])
    if provider == "openai":
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
def test_replay(telemetry: Telemetry, fake: Any, name: str, it: dict[str, Any]) -> None:
    provider = name.split("/")[0]
    reply = load_cassette(ROOT / name)[it["i"]]
    body = (reply.recorded.json if reply.recorded else None) or {}
    fake.enqueue(reply)
    expected = _expected_tokens(provider, it["usage"] or {})
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
    model = attrs.get(n.GEN_AI_RESPONSE_MODEL) or attrs[n.GEN_AI_REQUEST_MODEL]
    cost = _expected_cost(provider, str(model), expected)
    if cost is None:
        assert attrs[n.COST_STATUS] == "unpriced" and n.GEN_AI_USAGE_COST not in attrs
    else:
        assert attrs[n.COST_STATUS] == "priced"
        assert attrs[n.GEN_AI_USAGE_COST] == cost
        assert telemetry.total(n.M_COST) == cost
