"""Concurrency: 200 concurrent asyncio calls + 50 threads + 4 processes in one task, mixed streaming.

The app sets its own providers (an in-memory span exporter, the local store behind a batch
processor, an in-memory metric reader) and instruments; the 4 worker processes are spawned with
``OTEL_TOKENS_ENABLED=true`` and write to the same store. Every total is compared with the sum
computed from the call numbers through genai-prices: the spans and metrics of this process, the
store (all processes), and the task span's rollup (all processes).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sqlite3
import threading
from decimal import Decimal
from pathlib import Path

import anthropic
import openai
import pytest
from opentelemetry.sdk.trace.export import BatchSpanProcessor

import otel_tokens
from otel_tokens import names as n
from otel_tokens.fakellm import FakeLLM
from otel_tokens.store.exporter import SQLiteSpanExporter
from tests.faults import workers
from tests.faults.conftest import providers

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

ASYNC = list(range(0, 200))
THREADS = list(range(200, 250))
PROCESSES = [list(range(250 + 5 * p, 255 + 5 * p)) for p in range(4)]
HERE = ASYNC + THREADS
ALL = HERE + [k for calls in PROCESSES for k in calls]
PICO = Decimal(10) ** 12


def _sum_metric(reader: object, name: str, **match: str) -> float:
    data = reader.get_metrics_data()  # type: ignore[attr-defined]
    total = 0.0
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    for p in metric.data.data_points:
                        if all((p.attributes or {}).get(k) == v for k, v in match.items()):
                            total += p.value
    return total


def test_concurrent_calls_add_up_exactly(
    tmp_path: Path, user_guard: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from otel_tokens.attribution import context

    store = tmp_path / "telemetry.db"
    monkeypatch.setenv(n.ENV_ENABLED, "true")  # for the spawned workers
    monkeypatch.setenv(n.ENV_STORE, str(store))
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER"):
        monkeypatch.delenv(name, raising=False)
    telemetry = providers()
    telemetry.tracer_provider.add_span_processor(BatchSpanProcessor(SQLiteSpanExporter(store)))
    context.reset_for_tests()
    otel_tokens.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    errors: list[BaseException] = []
    try:
        with FakeLLM() as fake:
            oc = openai.OpenAI(base_url=fake.openai_base_url, api_key=workers.KEY, max_retries=0, timeout=120)
            ac = anthropic.Anthropic(
                base_url=fake.anthropic_base_url, api_key=workers.KEY, max_retries=0, timeout=120
            )

            def thread_call(k: int) -> None:
                try:
                    workers.call_sync(oc, ac, k)
                except BaseException as exc:
                    errors.append(exc)

            async def many() -> None:
                aoc = openai.AsyncOpenAI(
                    base_url=fake.openai_base_url, api_key=workers.KEY, max_retries=0, timeout=120
                )
                aac = anthropic.AsyncAnthropic(
                    base_url=fake.anthropic_base_url, api_key=workers.KEY, max_retries=0, timeout=120
                )
                await asyncio.gather(*(workers.call_async(aoc, aac, k) for k in ASYNC))
                await aoc.close()
                await aac.close()

            spawn = multiprocessing.get_context("spawn")
            with otel_tokens.task("concurrency", size="L", user="carol", team="faults"):
                procs = [
                    spawn.Process(target=workers.process_main, args=(fake.base_url, calls))
                    for calls in PROCESSES
                ]
                for p in procs:
                    p.start()
                threads = [threading.Thread(target=thread_call, args=(k,)) for k in THREADS]
                for th in threads:
                    th.start()
                asyncio.run(many())
                for th in threads:
                    th.join()
                for p in procs:
                    p.join(120)
                assert [p.exitcode for p in procs] == [0] * 4
            assert errors == []
            assert len(fake.requests) == len(ALL)
        telemetry.tracer_provider.force_flush()
    finally:
        otel_tokens.uninstrument()
        context.reset_for_tests()

    here_in, here_out, here_cost = workers.expected(HERE)
    all_in, all_out, all_cost = workers.expected(ALL)

    # spans of this process
    spans = telemetry.spans.get_finished_spans()
    llm = [s for s in spans if (s.attributes or {}).get(n.GEN_AI_OPERATION_NAME) == n.OP_CHAT]
    assert len(llm) == len(HERE)
    assert sum(s.attributes[n.GEN_AI_USAGE_INPUT_TOKENS] for s in llm) == here_in
    assert sum(s.attributes[n.GEN_AI_USAGE_OUTPUT_TOKENS] for s in llm) == here_out
    span_cost = sum(Decimal(repr(s.attributes[n.GEN_AI_USAGE_COST])) for s in llm)
    assert span_cost == pytest.approx(here_cost, rel=Decimal("1e-12"))
    assert {s.attributes[n.TASK_NAME] for s in llm} == {"concurrency"}
    assert sum(bool(s.attributes.get(n.GEN_AI_REQUEST_STREAM)) for s in llm) == len(HERE) // 2

    # metrics of this process
    assert _sum_metric(telemetry.reader, "otel_tokens.calls") == len(HERE)
    assert (
        _sum_metric(telemetry.reader, "otel_tokens.tokens", **{"otel_tokens.token.type": "input"}) == here_in
    )
    assert _sum_metric(telemetry.reader, "otel_tokens.cost") == pytest.approx(float(here_cost), rel=1e-9)

    # the task's rollup: every process
    (task_span,) = [
        s for s in spans if (s.attributes or {}).get(n.GEN_AI_OPERATION_NAME) == n.OP_INVOKE_WORKFLOW
    ]
    a = task_span.attributes
    assert (a[n.TASK_LLM_CALLS], a[n.TASK_INPUT_TOKENS], a[n.TASK_OUTPUT_TOKENS]) == (
        len(ALL),
        all_in,
        all_out,
    )
    assert Decimal(repr(a[n.TASK_COST])) == pytest.approx(all_cost, rel=Decimal("1e-12"))

    # the store: every process
    conn = sqlite3.connect(store)
    rows = conn.execute(
        "SELECT count(*), sum(input_tokens), sum(output_tokens), sum(cost_pusd), count(DISTINCT task_id) "
        "FROM llm_calls"
    ).fetchone()
    conn.close()
    assert rows[:3] == (len(ALL), all_in, all_out)
    assert abs(Decimal(rows[3]) - all_cost * PICO) <= len(ALL)  # pico-USD, rounded per call
    assert rows[4] == 1
