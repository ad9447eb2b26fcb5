"""The scale-out layout, live: a front-tier collector (collector/config-loadbalancer.yaml)
routing by trace id to two sampling collectors (collector/config.yaml unchanged), all on
loopback, both samplers remote-writing to the stack's Prometheus.

Under a multi-process workload (apps whose tasks are their own traces, and `otel-tokens
run` tasks whose trace spans two processes) every trace is decided whole: each kept trace is
complete and in exactly one sampler's output, the cheap ones are in none, and both
samplers decided some. The cost metric, routed by stream id, is counted once: Prometheus
shows exactly the workload's spend, computed independently from genai-prices.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_tokens import names as n
from otel_tokens.stack import promnames
from tests.conftest import expected_cost

from .conftest import REPO, STACK_LOCAL, TEST_ENV, Stack

pytestmark = [pytest.mark.stack, pytest.mark.timeout(300)]

SAMPLER_CONFIG = REPO / "collector" / "config.yaml"
FRONT_CONFIG = REPO / "collector" / "config-loadbalancer.yaml"
AGENTS_CONFIG = REPO / "collector" / "agents.yaml"  # merged into each sampler's config
RUN = uuid.uuid4().hex[:6]
SERVICE = f"scale-out-{RUN}"
APPS, TASKS_PER_APP, RUNS = 4, 4, 4
HUGE, SMALL = (2_000_000, 100_000), (1000, 100)  # (input, output) tokens of one gpt-4o call

APP = textwrap.dedent(
    """
    import os, sys, openai, otel_tokens
    from otel_tokens.fakellm import FakeLLM, Reply
    mode, n = sys.argv[1], int(sys.argv[2])
    huge, small = (2_000_000, 100_000), (1000, 100)
    with FakeLLM() as fake:
        oa = openai.OpenAI(base_url=fake.openai_base_url, api_key="sk-test", max_retries=0)
        def call(tokens):
            fake.enqueue(Reply.ok(input_tokens=tokens[0], output_tokens=tokens[1]))
            oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
        if mode == "tasks":  # each task is a trace of its own; even ones are expensive
            for j in range(n):
                with otel_tokens.task("scale-out", size="S", team="scale"):
                    call(huge if j % 2 == 0 else small)
                    call(small)
                    call(small)
        else:  # the calls of the task that `otel-tokens run` opened in the parent process
            call(huge)
            call(small)
    """
)


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class Tier:
    procs: list[subprocess.Popen[bytes]]
    front_http: str
    sinks: list[Path]


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    pytest.fail(f"not healthy: {url}\n{log.read_text()[-3000:]}")


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate `procs` last-started first, then wait for each (killing it after 15 s)."""
    for p in reversed(procs):
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


@pytest.fixture(scope="module")
def tier(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tier]:
    d = tmp_path_factory.mktemp("scale-out")
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | TEST_ENV
    procs: list[subprocess.Popen[bytes]] = []
    sinks, grpc_endpoints = [], []
    try:
        for i in (1, 2):
            grpc, http, health, metrics, sink = free_ports(5)
            sinks.append(d / f"sampler-{i}.jsonl")
            sinks[-1].touch()
            argv = [sys.executable, str(STACK_LOCAL), "sink", "--port", str(sink), "--out", str(sinks[-1])]
            procs.append(spawn(argv, base, d / f"sink-{i}.log"))
            env = base | {
                "OTEL_TOKENS_COLLECTOR_GRPC": f"127.0.0.1:{grpc}",
                "OTEL_TOKENS_COLLECTOR_HTTP": f"127.0.0.1:{http}",
                "OTEL_TOKENS_COLLECTOR_HEALTH": f"127.0.0.1:{health}",
                "OTEL_TOKENS_COLLECTOR_METRICS_HOST": "127.0.0.1",
                "OTEL_TOKENS_COLLECTOR_METRICS_PORT": str(metrics),
                "OTEL_TOKENS_PROMETHEUS_REMOTE_WRITE": f"{stack.prometheus_url}/api/v1/write",
                "OTEL_TOKENS_TEMPO_ENDPOINT": f"http://127.0.0.1:{sink}",
                "OTEL_TOKENS_TEMPO_ENCODING": "json",
            }
            log = d / f"sampler-{i}.log"
            argv = [str(stack.collector_bin), f"--config={SAMPLER_CONFIG}", f"--config={AGENTS_CONFIG}"]
            procs.append(spawn(argv, env, log))
            wait_healthy(f"http://127.0.0.1:{health}/", procs[-1], log)
            grpc_endpoints.append(f"127.0.0.1:{grpc}")
        grpc, http, health, metrics = free_ports(4)
        env = base | {
            "OTEL_TOKENS_COLLECTOR_GRPC": f"127.0.0.1:{grpc}",
            "OTEL_TOKENS_COLLECTOR_HTTP": f"127.0.0.1:{http}",
            "OTEL_TOKENS_COLLECTOR_HEALTH": f"127.0.0.1:{health}",
            "OTEL_TOKENS_COLLECTOR_METRICS_HOST": "127.0.0.1",
            "OTEL_TOKENS_COLLECTOR_METRICS_PORT": str(metrics),
            "OTEL_TOKENS_LB_BACKENDS": "[" + ", ".join(grpc_endpoints) + "]",
        }
        log = d / "front.log"
        procs.append(spawn([str(stack.collector_bin), f"--config={FRONT_CONFIG}"], env, log))
        wait_healthy(f"http://127.0.0.1:{health}/", procs[-1], log)
        yield Tier(procs, f"http://127.0.0.1:{http}", sinks)
    finally:
        stop_all(procs)


def traces(sink: Path) -> dict[str, list[dict[str, Any]]]:
    """trace id -> our spans in a sampler's output."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in sink.read_text().splitlines():
        for rs in json.loads(line).get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                if ss.get("scope", {}).get("name") == n.SCOPE:
                    for span in ss.get("spans", []):
                        out[span["traceId"]].append(span)
    return out


def attr(span: dict[str, Any], key: str) -> Any:
    for a in span.get("attributes", []):
        if a["key"] == key:
            return next(iter(a["value"].values()))
    return None


def prom_value(stack: Stack, expr: str) -> float | None:
    url = f"{stack.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=30) as response:
        result = json.load(response)["data"]["result"]
    return float(result[0]["value"][1]) if len(result) == 1 else None


def test_front_tier_drops_identity_like_the_samplers() -> None:
    """The front tier must drop the same per-process identity and ids as the samplers, so a
    series has one stream id (and one sampler) whichever process wrote it."""

    def processors(path: Path) -> dict[str, Any]:
        return dict(yaml.safe_load(path.read_text())["processors"])

    front, sampler = processors(FRONT_CONFIG), processors(SAMPLER_CONFIG)
    for name in ("transform/cardinality", "transform/identity", "cumulativetodelta"):
        assert front[name] == sampler[name], name


def test_every_trace_is_decided_whole_and_cost_is_counted_once(stack: Stack, tier: Tier) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "GITHUB_"))} | {
        "OTEL_TOKENS_ENABLED": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": tier.front_http,
        "OTEL_SERVICE_NAME": SERVICE,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    }
    run = [sys.executable, "-m", "otel_tokens", "run", "--task", "scale-out-run", "--team", "scale", "--"]
    procs = [
        subprocess.Popen([sys.executable, "-c", APP, "tasks", str(TASKS_PER_APP)], env=env)
        for _ in range(APPS)
    ] + [subprocess.Popen([*run, sys.executable, "-c", APP, "run", "0"], env=env) for _ in range(RUNS)]
    for p in procs:
        assert p.wait(timeout=120) == 0

    huge, small = expected_cost("openai", "gpt-4o", *HUGE), expected_cost("openai", "gpt-4o", *SMALL)
    want_spend = APPS * (TASKS_PER_APP // 2 * (huge + 2 * small) + TASKS_PER_APP // 2 * 3 * small)
    want_spend += RUNS * (huge + small)
    kept_want = APPS * TASKS_PER_APP // 2 + RUNS  # traces with an expensive task: kept whole

    def decided() -> list[dict[str, list[dict[str, Any]]]] | None:
        got = [traces(s) for s in tier.sinks]
        return got if sum(len(g) for g in got) >= kept_want else None

    deadline = time.monotonic() + 60
    per_sampler = decided()
    while per_sampler is None and time.monotonic() < deadline:
        time.sleep(1)
        per_sampler = decided()
    assert per_sampler is not None, [len(traces(s)) for s in tier.sinks]
    time.sleep(3)  # anything split would arrive late: look again
    per_sampler = [traces(s) for s in tier.sinks]

    one, two = (set(t) for t in per_sampler)
    assert not one & two, "a trace was decided by both samplers"
    assert one and two, "the front tier sent every trace to one sampler"
    kept = per_sampler[0] | per_sampler[1]
    assert len(kept) == kept_want
    for trace_id, spans in kept.items():
        (task,) = [s for s in spans if s["name"].startswith("invoke_workflow")]
        calls = [s for s in spans if attr(s, n.GEN_AI_USAGE_COST) is not None]
        assert len(spans) == 1 + len(calls), trace_id
        assert len(calls) == int(attr(task, n.TASK_LLM_CALLS)), trace_id  # complete: every call is here
        assert any(attr(c, n.GEN_AI_USAGE_COST) == pytest.approx(huge, rel=1e-12) for c in calls)

    def spend() -> float | None:
        return prom_value(stack, f'sum({promnames.COST}{{job="{SERVICE}"}})')

    deadline = time.monotonic() + 60
    while spend() != pytest.approx(want_spend, rel=1e-12) and time.monotonic() < deadline:
        time.sleep(1)
    assert spend() == pytest.approx(want_spend, rel=1e-12)
    assert math.isclose(
        prom_value(stack, f'sum({promnames.CALLS}{{job="{SERVICE}"}})') or 0,
        APPS * TASKS_PER_APP * 3 + RUNS * 2,
    )


@pytest.mark.parametrize("source", ["claude_code", "gemini_cli"])
def test_agent_calls_through_the_front_tier_are_counted_once(
    source: str, stack: Stack, tier: Tier, fake: Any, tmp_path: Path
) -> None:
    """Agents' per-call logs are routed by service: one sampler counts each agent's series."""
    from decimal import Decimal

    from tests.agents.agent_runs import RUNS, oracle
    from tests.agents.conftest import clean_env, otel_tokens_run

    home = tmp_path / "home"
    home.mkdir()
    run = RUNS[source](fake, home)
    fake.enqueue(*run.replies)
    task = f"scale-out-agent-{RUN}-{source}"
    env = clean_env(home, {**run.env, "OTEL_EXPORTER_OTLP_ENDPOINT": tier.front_http})
    done = otel_tokens_run(["--task", task, "--", *run.command], env, home)
    assert done.returncode == 0, done.stderr
    want = oracle(fake)
    sel = f'otel_tokens_task_name="{task}"'
    deadline = time.monotonic() + 30
    while (
        prom_value(stack, f"sum(otel_tokens_calls_total{{{sel}}})") != want.calls
        and time.monotonic() < deadline
    ):
        time.sleep(0.5)
    got = prom_value(stack, f"sum(otel_tokens_cost_USD_total{{{sel}}})")
    assert got is not None and abs(Decimal(repr(got)) - want.cost) <= want.cost * Decimal("1e-9"), (got, want)
