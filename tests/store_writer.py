"""A separate process writing LLM-like spans through the real OTel SDK into a store.

    python tests/store_writer.py DB TAG CALLS [--forever] [--traceparent TP]

Each call is a CLIENT chat span with task id TAG, cost 0.001 USD and iteration i. With
--traceparent the calls hang under a "child-process" span of that remote parent (as a
subprocess started inside a task would). With --forever it writes until killed, printing
"flushed N" after each forced flush of 100 calls.
"""

from __future__ import annotations

import argparse
import sys

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_tokens import names as n
from otel_tokens.store.exporter import store_span_processor


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("db")
    ap.add_argument("tag")
    ap.add_argument("calls", type=int)
    ap.add_argument("--forever", action="store_true")
    ap.add_argument("--traceparent")
    args = ap.parse_args()
    provider = TracerProvider()
    provider.add_span_processor(store_span_processor(args.db))  # as bootstrap
    tracer = provider.get_tracer(n.SCOPE)
    ctx = None
    if args.traceparent:
        ctx = TraceContextTextMapPropagator().extract({"traceparent": args.traceparent})

    def call(i: int) -> None:
        attrs = {
            n.GEN_AI_OPERATION_NAME: n.OP_CHAT, n.GEN_AI_PROVIDER_NAME: n.PROVIDER_OPENAI,
            n.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", n.GEN_AI_USAGE_INPUT_TOKENS: 100 + i % 7,
            n.GEN_AI_USAGE_OUTPUT_TOKENS: 20, n.GEN_AI_USAGE_COST: 0.001, n.COST_STATUS: "priced",
            n.OUTCOME: "success", n.TASK_NAME: "writer", n.TASK_ID: args.tag, n.AGENT_ITERATION: i + 1,
        }  # fmt: skip
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT, attributes=attrs):
            pass

    if args.traceparent:
        with tracer.start_as_current_span("child-process", context=ctx):
            for i in range(args.calls):
                call(i)
    elif args.forever:
        i = 0
        while True:
            call(i)
            i += 1
            if i % 100 == 0:
                provider.force_flush()
                print(f"flushed {i}", flush=True)
    else:
        for i in range(args.calls):
            call(i)
    provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
