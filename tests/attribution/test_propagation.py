"""Trace and task propagation to child processes through the environment carriers."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context

from otel_tokens import names as n
from otel_tokens.attribution import context, propagation
from tests import propagation_child
from tests.attribution_helpers import Providers, providers

__all__ = ["providers"]

CHILD = Path(propagation_child.__file__)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def installed() -> Iterator[None]:
    propagation.install()
    try:
        yield
    finally:
        propagation.uninstall()


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in propagation.CARRIER_VARIABLES}
    env.pop(n.ENV_ENABLED, None)  # the child script wires itself up (no start-up hook here)
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def test_carriers_round_trip(providers: Providers) -> None:
    assert propagation.carriers() == {}  # outside any task or span: nothing to pass on
    with providers.task("t", id="T-9", size="M", user="ann", team="ml") as t:
        carriers = propagation.carriers()
        span_context = t.span.get_span_context()
    flags = int(span_context.trace_flags)
    assert (
        carriers[n.ENV_TRACEPARENT]
        == f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-{flags:02x}"
    )
    assert Path(carriers[n.ENV_REPORT_DIR]).name.startswith("otel-tokens-")
    ctx = propagation.context_from_environ(carriers)
    assert trace.get_current_span(ctx).get_span_context().trace_id == span_context.trace_id
    assert dict(baggage.get_all(ctx)) == {}
    assert "BAGGAGE" not in carriers
    assert json.loads(carriers[n.ENV_PARENT]) == {
        n.TASK_NAME: "t",
        n.TASK_ID: "T-9",
        n.TASK_SIZE: "M",
        n.USER_ID: "ann",
        n.TEAM: "ml",
    }
    child_root = context.scope_from_environ(carriers)
    assert {k: child_root.span_attributes.get(k) for k in (n.TASK_NAME, n.TASK_ID, n.USER_ID)} == {
        n.TASK_NAME: "t",
        n.TASK_ID: "T-9",
        n.USER_ID: "ann",
    }
    assert not Path(carriers[n.ENV_REPORT_DIR]).exists()  # removed when the task ended


def test_a_plain_span_passes_only_the_trace(providers: Providers) -> None:
    with providers.tp.get_tracer("app").start_as_current_span("request"):
        carriers = propagation.carriers()
    assert set(carriers) == {n.ENV_TRACEPARENT}


def test_child_environ_replaces_stale_carriers(providers: Providers) -> None:
    stale = {
        n.ENV_TRACEPARENT: "00-" + "1" * 32 + "-" + "2" * 16 + "-01",
        n.ENV_TRACESTATE: "x=1",
        "KEEP": "1",
    }
    assert propagation.child_environ(stale) is None  # nothing to pass on: the caller's env is kept
    with providers.task("t"):
        env = propagation.child_environ(stale)
    assert env is not None and env["KEEP"] == "1" and n.ENV_TRACESTATE not in env
    assert env[n.ENV_TRACEPARENT] != stale[n.ENV_TRACEPARENT]


def run_chain(providers: Providers, mode: str) -> tuple[Any, list[dict[str, Any]]]:
    with providers.task("chain", user="zoe") as t:
        out = subprocess.run(
            [sys.executable, str(CHILD), "1", mode],
            env=child_env(),
            capture_output=True,
            text=True,
            check=False,
        )
    assert out.returncode == 0, out.stderr
    return t, [json.loads(line) for line in out.stdout.splitlines()]


@pytest.mark.parametrize("mode", ["popen", "exec"])
def test_parent_child_grandchild_is_one_trace_and_one_task(
    providers: Providers, installed: None, mode: str
) -> None:
    t, seen = run_chain(providers, mode)
    task_span = providers.span("invoke_workflow chain")
    trace_id = format(task_span.context.trace_id, "032x")
    assert [s["level"] for s in seen] == [1, 2]
    for s in seen:
        assert (s["trace_id"], s["task_name"], s["task_id"], s["user"]) == (trace_id, "chain", t.id, "zoe")
    assert seen[0]["parent_span_id"] == format(task_span.context.span_id, "016x")
    # the grandchild runs inside the child's agent scope: a span of the child, same trace
    assert seen[1]["parent_span_id"] != seen[0]["parent_span_id"]
    # both processes reported their totals back: 1/1000 + 2/1000 USD, 100 + 200 input tokens
    attrs = task_span.attributes or {}
    assert (attrs[n.TASK_COST], attrs[n.TASK_LLM_CALLS], attrs[n.TASK_INPUT_TOKENS]) == (0.003, 2, 300)
    assert t.totals().cost == Decimal("0.003")


def test_without_propagation_children_start_fresh(providers: Providers) -> None:
    t, seen = run_chain(providers, "popen")
    assert seen[0]["task_name"] is None and seen[0]["trace_id"] == "0" * 32
    assert t.totals().llm_calls == 0


@pytest.mark.parametrize("method", ["spawn", "fork", "forkserver"])
def test_multiprocessing_child_joins_and_reports(
    providers: Providers, installed: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    out = tmp_path / "seen.json"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork in a threaded process (3.12+)
        mp = multiprocessing.get_context(method)
        with providers.task("mp") as t:
            p = mp.Process(target=propagation_child.mp_target, args=(str(out),))
            p.start()
            p.join(60)
    assert p.exitcode == 0
    seen = json.loads(out.read_text())
    span = providers.span("invoke_workflow mp")
    assert (seen["trace_id"], seen["task_name"], seen["task_id"]) == (
        format(span.context.trace_id, "032x"),
        "mp",
        t.id,
    )
    attrs = span.attributes or {}
    assert (attrs[n.TASK_COST], attrs[n.TASK_LLM_CALLS], attrs[n.TASK_INPUT_TOKENS]) == (0.003, 1, 300)


def test_attach_from_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    monkeypatch.setenv(n.ENV_TRACEPARENT, traceparent)
    token = otel_context.attach(otel_context.Context())
    try:
        propagation.attach_from_environ()
        sc = trace.get_current_span().get_span_context()
        assert (sc.trace_id, sc.span_id, sc.is_remote) == (
            0x0AF7651916CD43DD8448EB211C80319C,
            0xB7AD6B7169203331,
            True,
        )
    finally:
        otel_context.detach(token)
