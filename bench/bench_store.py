"""Local store write path: exporter throughput, cost on the app's thread, bytes per call.

Spans carry the ~25 attributes the recorder puts on a real LLM call span.

1. ``export``: `SQLiteSpanExporter.export` on pre-built spans in batches of 512 (what
   the batch processor hands it), one process, one transaction per batch -> calls/s.
2. ``app``: the app thread creating and ending spans as fast as it can, with the SDK's
   default `BatchSpanProcessor` in front of (a) an exporter that drops everything
   ("store off") and (b) the SQLite exporter ("store on"); wall and thread-CPU time per
   call on the app thread. The difference is what the store adds to a call (export work
   runs on the processor's thread but shares the GIL).
3. ``paced``: 5,000 calls/s for 10 s into the store, behind the SDK's default batch
   processor (``on``) and behind `store_span_processor` (deeper queue, 1 s schedule);
   every call must arrive (no queue drops) with the latter, and the per-call wall time
   is compared with the store off at the same pace.
4. bytes per call of the resulting store file.

Run:  .venv/bin/python bench/bench_store.py [--quick]
Writes bench/results/store.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_tokens import names as n
from otel_tokens.store.db import file_bytes
from otel_tokens.store.exporter import SQLiteSpanExporter, store_span_processor

RESULTS = Path(__file__).with_name("results")


def attrs(i: int) -> dict[str, Any]:
    return {
        n.GEN_AI_OPERATION_NAME: n.OP_CHAT, n.GEN_AI_PROVIDER_NAME: n.PROVIDER_OPENAI,
        n.GEN_AI_REQUEST_MODEL: "gpt-4o", n.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
        n.GEN_AI_RESPONSE_ID: f"chatcmpl-{i:024d}", n.GEN_AI_RESPONSE_FINISH_REASONS: ("stop",),
        n.SERVER_ADDRESS: "api.openai.com", n.SERVER_PORT: 443, n.GEN_AI_REQUEST_STREAM: False,
        n.GEN_AI_USAGE_INPUT_TOKENS: 1200 + i % 500, n.GEN_AI_USAGE_OUTPUT_TOKENS: 300 + i % 97,
        n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 1024, n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: 0,
        n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: 0, n.GEN_AI_USAGE_COST: 0.001234 + i * 1e-9,
        n.COST_STATUS: "priced", n.CACHE_SAVINGS: 0.00128, n.USAGE_STATUS: "reported",
        n.OUTCOME: "success", n.RETRY_COUNT: 0, n.AGENT_ITERATION: i % 20 + 1, n.TASK_NAME: "fix-flaky-test",
        n.TASK_ID: f"task-{i // 20:08d}", n.TASK_SIZE: "M", n.USER_ID: "u-4f2a9c", n.TEAM: "payments",
        n.GEN_AI_AGENT_NAME: "coder", n.TRIGGER: "local",
    }  # fmt: skip


class Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def bench_export(tmp: Path, count: int) -> dict[str, float]:
    mem = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(mem))
    tracer = tp.get_tracer(n.SCOPE)
    for i in range(count):
        tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=attrs(i)).end()
    spans = mem.get_finished_spans()
    exporter = SQLiteSpanExporter(tmp / "export.db")
    exporter.export(spans[:1])  # create the store outside the timing
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(1, count, 512):
        exporter.export(spans[i : i + 512])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    exporter.shutdown()
    return {"calls": count, "calls_per_s": (count - 1) / wall, "cpu_us_per_call": cpu / (count - 1) * 1e6}


def _provider(exporter: SpanExporter) -> tuple[TracerProvider, Any]:
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(exporter))  # SDK defaults, as bootstrap.py uses
    return tp, tp.get_tracer(n.SCOPE)


def bench_app(tmp: Path, count: int, rounds: int) -> dict[str, Any]:
    out: dict[str, list[float]] = {"off_wall_us": [], "on_wall_us": [], "off_cpu_us": [], "on_cpu_us": []}
    pre = [attrs(i) for i in range(count)]
    for r in range(rounds):
        for mode in ("off", "on") if r % 2 == 0 else ("on", "off"):
            exporter: SpanExporter = Drop() if mode == "off" else SQLiteSpanExporter(tmp / f"app{r}.db")
            tp, tracer = _provider(exporter)
            t0, c0 = time.perf_counter(), time.thread_time()
            for a in pre:
                tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=a).end()
            wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
            tp.shutdown()
            out[f"{mode}_wall_us"].append(wall / count * 1e6)
            out[f"{mode}_cpu_us"].append(cpu / count * 1e6)
    med = {k: statistics.median(v) for k, v in out.items()}
    med["added_wall_us"] = med["on_wall_us"] - med["off_wall_us"]
    med["added_cpu_us"] = med["on_cpu_us"] - med["off_cpu_us"]
    return med


def bench_paced(tmp: Path, rate: int, seconds: float) -> dict[str, Any]:
    result: dict[str, Any] = {"rate_per_s": rate, "seconds": seconds}
    for mode in ("off", "on", "on_store_processor"):
        path = tmp / f"paced-{mode}.db"
        if mode == "on_store_processor":  # the processor the store is meant to sit behind
            tp = TracerProvider()
            tp.add_span_processor(store_span_processor(path))
            tracer = tp.get_tracer(n.SCOPE)
        else:
            tp, tracer = _provider(Drop() if mode == "off" else SQLiteSpanExporter(path))
        total = int(rate * seconds)
        per_call: list[float] = []
        start = time.perf_counter()
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t0 = time.perf_counter()
            tracer.start_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes=attrs(i)).end()
            per_call.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        tp.shutdown()
        per_call.sort()
        result[mode] = {
            "achieved_per_s": total / elapsed,
            "p50_us": per_call[len(per_call) // 2] * 1e6,
            "p99_us": per_call[int(len(per_call) * 0.99)] * 1e6,
        }
        if mode != "off":
            conn = sqlite3.connect(path)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            stored = conn.execute("SELECT count(*) FROM llm_calls").fetchone()[0]
            conn.close()
            result[mode]["stored"] = stored
            result[mode]["dropped"] = total - stored
            result["bytes_per_call"] = file_bytes(path) / stored
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="otel-tokens-bench-") as d:
        tmp = Path(d)
        results = {
            "load_avg_1m_before": os.getloadavg()[0],
            "export": bench_export(tmp, 5_000 if args.quick else 30_000),
            "app": bench_app(tmp, 2_000 if args.quick else 10_000, 3 if args.quick else 5),
            "paced": bench_paced(tmp, 5000, 2.0 if args.quick else 10.0),
            "load_avg_1m_after": os.getloadavg()[0],
        }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "store.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    paced = results["paced"]
    ok = results["export"]["calls_per_s"] >= 5000 and paced["on_store_processor"]["dropped"] == 0
    print("OK" if ok else "BELOW TARGET", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
