"""Must-haves for every adapter: telemetry failures never change the call, uninstrument stops
recording, instrumenting twice never doubles anything."""

from __future__ import annotations

import sys
from typing import Any

import anthropic
import openai
import pytest

import otel_tokens
from otel_tokens import guard
from otel_tokens import names as n
from otel_tokens.fakellm import Reply
from otel_tokens.instrumentation import core
from otel_tokens.instrumentation.instrumentor import AnthropicInstrumentor, OpenAIInstrumentor
from tests.conftest import Telemetry

MSGS = [{"role": "user", "content": "hi"}]


def _openai(fake: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-x", max_retries=0)


def _anthropic(fake: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="sk-ant-x", max_retries=0)


def test_instrument_twice_records_once(telemetry: Telemetry, fake: Any) -> None:
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    OpenAIInstrumentor().instrument()
    _openai(fake).chat.completions.create(model="gpt-4o", messages=MSGS)
    assert len(telemetry.llm_spans()) == 1
    assert telemetry.total(n.M_CALLS) == 1


def test_uninstrument_stops_recording(telemetry: Telemetry, fake: Any) -> None:
    original = openai.resources.chat.completions.Completions.create
    assert hasattr(original, "__otel_tokens_original__")
    otel_tokens.uninstrument()
    assert not hasattr(openai.resources.chat.completions.Completions.create, "__otel_tokens_original__")
    assert not OpenAIInstrumentor().is_instrumented_by_opentelemetry
    assert not AnthropicInstrumentor().is_instrumented_by_opentelemetry
    _openai(fake).chat.completions.create(model="gpt-4o", messages=MSGS)
    _anthropic(fake).messages.create(model="claude-sonnet-4-5", max_tokens=5, messages=MSGS)
    assert telemetry.llm_spans() == []


class _Boom(Exception):
    pass


@pytest.mark.parametrize("where", ["start", "finish", "extract"])
@pytest.mark.parametrize("stream", [False, True])
def test_telemetry_failure_never_changes_the_call(
    telemetry: Telemetry, fake: Any, monkeypatch: pytest.MonkeyPatch, where: str, stream: bool, caplog: Any
) -> None:
    """Our suite re-raises internal errors; switch that off to see what a user sees."""
    monkeypatch.delenv(n.ENV_RAISE_INTERNAL_ERRORS)
    guard._reported.clear()

    def boom(*_a: Any, **_k: Any) -> Any:
        raise _Boom("telemetry bug")

    from otel_tokens.instrumentation.adapters import openai as oa
    from otel_tokens.telemetry.recorder import Call, Recorder

    if where == "start":
        monkeypatch.setattr(Recorder, "start", boom)
    elif where == "finish":
        monkeypatch.setattr(Call, "finish", boom)
    else:
        monkeypatch.setattr(oa.ChatStreamObserver, "observe", boom)
        monkeypatch.setattr(core, "_finish_response", lambda *a: boom())
    fake.enqueue(Reply.ok(input_tokens=30, output_tokens=4, text="unchanged", chunks=3))
    client = _openai(fake)
    if stream:
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o", messages=MSGS, stream=True, stream_options={"include_usage": True}
            )
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text == "unchanged"
    else:
        result = client.chat.completions.create(model="gpt-4o", messages=MSGS)
        assert result.choices[0].message.content == "unchanged"
        assert result.usage.prompt_tokens == 30
    warnings = [r for r in caplog.records if "telemetry degraded" in r.getMessage()]
    assert len(warnings) <= 2  # logged once per site, never per call


def test_internal_errors_reraise_only_under_the_explicit_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(_Boom):
        guard.internal_error("test", _Boom("x"))
    # a user's own test suite or eval harness imports pytest; that alone must not re-raise
    monkeypatch.delenv(n.ENV_RAISE_INTERNAL_ERRORS)
    assert "pytest" in sys.modules
    guard.internal_error("test", _Boom("x"))


def test_sdk_exceptions_are_the_sdks_own(telemetry: Telemetry, fake: Any) -> None:
    fake.enqueue(Reply.error(429, retry_after=0.0))
    with pytest.raises(openai.RateLimitError) as info:
        _openai(fake).chat.completions.create(model="gpt-4o", messages=MSGS)
    assert info.value.status_code == 429
    (span,) = telemetry.llm_spans()
    assert dict(span.attributes or {})[n.ERROR_TYPE] == "RateLimitError"


def test_the_switch_is_the_one_named_in_names() -> None:
    assert guard.SWITCH == n.ENV_RAISE_INTERNAL_ERRORS
