"""The embedded receiver over real HTTP: recorded agent payloads become LLM spans of the task
with our cost, the agent's own figure apart; unknown models are unpriced; bad bodies get 400."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import otel_tokens
from otel_tokens import names as n
from otel_tokens.agents.receiver import AgentReceiver
from otel_tokens.telemetry.recorder import Recorder
from tests.conftest import expected_cost

RECORDED = Path(__file__).parent / "recorded"


def _post(url: str, body: bytes, ctype: str, encoding: str | None = None) -> int:
    headers = {"content-type": ctype, **({"content-encoding": encoding} if encoding else {})}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _claude_log(model: str) -> bytes:
    attrs = {
        "event.name": "api_request", "model": model, "input_tokens": 2000, "cache_read_tokens": 6000,
        "cache_creation_tokens": 2000, "output_tokens": 500, "cost_usd": 0.0292, "duration_ms": 250,
    }  # fmt: skip

    def value(v: object) -> dict[str, Any]:
        return (
            {"intValue": str(v)}
            if isinstance(v, int)
            else {"doubleValue": v}
            if isinstance(v, float)
            else {"stringValue": v}
        )

    record = {
        "timeUnixNano": "1796276793575000000",
        "attributes": [{"key": k, "value": value(v)} for k, v in attrs.items()],
    }
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "claude-code"}}]}
    return json.dumps(
        {"resourceLogs": [{"resource": resource, "scopeLogs": [{"logRecords": [record]}]}]}
    ).encode()


@pytest.mark.parametrize(("model", "priced"), [("claude-sonnet-4-5", True), ("my-gateway-model", False)])
def test_calls_are_spans_of_the_task_with_our_cost(telemetry: Any, model: str, priced: bool) -> None:
    recorder = Recorder(telemetry.tracer_provider, telemetry.meter_provider)
    with otel_tokens.task("fix", size="M", tracer_provider=telemetry.tracer_provider,
                          meter_provider=telemetry.meter_provider):  # fmt: skip
        with AgentReceiver(recorder) as receiver:
            status = _post(
                receiver.endpoint + "/v1/logs", gzip.compress(_claude_log(model)), "application/json", "gzip"
            )
    assert status == 200
    (span,) = telemetry.llm_spans()
    a = dict(span.attributes or {})
    (task_span,) = [s for s in telemetry.spans() if s.name.startswith("invoke_workflow")]
    assert span.parent is not None and span.parent.span_id == task_span.context.span_id
    assert a[n.SOURCE] == n.SOURCE_CLAUDE_CODE
    assert a[n.TASK_NAME] == "fix"
    assert (a[n.GEN_AI_USAGE_INPUT_TOKENS], a[n.GEN_AI_USAGE_OUTPUT_TOKENS]) == (10_000, 500)
    assert a[n.AGENT_COST_USD] == 0.0292  # the agent's guess, kept apart
    assert span.end_time is not None and span.start_time is not None
    assert span.end_time - span.start_time == 250_000_000
    if priced:
        assert a[n.COST_STATUS] == "priced"
        assert a[n.GEN_AI_USAGE_COST] == pytest.approx(
            expected_cost("anthropic", model, 10_000, 500, 6000, 2000), rel=1e-12
        )
    else:
        assert a[n.COST_STATUS] == "unpriced"
        assert n.GEN_AI_USAGE_COST not in a


@pytest.mark.parametrize(
    ("path", "body", "ctype", "status"),
    [
        ("/v1/logs", b"\xff\x00garbage", "application/x-protobuf", 400),
        ("/v1/logs", b"[1,", "application/json", 400),
        ("/v1/metrics", b"", "application/x-protobuf", 200),
        ("/v1/traces", b"{}", "application/json", 200),
        ("/elsewhere", b"", "application/json", 404),
    ],
)
def test_other_requests(telemetry: Any, path: str, body: bytes, ctype: str, status: int) -> None:
    with AgentReceiver(Recorder(telemetry.tracer_provider, telemetry.meter_provider)) as receiver:
        assert _post(receiver.endpoint + path, body, ctype) == status
    assert telemetry.llm_spans() == []


def test_recorded_payloads_of_all_three(telemetry: Any) -> None:
    with AgentReceiver(Recorder(telemetry.tracer_provider, telemetry.meter_provider)) as receiver:
        for name in sorted(RECORDED.iterdir()):
            ctype = "application/json" if name.suffix == ".json" else "application/x-protobuf"
            assert _post(receiver.endpoint + "/v1/logs", name.read_bytes(), ctype) == 200
    sources = sorted(str((s.attributes or {})[n.SOURCE]) for s in telemetry.llm_spans())
    assert sources == ["claude_code", "codex", "gemini_cli"]
