"""One app process under budgets: N concurrent chat calls through the real openai SDK.

    python -m tests.budgets.budget_worker BASE_URL CALLS CONCURRENCY GO_FILE

Budgets, ledger and attribution come from the environment (OTEL_TOKENS_BUDGETS,
OTEL_TOKENS_LEDGER, OTEL_TOKENS_USER ...), as in any instrumented process. Waits for
GO_FILE to exist so that every process starts calling at once, then prints one JSON line:
admitted, blocked, other errors, the threshold events on its spans and its crossings
counter by threshold, and its budget WARNING lines.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MSGS = [{"role": "user", "content": "summarise the build log"}]
MAX_TOKENS = 100


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def main() -> int:
    base_url, calls, concurrency, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    import openai
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import otel_tokens
    from otel_tokens import names as n

    lines = _Lines()
    logging.getLogger("otel_tokens").addHandler(lines)
    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    otel_tokens.instrument(tracer_provider=tp, meter_provider=MeterProvider(metric_readers=[reader]))
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    client.models  # noqa: B018 - build the client's resources before the race

    def one(_: int) -> str:
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, max_tokens=MAX_TOKENS)
            return "admitted"
        except otel_tokens.BudgetExceeded:
            return "blocked"
        except Exception as exc:
            return f"error {exc!r}"

    Path(f"{go}.{os.getpid()}.ready").touch()
    while not go.exists():
        time.sleep(0.005)
    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        outcomes = list(pool.map(one, range(calls)))
    race_s = time.monotonic() - started
    events = [
        e.attributes[n.BUDGET_THRESHOLD]
        for s in spans.get_finished_spans()
        for e in s.events
        if e.name == n.EVENT_BUDGET_THRESHOLD and e.attributes
    ]
    counted: dict[str, Any] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == n.M_BUDGET_CROSSINGS:
                    for p in metric.data.data_points:
                        key = str((p.attributes or {}).get(n.BUDGET_THRESHOLD))
                        counted[key] = counted.get(key, 0) + p.value  # type: ignore[attr-defined]
    print(
        json.dumps(
            {
                "pid": os.getpid(),
                "race_s": round(race_s, 3),
                "admitted": outcomes.count("admitted"),
                "blocked": outcomes.count("blocked"),
                "errors": [o for o in outcomes if o.startswith("error")],
                "events": events,
                "crossings": counted,
                "warnings": [line for line in lines.lines if "crossed" in line],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
