"""Replay every recorded Gemini API and Vertex AI response through the real google-genai SDK.

The recordings live in ../shared/real-responses/google (never copied here). The oracle is
genai-prices reading the raw response body (``extract_usage``, the last chunk of a stream) and
pricing it (``calc_price``): tokens and cost must match it exactly.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import genai_prices
import pytest

from otel_tokens import names as n
from otel_tokens.fakellm.cassettes import load_cassette
from tests.conftest import SHARED, Telemetry, needs_shared
from tests.instrumentation.test_core_google_genai import client

ROOT = SHARED / "real-responses" / "google"
CASES = [
    (path.name, i)
    for path in sorted(ROOT.glob("*.yaml"))
    for i, reply in enumerate(load_cassette(path))
    if reply.recorded is not None and "enerateContent" in reply.recorded.uri
]


def _last_body(body: bytes) -> dict[str, Any]:
    text = body.decode()
    if text.lstrip().startswith("data:"):
        chunks = [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:")]
        return chunks[-1]  # type: ignore[no-any-return]
    return json.loads(text)  # type: ignore[no-any-return]


def _oracle(body: dict[str, Any], model: str) -> tuple[dict[str, int], float]:
    usage = genai_prices.extract_usage(body, provider_id="google").usage
    tokens = {
        n.GEN_AI_USAGE_INPUT_TOKENS: usage.input_tokens or 0,
        n.GEN_AI_USAGE_OUTPUT_TOKENS: usage.output_tokens or 0,
        n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: usage.cache_read_tokens or 0,
        n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: usage.cache_write_tokens or 0,
        n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: usage.output_reasoning_tokens or 0,
    }
    return tokens, float(genai_prices.calc_price(usage, model, provider_id="google").total_price)


@needs_shared
@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("name", "index"), CASES, ids=[f"{c[0]}#{c[1]}" for c in CASES])
def test_replay(telemetry: Telemetry, fake: Any, name: str, index: int, is_async: bool) -> None:
    reply = load_cassette(Path(ROOT / name))[index]
    assert reply.recorded is not None
    uri, body = reply.recorded.uri, reply.recorded.json or {}
    model = uri.rsplit("/models/", 1)[1].split(":", 1)[0]
    stream = ":streamGenerateContent" in uri
    fake.enqueue(reply)
    c = client(fake, vertex="aiplatform" in uri)
    contents = body.get("contents") or "hello"

    async def acall() -> None:
        if stream:
            async for _ in await c.aio.models.generate_content_stream(model=model, contents=contents):
                pass
        else:
            await c.aio.models.generate_content(model=model, contents=contents)

    if is_async:
        asyncio.run(acall())
    elif stream:
        list(c.models.generate_content_stream(model=model, contents=contents))
    else:
        c.models.generate_content(model=model, contents=contents)

    (span,) = telemetry.llm_spans()
    attrs = dict(span.attributes or {})
    raw = _last_body(reply.body)
    tokens, cost = _oracle(raw, str(attrs[n.GEN_AI_RESPONSE_MODEL]))
    assert {k: attrs.get(k, 0) for k in tokens} == tokens
    assert attrs[n.GEN_AI_PROVIDER_NAME] == ("gcp.vertex_ai" if "aiplatform" in uri else "gcp.gemini")
    assert attrs[n.GEN_AI_RESPONSE_ID] == raw["responseId"]
    assert attrs[n.COST_STATUS] == "priced"
    assert attrs[n.GEN_AI_USAGE_COST] == cost
    assert telemetry.total(n.M_COST) == cost
