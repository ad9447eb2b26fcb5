"""The fake server's Gemini wire format, read back by the real google-genai SDK (no instrumentation)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google import genai
from google.genai import errors

from otel_tokens.fakellm import FakeLLM, Reply


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


@pytest.fixture
def gem(server: FakeLLM) -> genai.Client:
    server.reset()
    return genai.Client(
        api_key="k", http_options={"base_url": server.google_base_url, "retry_options": {"attempts": 1}}
    )


def test_json_usage_follows_the_wire_rules(server: FakeLLM, gem: genai.Client) -> None:
    server.enqueue(
        Reply.ok(1200, 300, cache_read=1024, reasoning=128, model="gemini-x", finish_reason="MAX_TOKENS")
    )
    r = gem.models.generate_content(model="gemini-2.5-flash", contents="hello")
    u = r.usage_metadata
    assert u is not None
    assert (u.prompt_token_count, u.cached_content_token_count) == (1200, 1024)
    assert (u.candidates_token_count, u.thoughts_token_count, u.total_token_count) == (172, 128, 1500)
    assert r.model_version == "gemini-x" and r.text == "hi"
    assert r.candidates and r.candidates[0].finish_reason == "MAX_TOKENS"
    assert server.requests[-1].path.endswith("/models/gemini-2.5-flash:generateContent")


def test_stream_chunks_carry_usage_so_far(server: FakeLLM, gem: genai.Client) -> None:
    server.enqueue(Reply.ok(10, 40, reasoning=10, text="abcdefgh", chunks=4))
    chunks = list(gem.models.generate_content_stream(model="gemini-2.5-flash", contents="hello"))
    assert "".join(c.text or "" for c in chunks) == "abcdefgh"
    counts: list[Any] = [c.usage_metadata.candidates_token_count for c in chunks if c.usage_metadata]
    assert counts == [6, 12, 18, 30]
    assert server.requests[-1].query == "alt=sse"


def test_usage_null_cut_malformed_and_errors(server: FakeLLM, gem: genai.Client) -> None:
    server.enqueue(Reply.usage_null())
    assert gem.models.generate_content(model="m", contents="x").usage_metadata is None
    server.enqueue(Reply.ok(10, 10, chunks=4, cut_after=1))
    with pytest.raises(Exception):  # noqa: B017 - whatever the transport raises on a cut stream
        list(gem.models.generate_content_stream(model="m", contents="x"))
    server.enqueue(Reply.malformed())
    with pytest.raises(ValueError):
        gem.models.generate_content(model="m", contents="x")
    server.enqueue(Reply.error(429, message="slow down"))
    with pytest.raises(errors.ClientError) as info:
        gem.models.generate_content(model="m", contents="x")
    assert info.value.code == 429 and info.value.status == "RESOURCE_EXHAUSTED"


def test_embeddings(server: FakeLLM, gem: genai.Client) -> None:
    server.enqueue(Reply.ok(7, 0))
    r = gem.models.embed_content(model="gemini-embedding-001", contents=["a", "b"])
    assert r.embeddings is not None and len(r.embeddings) == 2
    assert r.usage_metadata is not None and r.usage_metadata.prompt_token_count == 7
