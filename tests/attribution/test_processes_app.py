"""Processes in a real app (a subprocess with OTEL_TOKENS_ENABLED=true exporting over OTLP):
pool workers lose nothing to terminate(), each work item is its submitter's, children flush
metrics too, os.exec* waits a bounded time once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from otel_tokens import names as n
from otel_tokens.attribution.carriers import FLUSH_TIMEOUT_S
from otel_tokens.fakellm import Reply
from tests.conftest import expected_cost
from tests.instrumentation.test_zero_code import _Receiver, receiver

__all__ = ["receiver"]

REPO = Path(__file__).resolve().parents[2]
COST = expected_cost("openai", "gpt-4o-mini", 1200, 80)


def replies(fake: Any, count: int) -> None:
    fake.enqueue(*[Reply.ok(input_tokens=1200, output_tokens=80) for _ in range(count)])


def run_app(
    mode: str, endpoint: str, fake: Any, tmp_path: Path, **extra: str
) -> tuple[list[dict[str, Any]], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST", "ANTHROPIC_"))}
    env.update(
        OTEL_TOKENS_ENABLED="true",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        FAKE_OPENAI=fake.openai_base_url,
        PYTHONPATH=str(REPO),
        **extra,
    )
    out = subprocess.run(
        [sys.executable, "-m", "tests.attribution.processes_app", mode],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")], out.stderr


def llm_spans(r: _Receiver) -> list[dict[str, Any]]:
    found = []
    for req in r.traces:
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    if s.name.startswith("chat"):
                        attrs = {a.key: a.value.string_value for a in s.attributes}
                        found.append({"task": attrs.get(n.TASK_NAME), "trace": s.trace_id.hex()})
    return found


def metric_total(r: _Receiver, name: str) -> float:
    total = 0.0
    for req in r.metrics:
        for rm in req.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name == name:
                        total += sum(p.as_double for p in m.sum.data_points)
    return total


def rollup(calls: int) -> dict[str, Any]:
    return {"llm_calls": calls, "cost": str((Decimal(repr(COST)) * calls).normalize())}


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_a_terminated_pool_loses_no_worker_telemetry(
    receiver: _Receiver, fake: Any, tmp_path: Path, method: str
) -> None:
    replies(fake, 6)
    (seen,), _ = run_app("pool", receiver.url, fake, tmp_path, START_METHOD=method)
    assert seen["fanout"] == rollup(6)
    spans = llm_spans(receiver)
    assert [s["task"] for s in spans] == ["fanout"] * 6  # flushed per item, before terminate()
    assert len({s["trace"] for s in spans}) == 1


def test_each_executor_item_belongs_to_the_task_that_submitted_it(
    receiver: _Receiver, fake: Any, tmp_path: Path
) -> None:
    replies(fake, 2)
    (seen,), _ = run_app("executor", receiver.url, fake, tmp_path)
    assert seen == {"A": rollup(1), "B": rollup(1)}  # the worker started inside A works for B too
    assert sorted(s["task"] for s in llm_spans(receiver)) == ["A", "B"]


def test_a_multiprocessing_child_flushes_its_metrics(receiver: _Receiver, fake: Any, tmp_path: Path) -> None:
    replies(fake, 1)
    (seen,), _ = run_app("child", receiver.url, fake, tmp_path)
    assert seen["child"] == rollup(1)
    assert metric_total(receiver, n.M_COST) == COST  # it leaves by os._exit: no atexit


def test_a_forked_worker_does_not_export_its_parents_data(
    receiver: _Receiver, fake: Any, tmp_path: Path
) -> None:
    replies(fake, 2)
    (seen,), _ = run_app("fork", receiver.url, fake, tmp_path)
    assert seen == {"child_status": 0}
    assert metric_total(receiver, n.M_COST) == pytest.approx(2 * COST, rel=1e-12)  # one call each
    assert sum(int(p) for p in token_points(receiver, "input")) == 2 * 1200


def token_points(r: _Receiver, token_type: str) -> list[int]:
    return [
        p.as_int
        for req in r.metrics
        for rm in req.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == n.M_TOKENS
        for p in m.sum.data_points
        if any(a.key == n.TOKEN_TYPE and a.value.string_value == token_type for a in p.attributes)
    ]


def test_exec_waits_a_bounded_time_once_on_an_unreachable_collector(fake: Any, tmp_path: Path) -> None:
    bin_dir = str(Path(sys.executable).parent)
    path = os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b"), bin_dir])  # execvp tries each
    lines, stderr = run_app("exec", "http://127.0.0.1:9", fake, tmp_path, PATH=path)
    before, after = lines[0]["before_exec"], lines[-1]["after_exec"]
    print(f"exec with an unreachable collector: {after - before:.2f} s to the new image")
    assert after - before < FLUSH_TIMEOUT_S + 1.5, stderr
    assert stderr.count("propagation.exec") == 1, stderr  # the hook ran once, not per PATH entry
