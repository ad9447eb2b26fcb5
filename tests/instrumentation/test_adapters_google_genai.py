"""google-genai usage extraction as tables over the SDK's own response types (no patching)."""

from __future__ import annotations

from typing import Any

import pytest
from google.genai import types

from otel_tokens.instrumentation.adapters import google_genai as g
from otel_tokens.pricing.providers import ProviderResolver
from otel_tokens.record import CallRecord, Usage

BASE = CallRecord(provider="gcp.gemini", operation="chat", request_model="gemini-2.5-flash")


def response(usage: Any, reason: str | None = "STOP") -> types.GenerateContentResponse:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": "x"}]}}
    if reason:
        candidate["finish_reason"] = reason
    body: dict[str, Any] = {
        "candidates": [candidate],
        "model_version": "gemini-2.5-flash",
        "response_id": "r1",
    }
    if usage != "absent":
        body["usage_metadata"] = usage
    return types.GenerateContentResponse.model_validate(body)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param(
            {
                "prompt_token_count": 3520,
                "cached_content_token_count": 3512,
                "candidates_token_count": 2,
                "thoughts_token_count": 42,
                "total_token_count": 3564,
            },
            Usage(3520, 44, 3512, 0, 42),
            id="cache-and-thoughts",
        ),
        pytest.param(
            {
                "prompt_token_count": 32,
                "candidates_token_count": 477,
                "thoughts_token_count": 240,
                "tool_use_prompt_token_count": 764,
            },
            Usage(796, 717, 0, 0, 240, details=(("input_tool_tokens", 764),)),
            id="tool-use-prompt",
        ),
        pytest.param({"prompt_token_count": 8, "candidates_token_count": 433}, Usage(8, 433), id="partial"),
        pytest.param(
            {"prompt_token_count": 0, "candidates_token_count": 0, "thoughts_token_count": 0},
            Usage(0, 0),
            id="zero",
        ),
        pytest.param({"traffic_type": "ON_DEMAND"}, None, id="no-counts"),
        pytest.param(None, None, id="null"),
        pytest.param("absent", None, id="absent"),
        pytest.param(
            {"prompt_token_count": 10, "cached_content_token_count": 50, "candidates_token_count": 1},
            Usage(50, 1, 50, 0, 0),
            id="cache-above-prompt-clamped",
        ),
    ],
)
def test_content_usage(usage: Any, expected: Usage | None) -> None:
    record = g.content_record(response(usage), BASE)
    assert record.response_model == "gemini-2.5-flash" and record.response_id == "r1"
    assert record.finish_reasons == ("stop",)
    assert record.usage_reported is (expected is not None)
    assert record.usage == (expected or Usage())


def test_stream_latest_count_wins_and_cut_keeps_what_was_seen() -> None:
    chunks = [
        response({"traffic_type": "ON_DEMAND"}, reason=None),
        response({"prompt_token_count": 8, "candidates_token_count": 3, "thoughts_token_count": 100}, None),
        response({"prompt_token_count": 8, "candidates_token_count": 388, "thoughts_token_count": 2193}),
    ]
    full = g.ContentStreamObserver()
    for chunk in chunks:
        full.observe(chunk)
    record = full.record(BASE, complete=True)
    assert record.usage == Usage(8, 2581, 0, 0, 2193) and record.finish_reasons == ("stop",)
    cut = g.ContentStreamObserver()
    for chunk in chunks[:2]:
        cut.observe(chunk)
    record = cut.record(BASE, complete=False)
    assert record.usage == Usage(8, 103, 0, 0, 100) and record.finish_reasons == ()
    empty = g.ContentStreamObserver()
    empty.observe(chunks[0])
    assert not empty.record(BASE, complete=False).usage_reported


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {"embeddings": [{"values": [1.0]}], "usage_metadata": {"prompt_token_count": 9}}, 9, id="gemini"
        ),
        pytest.param(
            {
                "embeddings": [
                    {"values": [1.0], "statistics": {"token_count": 4.0}},
                    {"values": [1.0], "statistics": {"token_count": 3.0}},
                ]
            },
            7,
            id="vertex-statistics",
        ),
        pytest.param({"embeddings": [{"values": [1.0]}]}, None, id="none"),
    ],
)
def test_embed_usage(body: dict[str, Any], expected: int | None) -> None:
    record = g.embed_record(types.EmbedContentResponse.model_validate(body), BASE)
    assert record.usage_reported is (expected is not None)
    assert record.usage == (Usage(expected, 0) if expected is not None else Usage())


@pytest.mark.parametrize(
    ("vertexai", "base_url", "expected"),
    [
        (
            False,
            "https://generativelanguage.googleapis.com/",
            ("gcp.gemini", ("generativelanguage.googleapis.com", 443)),
        ),
        (
            True,
            "https://us-central1-aiplatform.googleapis.com/",
            ("gcp.vertex_ai", ("us-central1-aiplatform.googleapis.com", 443)),
        ),
        (False, "http://127.0.0.1:8080/", ("gcp.gemini", ("127.0.0.1", 8080))),
        (False, None, ("gcp.gemini", None)),
    ],
)
def test_resolve(vertexai: bool, base_url: str | None, expected: Any) -> None:
    class Client:
        vertexai = False
        _http_options = types.HttpOptions(base_url=base_url)

    class Models:
        _api_client = Client()

    Client.vertexai = vertexai
    assert g.resolve(Models(), ProviderResolver(read_env=False)) == expected


def test_resolve_follows_the_users_provider_map() -> None:
    class Client:
        vertexai = False
        _http_options = types.HttpOptions(base_url="https://gemini-gw.internal:8443/")

    class Models:
        _api_client = Client()

    resolver = ProviderResolver({"gemini-gw.internal:8443": "gcp.vertex_ai"}, read_env=False)
    assert g.resolve(Models(), resolver) == ("gcp.vertex_ai", ("gemini-gw.internal", 8443))


def test_modalities_become_genai_prices_keys() -> None:
    usage = {
        "prompt_token_count": 17713,
        "cached_content_token_count": 17379,
        "candidates_token_count": 68,
        "thoughts_token_count": 821,
        "prompt_tokens_details": [
            {"modality": "TEXT", "token_count": 16},
            {"modality": "VIDEO", "token_count": 15780},
            {"modality": "AUDIO", "token_count": 1917},
        ],
        "cache_tokens_details": [
            {"modality": "AUDIO", "token_count": 1881},
            {"modality": "TEXT", "token_count": 15},
            {"modality": "VIDEO", "token_count": 15483},
        ],
        "candidates_tokens_details": [{"modality": "IMAGE", "token_count": 60}],
        "tool_use_prompt_tokens_details": [{"modality": "DOCUMENT", "token_count": 0}],
    }
    got = g.content_record(response(usage), BASE).usage
    assert (got.input_tokens, got.output_tokens, got.cache_read_tokens, got.reasoning_tokens) == (
        17713,
        889,
        17379,
        821,
    )
    assert (got.input_audio_tokens, got.output_image_tokens, got.input_image_tokens) == (1917, 60, 0)
    assert dict(got.details) == {
        "input_text_tokens": 16,
        "input_video_tokens": 15780,
        "cache_audio_read_tokens": 1881,
        "cache_text_read_tokens": 15,
        "cache_video_read_tokens": 15483,
    }
