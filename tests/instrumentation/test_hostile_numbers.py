"""Out-of-range token counts from a buggy or hostile server are clamped once, at the record,
and flagged: the OTLP encoder and the local store never meet a number they cannot encode."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace.export import SpanExportResult

import otel_tokens
from otel_tokens import names as n
from otel_tokens.fakellm import Reply
from otel_tokens.store.exporter import SQLiteSpanExporter
from tests.conftest import Telemetry

MSGS = [{"role": "user", "content": "hello"}]


def _completion(prompt: Any, completion: Any) -> Reply:
    body = {
        "id": "chatcmpl-huge",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": 0},
    }
    return Reply.raw(200, {"content-type": "application/json"}, json.dumps(body).encode())


@pytest.mark.parametrize(("prompt", "completion"), [(2**63, 5), (2**64 + 7, 5), (-1, 5), (12, 2**53)])
def test_implausible_counts_are_clamped_and_nothing_is_dropped(
    telemetry: Telemetry, fake: Any, tmp_path: Path, prompt: int, completion: int
) -> None:
    client = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)
    fake.enqueue(Reply.ok(input_tokens=100, output_tokens=20), _completion(prompt, completion))
    with otel_tokens.task("hostile") as t:
        client.chat.completions.create(model="gpt-4o", messages=MSGS)
        result = client.chat.completions.create(model="gpt-4o", messages=MSGS)
    assert result.usage is not None and result.usage.prompt_tokens == prompt  # the user's object untouched
    normal, hostile = telemetry.llm_spans()
    attrs = dict(hostile.attributes or {})
    assert attrs[n.USAGE_IMPLAUSIBLE] is True
    plausible_in = prompt if 0 <= prompt < 2**32 else 0
    plausible_out = completion if 0 <= completion < 2**32 else 0
    assert (attrs[n.GEN_AI_USAGE_INPUT_TOKENS], attrs[n.GEN_AI_USAGE_OUTPUT_TOKENS]) == (
        plausible_in,
        plausible_out,
    )
    assert n.USAGE_IMPLAUSIBLE not in dict(normal.attributes or {})
    assert t.totals().input_tokens == 100 + plausible_in
    spans = telemetry.spans()
    # the OTLP encoder takes the whole batch (it raised "Value out of range" on 2**63)
    assert len(encode_spans(spans).SerializeToString()) > 0
    # the local store keeps every span (it raised "Python int too large to convert to SQLite INTEGER")
    path = tmp_path / "store.db"
    exporter = SQLiteSpanExporter(path)
    try:
        assert exporter.export(spans) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
    with sqlite3.connect(path) as conn:
        ((stored,),) = conn.execute("SELECT count(*) FROM llm_calls").fetchall()
    assert stored == 2
