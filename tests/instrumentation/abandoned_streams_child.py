"""Child process of the abandoned-stream stress test (bug: a finaliser recording on a stack
that holds the metric table's lock). Run as ``python -m tests.instrumentation.abandoned_streams_child
BASE_URL N``; prints one JSON line: whether the reader thread finished, calls counted."""

from __future__ import annotations

import gc
import json
import sys
import threading

import openai
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import otel_tokens
from otel_tokens import names as n
from otel_tokens.instrumentation import core

MSGS = [{"role": "user", "content": "x"}]


def main(base_url: str, count: int) -> None:
    reader = InMemoryMetricReader()
    otel_tokens.instrument(
        tracer_provider=TracerProvider(), meter_provider=MeterProvider(metric_readers=[reader])
    )
    client = openai.OpenAI(base_url=base_url, api_key="sk-x", max_retries=0)
    client.chat.completions.create(model="gpt-4o", messages=MSGS)
    recorder = core.active.recorder
    assert recorder is not None
    table = recorder.metrics.ours
    for i in range(3000):  # a big table: the reader spends its time inside snapshot()
        table.row(frozenset({"stress.row": i}.items()))
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            table.snapshot()

    reader_thread = threading.Thread(target=read, daemon=True)
    reader_thread.start()
    gc.set_threshold(1, 1, 1)  # collect on (nearly) every allocation, the reader's included
    for _ in range(count):
        stream = client.chat.completions.create(model="gpt-4o", messages=MSGS, stream=True)
        for _chunk in stream:
            break  # abandoned: never closed
        del stream
    stop.set()
    reader_thread.join(10)
    gc.set_threshold(700, 10, 10)
    gc.collect()
    client.chat.completions.create(model="gpt-4o", messages=MSGS)  # a safe point: drains
    data = reader.get_metrics_data()
    calls: dict[str, float] = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == n.M_CALLS:
                    for p in metric.data.data_points:
                        outcome = str((p.attributes or {}).get(n.OUTCOME))
                        calls[outcome] = calls.get(outcome, 0) + p.value  # type: ignore[union-attr]
    print(json.dumps({"reader_finished": not reader_thread.is_alive(), "calls": calls}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
