"""An app for the thread tests: ``python threads_app.py MODE`` with OTEL_TOKENS_ENABLED=true.

Sets its own providers after import (they receive our spans), makes real openai calls to
the fake server (FAKE_OPENAI) from threads and pools inside tasks "A" and "B", and prints
one JSON object: for each LLM call in order, the task it was attributed to and whether its
span is a child of that task's span.
"""

from __future__ import annotations

import contextvars
import json
import os
import queue
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.pool import ThreadPool
from typing import Any

import openai
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_tokens

MODE = sys.argv[1]
if MODE == "like_314":
    # What CPython 3.14's Thread._bootstrap_inner does: `self._context.run(self.run)`, where
    # `_context` is, by default (sys.flags.thread_inherit_context off), an empty Context.
    _inner = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def _bootstrap_inner_like_314(self: threading.Thread) -> None:
        run = self.run
        self.run = lambda: contextvars.Context().run(run)  # type: ignore[method-assign]
        _inner(self)

    threading.Thread._bootstrap_inner = _bootstrap_inner_like_314  # type: ignore[attr-defined]

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
client = openai.OpenAI(base_url=os.environ["FAKE_OPENAI"], api_key="sk-test")


def call() -> None:
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])


def in_thread(fn: Callable[[], None]) -> None:
    t = threading.Thread(target=fn)
    t.start()
    t.join()


def run(mode: str) -> None:
    if mode in ("thread", "like_314"):
        with otel_tokens.task("A"):
            in_thread(call)
    elif mode == "lazy_worker":
        work: queue.Queue[Callable[[], None]] = queue.Queue()
        done: queue.Queue[None] = queue.Queue()
        worker: list[threading.Thread] = []

        def serve() -> None:
            while True:
                work.get()()
                done.put(None)

        def submit(fn: Callable[[], None]) -> None:
            if not worker:  # started on first use, as library workers are
                worker.append(threading.Thread(target=serve, daemon=True))
                worker[0].start()
            work.put(fn)
            done.get()

        with otel_tokens.task("A"):
            submit(call)
        with otel_tokens.task("B"):
            submit(call)
    elif mode == "thread_pool":
        with ThreadPool(1) as pool:
            with otel_tokens.task("A"):
                pool.apply(call)
            with otel_tokens.task("B"):
                pool.map(lambda _: call(), [1])
            pool.apply(call)
    elif mode == "executor":
        with ThreadPoolExecutor(1) as executor:
            with otel_tokens.task("A"):
                executor.submit(call).result()
            with otel_tokens.task("B"):
                executor.submit(call).result()
            executor.submit(call).result()


run(MODE)
spans = exporter.get_finished_spans()
tasks = {s.attributes.get("otel_tokens.task.name"): s for s in spans if s.name.startswith("invoke_workflow")}
calls: list[dict[str, Any]] = []
for s in sorted((s for s in spans if s.name.startswith("chat")), key=lambda s: s.start_time or 0):
    task = s.attributes.get("otel_tokens.task.name") if s.attributes else None
    parent = s.parent.span_id if s.parent else None
    owner = tasks.get(task)
    calls.append({"task": task, "child_of_task": owner is not None and parent == owner.context.span_id})
print(
    json.dumps(
        {
            "calls": calls,
            "llm_calls": {k: v.attributes.get("otel_tokens.task.llm_calls") for k, v in tasks.items()},
        }
    )
)
