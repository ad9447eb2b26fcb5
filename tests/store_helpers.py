"""Recording spans into a real store (TracerProvider + BatchSpanProcessor + SQLiteSpanExporter)
and running the CLI as a subprocess, for the store and CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind

from otel_tokens import names as n
from otel_tokens.store.exporter import SQLiteSpanExporter

HOUR_NS = 3_600_000_000_000
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Call:
    """One LLM call to record, and what the report must make of it."""

    cost: float | None  # None: unpriced
    model: str = "gpt-4o"
    provider: str = n.PROVIDER_OPENAI
    input_tokens: int = 1000
    output_tokens: int = 200
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0
    savings: float | None = None
    retries: int = 0
    agent: str | None = None
    outcome: str = "success"
    status: str | None = None  # cost status; defaults from cost

    @property
    def exact_cost(self) -> Decimal:
        return Decimal(repr(self.cost)) if self.cost is not None else Decimal(0)


@dataclass(frozen=True)
class Run:
    """A task run (or, with task_id None, calls outside any task) and its calls."""

    task_id: str | None
    name: str | None
    size: str | None
    user: str
    team: str
    outcome: str | None
    calls: tuple[Call, ...]
    pipeline: str | None = None
    ago_s: float = 600.0  # start time, seconds before now

    @property
    def exact_cost(self) -> Decimal:
        return sum((c.exact_cost for c in self.calls), Decimal(0))


@dataclass
class Recorder:
    """Real OTel SDK pipeline into the store at ``path``."""

    path: Path
    provider: TracerProvider = field(init=False)

    def __post_init__(self) -> None:
        self.provider = TracerProvider()
        self.provider.add_span_processor(
            BatchSpanProcessor(
                SQLiteSpanExporter(self.path), max_queue_size=100_000, schedule_delay_millis=50
            )
        )
        self.tracer = self.provider.get_tracer(n.SCOPE)

    def close(self) -> None:
        self.provider.shutdown()

    @contextmanager
    def span(self, name: str, attrs: Mapping[str, Any], start_ns: int, end_ns: int,
             kind: SpanKind = SpanKind.INTERNAL) -> Iterator[Span]:  # fmt: skip
        span = self.tracer.start_span(name, kind=kind, attributes=dict(attrs), start_time=start_ns)
        with trace.use_span(span, end_on_exit=False):
            yield span
        span.end(end_time=end_ns)

    def call(self, call: Call, run: Run, start_ns: int, iteration: int) -> int:
        attrs: dict[str, Any] = {
            n.GEN_AI_OPERATION_NAME: n.OP_CHAT, n.GEN_AI_PROVIDER_NAME: call.provider,
            n.GEN_AI_REQUEST_MODEL: call.model, n.GEN_AI_RESPONSE_MODEL: call.model,
            n.GEN_AI_USAGE_INPUT_TOKENS: call.input_tokens, n.GEN_AI_USAGE_OUTPUT_TOKENS: call.output_tokens,
            n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: call.cache_read,
            n.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS: call.cache_write,
            n.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: call.reasoning,
            n.COST_STATUS: call.status or ("priced" if call.cost is not None else "unpriced"),
            n.OUTCOME: call.outcome, n.RETRY_COUNT: call.retries, n.AGENT_ITERATION: iteration,
            n.USER_ID: run.user, n.TEAM: run.team, n.SERVER_ADDRESS: "127.0.0.1",
        }  # fmt: skip
        if call.cost is not None:
            attrs[n.GEN_AI_USAGE_COST] = call.cost
        if call.savings is not None:
            attrs[n.CACHE_SAVINGS] = call.savings
        optional = (
            (n.TASK_NAME, run.name),
            (n.TASK_ID, run.task_id),
            (n.TASK_SIZE, run.size),
            (n.GEN_AI_AGENT_NAME, call.agent),
            (n.CICD_PIPELINE_NAME, run.pipeline),
        )
        for key, value in optional:
            if value is not None:
                attrs[key] = value
        end_ns = start_ns + 1_500_000_000
        with self.span(f"chat {call.model}", attrs, start_ns, end_ns, SpanKind.CLIENT) as span:
            for attempt in range(call.retries):
                span.add_event(n.EVENT_RETRY, {n.EVENT_ATTEMPT_STATUS: 429, n.EVENT_RETRY_WAIT: 0.5},
                               timestamp=start_ns + attempt * 1000)  # fmt: skip
        return end_ns

    def run(self, run: Run, now_ns: int | None = None) -> None:
        clock = (now_ns or time.time_ns()) - int(run.ago_s * 1e9)
        if run.task_id is None:
            with self.span("script", {}, clock, clock + 10**9 * (1 + 2 * len(run.calls))):
                for i, call in enumerate(run.calls, 1):
                    clock = self.call(call, run, clock, i)
            return
        task_attrs = {
            n.GEN_AI_OPERATION_NAME: n.OP_INVOKE_WORKFLOW,
            n.GEN_AI_WORKFLOW_NAME: run.name,
            n.TASK_NAME: run.name,
            n.TASK_ID: run.task_id,
            n.USER_ID: run.user,
            n.TEAM: run.team,
        }
        if run.size:
            task_attrs[n.TASK_SIZE] = run.size
        if run.outcome:
            task_attrs[n.TASK_OUTCOME] = run.outcome
        start = clock
        end = start + 10**9 * (1 + 2 * len(run.calls))
        with self.span(f"invoke_workflow {run.name}", task_attrs, start, end):
            agents = sorted({c.agent for c in run.calls if c.agent})
            for i, call in enumerate(c for c in run.calls if not c.agent):
                clock = self.call(call, run, clock, i + 1)
            for agent in agents:
                agent_attrs = {n.GEN_AI_OPERATION_NAME: n.OP_INVOKE_AGENT, n.GEN_AI_AGENT_NAME: agent}
                with self.span(f"invoke_agent {agent}", agent_attrs, clock, end):
                    for i, call in enumerate(c for c in run.calls if c.agent == agent):
                        clock = self.call(call, run, clock, i + 1)


def record(path: Path, runs: list[Run], now_ns: int | None = None) -> None:
    rec = Recorder(path)
    try:
        for run in runs:
            rec.run(run, now_ns)
    finally:
        rec.close()


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "COLUMNS"))}
    env["PYTHONPATH"] = str(REPO / "src")
    env.update(extra)
    return env


def cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``python -m otel_tokens ARGS`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "otel_tokens", *args],
        capture_output=True, text=True, env=dict(env or cli_env()), timeout=timeout, cwd=REPO,
    )  # fmt: skip
