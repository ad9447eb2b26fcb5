"""Agent per-call log records -> CallRecord, from payloads as the real CLIs sent them, and tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from otel_tokens import names as n
from otel_tokens.agents.normalise import AgentCall, Normaliser
from otel_tokens.agents.otlp import LogRecord, decode_logs
from otel_tokens.record import Usage

RECORDED = Path(__file__).parent / "recorded"


def _calls(name: str, ctype: str) -> list[AgentCall]:
    logs = decode_logs((RECORDED / name).read_bytes(), ctype)
    return Normaliser().calls(logs)


def test_claude_code_recorded_protobuf() -> None:
    (call,) = _calls("claude_code-2.1.332-logs.pb", "application/x-protobuf")
    assert call.source == n.SOURCE_CLAUDE_CODE
    assert call.record.provider == "anthropic"
    assert call.record.request_model == "claude-sonnet-4-5"
    assert call.record.usage == Usage(9395, 16, 0, 0, 0)
    assert call.agent_cost_usd == pytest.approx(0.028425)
    assert call.duration_s == pytest.approx(0.018)
    assert call.session_id == "dfb69338-0129-477e-b355-29078e667181"
    assert call.record.response_id == "req_fake000000000001"


def test_codex_recorded_protobuf_mixed_types_and_duplicate_completed() -> None:
    (call,) = _calls("codex-0.171.0-logs.pb", "application/x-protobuf")  # 2 completed records, 1 call
    assert call.source == n.SOURCE_CODEX
    assert (call.record.provider, call.record.request_model) == ("openai", "gpt-5.1-codex")
    assert call.record.usage == Usage(5029, 16, 0, 0, 0)  # counts arrived as strings
    assert call.duration_s == pytest.approx(0.009)  # from the codex.api_request record before it
    assert call.agent_cost_usd is None


def test_gemini_cli_recorded_json() -> None:
    (call,) = _calls("gemini_cli-0.61.0-logs.json", "application/json")
    assert call.source == n.SOURCE_GEMINI_CLI
    assert (call.record.provider, call.record.request_model) == ("gcp.gemini", "gemini-2.5-pro")
    assert call.record.usage == Usage(7015, 16, 0, 0, 0)
    assert call.duration_s == pytest.approx(0.048)


def _log(service: str, **attrs: object) -> LogRecord:
    return LogRecord(resource={"service.name": service}, attributes=attrs, body=None, time_ns=5)  # type: ignore[arg-type]


# (service, attributes, expected usage): input includes cache reads+writes, output reasoning
# fmt: off
CASES = [
    ("claude-code", {"event.name": "api_request", "model": "m", "input_tokens": 2000,
                     "cache_read_tokens": 6000, "cache_creation_tokens": 2000, "output_tokens": 500},
     Usage(10000, 500, 6000, 2000, 0)),
    ("claude-code", {"event.name": "api_request", "model": "m", "input_tokens": "7", "output_tokens": "3"},
     Usage(7, 3, 0, 0, 0)),
    ("claude-code", {"event.name": "api_request", "model": "m", "output_tokens": 4}, Usage(0, 4, 0, 0, 0)),
    ("codex_exec", {"event.name": "codex.sse_event", "event.kind": "response.completed", "model": "m",
                    "input_token_count": "1000", "cached_token_count": 600, "cache_write_token_count": 100,
                    "output_token_count": "300", "reasoning_token_count": 200},
     Usage(1000, 300, 600, 100, 200)),
    ("codex_exec", {"event.name": "codex.sse_event", "event.kind": "response.completed", "model": "m",
                    "input_token_count": "10", "cached_token_count": 20, "output_token_count": "x"},
     Usage(20, 0, 20, 0, 0)),  # a provider breaking the subset rule: input raised to the cache
    ("gemini-cli", {"event.name": "gemini_cli.api_response", "model": "m", "input_token_count": 900,
                    "cached_content_token_count": 400, "output_token_count": 50, "thoughts_token_count": 70},
     Usage(900, 120, 400, 0, 70)),
]
# fmt: on


@pytest.mark.parametrize(("service", "attrs", "usage"), CASES)
def test_usage_table(service: str, attrs: dict[str, object], usage: Usage) -> None:
    (call,) = Normaliser().calls([_log(service, **attrs)])
    assert call.record.usage == usage
    assert call.record.usage_reported


@pytest.mark.parametrize(
    ("service", "attrs"),
    [
        ("claude-code", {"event.name": "user_prompt"}),
        ("claude-code", {"event.name": "api_request"}),  # no counts at all
        ("codex_exec", {"event.name": "codex.sse_event", "event.kind": "response.completed"}),
        (
            "codex_exec",
            {"event.name": "codex.sse_event", "event.kind": "response.created", "input_token_count": 1},
        ),
        ("gemini-cli", {"event.name": "gemini_cli.api_request", "input_token_count": 1}),
        ("something-else", {"event.name": "api_request"}),
    ],
)
def test_not_calls(service: str, attrs: dict[str, object]) -> None:
    assert Normaliser().calls([_log(service, **attrs)]) == []


def test_claude_on_bedrock_is_priced_as_bedrock() -> None:
    attrs = {"event.name": "api_request", "anthropic.provider": "bedrock", "model": "m", "input_tokens": 1}
    (call,) = Normaliser().calls([_log("claude-code", **attrs)])
    assert call.record.provider == n.PROVIDER_AWS_BEDROCK


def test_bad_payload_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not OTLP"):
        decode_logs(b"\xff\x00garbage", "application/x-protobuf")
    with pytest.raises(ValueError, match="not OTLP JSON"):
        decode_logs(b"[1,", "application/json")
