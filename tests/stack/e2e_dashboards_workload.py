"""Workload for tests/stack/test_e2e_dashboards.py, run as a subprocess.

Instrumented only by the environment (OTEL_TOKENS_ENABLED=true plus the standard OTLP
variables pointing at the collector): it uses the real openai and anthropic SDKs against
the fake LLM server inside `otel_tokens.task` scopes. To give the test independent
expected values it adds one extra span processor to the global tracer provider that the
start-up hook configured, writing every finished span's attributes to a JSON-lines file.

Every step but the spike baseline is a short-lived process: a few calls, then exit (its
metrics leave in the one export at exit, its task span too).

    python e2e_dashboards_workload.py STEP OUT.jsonl [BASELINE_S]    (STEP: see STEPS)
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anthropic
import openai
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

import otel_tokens
from otel_tokens.fakellm import FakeLLM, Reply
from otel_tokens.firstuse import ensure_configured


class JsonLinesExporter(SpanExporter):
    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        for span in spans:
            ctx = span.get_span_context()
            record = {
                "name": span.name,
                "trace_id": format(ctx.trace_id, "032x") if ctx else "",
                "start_ns": span.start_time,
                "end_ns": span.end_time,
                "attributes": dict(span.attributes or {}),
            }
            self._file.write(json.dumps(record, default=list) + "\n")
        self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._file.close()


def chat(client: openai.OpenAI, model: str, text: str = "hi") -> Any:
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


def message(client: anthropic.Anthropic, model: str, text: str = "hi", stream: bool = False) -> Any:
    kwargs: dict[str, Any] = {
        "model": model,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": text}],
    }
    if stream:
        with client.messages.stream(**kwargs) as s:
            return s.get_final_message()
    return client.messages.create(**kwargs)


def summarise(fake: FakeLLM, oa: openai.OpenAI, i: int) -> None:
    """One of three peers of the same task name and size; the second retries a 429."""
    with otel_tokens.task("summarise", size="S", user="alice", team="e2e-a"):
        if i == 1:
            fake.enqueue(Reply.error(429, retry_after=0.001))
        fake.enqueue(Reply.ok(input_tokens=1200 + 100 * i, output_tokens=150))
        chat(oa, "gpt-4o-mini", f"summarise {i}")
        fake.enqueue(Reply.ok(input_tokens=800, output_tokens=90 + i, cache_read=512))
        chat(oa, "gpt-4o", f"check {i}")


def research(fake: FakeLLM, oa: openai.OpenAI, an: anthropic.Anthropic) -> None:
    with otel_tokens.task("research", size="L", user="bob", team="e2e-b"):
        for _ in range(3):  # the same request three times: two loop repeats
            fake.enqueue(Reply.ok(input_tokens=3000, output_tokens=400, cache_read=2048, cache_write=0))
            message(an, "claude-sonnet-4-20250514", "find sources")
        fake.enqueue(Reply.ok(input_tokens=500, output_tokens=50))
        message(an, "claude-haiku-4-5-20251001", "wrap up")
        fake.enqueue(Reply.ok(input_tokens=700, output_tokens=40))
        chat(oa, "e2e-unknown-model", "unpriced")  # no price: counted, not costed


def broken(fake: FakeLLM, oa: openai.OpenAI, an: anthropic.Anthropic, k: int) -> None:
    try:
        with otel_tokens.task("broken", size="M", user="alice", team="e2e-a"):
            fake.enqueue(Reply.ok(input_tokens=2000, output_tokens=300 + k))
            chat(oa, "gpt-4o", f"attempt {k}")
            # a stream cut after the model started answering: tokens billed, outcome partial
            fake.enqueue(Reply.ok(input_tokens=900, output_tokens=200, cut_after=2))
            try:
                message(an, "claude-haiku-4-5-20251001", f"stream {k}", stream=True)
            except Exception:
                pass
            raise RuntimeError("tool failed")
    except RuntimeError:
        pass


def ci_eval(fake: FakeLLM, oa: openai.OpenAI, an: anthropic.Anthropic, i: int) -> None:
    """A CI step attributed by OTEL_TOKENS_TASK only: the process itself is the task run."""
    fake.enqueue(Reply.ok(input_tokens=4000, output_tokens=500 + i))
    chat(oa, "gpt-4o", f"eval {i}")
    fake.enqueue(Reply.ok(input_tokens=1000, output_tokens=100))
    message(an, "claude-haiku-4-5-20251001", f"grade {i}")


def spike_baseline(fake: FakeLLM, oa: openai.OpenAI, baseline_s: float) -> None:
    """A long-lived worker: a steady trickle of cheap calls, exported every interval."""
    deadline = time.monotonic() + baseline_s
    i = 0
    while time.monotonic() < deadline:
        with otel_tokens.task("triage", size="S", team="e2e-spike"):
            fake.enqueue(Reply.ok(input_tokens=100 + (i * 37) % 90, output_tokens=20 + (i * 13) % 15))
            chat(oa, "gpt-4o-mini", f"triage {i}")
        i += 1
        time.sleep(0.5)


def spike_burst(fake: FakeLLM, oa: openai.OpenAI) -> None:
    """A new, short-lived process with the worker's labels: the collector adds its spend to
    the worker's series, so the spend-rate rules see the burst (as its own one-sample series
    it would be invisible to rate())."""
    with otel_tokens.task("triage", size="S", team="e2e-spike"):
        for j in range(3):
            fake.enqueue(Reply.ok(input_tokens=20_000_000, output_tokens=1_000_000))
            chat(oa, "gpt-4o-mini", f"huge {j}")


def budgets(fake: FakeLLM, oa: openai.OpenAI, ledger_down: bool) -> None:
    """Under the test's budget file (OTEL_TOKENS_BUDGETS, names of the example file): one call
    crosses every soft threshold of `all`; a call whose estimate would pass the per-task
    hard budget `small-tasks` is refused before it is sent."""
    with otel_tokens.task("budgeted", size="S", user="alice", team="e2e-budgets"):
        fake.enqueue(Reply.ok(input_tokens=1000, output_tokens=100))
        oa.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        if ledger_down:  # on_ledger_error: allow (the default): counted, never blocked
            return
        try:
            oa.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "essay"}], max_tokens=100_000
            )
            raise SystemExit("the budget did not block the call")
        except otel_tokens.BudgetExceeded:
            pass


# phase -> the short-lived processes it runs (the spike baseline is the one long-lived worker)
STEPS: dict[str, tuple[str, ...]] = {
    "main": ("summarise:0", "summarise:1", "summarise:2", "research", "broken:0", "broken:1"),
    "ci": ("eval:0", "eval:1"),
    "spike": ("baseline",),
    "budgets": ("budgets", "budgets:ledger-down"),  # the second with an unreachable ledger
}


def step(fake: FakeLLM, oa: openai.OpenAI, an: anthropic.Anthropic, name: str, baseline_s: float) -> None:
    what, _, arg = name.partition(":")
    if what == "summarise":
        summarise(fake, oa, int(arg))
    elif what == "research":
        research(fake, oa, an)
    elif what == "broken":
        broken(fake, oa, an, int(arg))
    elif what == "eval":
        ci_eval(fake, oa, an, int(arg))
    elif what == "baseline":
        spike_baseline(fake, oa, baseline_s)
    elif what == "burst":
        spike_burst(fake, oa)
    elif what == "budgets":
        budgets(fake, oa, arg == "ledger-down")
    else:
        raise SystemExit(f"unknown step {name!r}")


def run(name: str, out: Path, baseline_s: float = 40.0) -> None:
    ensure_configured()  # what the first LLM call would do: providers from the environment
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        raise SystemExit("OTEL_TOKENS_ENABLED start-up did not configure an SDK tracer provider")
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(out)))
    with FakeLLM() as fake:
        oa = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test-e2e", max_retries=2)
        an = anthropic.Anthropic(base_url=fake.anthropic_base_url, api_key="sk-ant-test-e2e", max_retries=2)
        step(fake, oa, an, name, baseline_s)


if __name__ == "__main__":
    run(sys.argv[1], Path(sys.argv[2]), *(float(a) for a in sys.argv[3:]))
