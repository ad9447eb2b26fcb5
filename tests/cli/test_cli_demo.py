"""`otel-tokens demo`: the simulated day through the real SDKs, into the store or OTLP."""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from tests.store_helpers import cli, cli_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    store = tmp_path_factory.mktemp("demo") / "telemetry.db"
    result = cli("demo", "--store", str(store), "--tasks", "8", timeout=300)
    assert result.returncode == 0, result.stderr
    return store, result.stdout


def test_demo_prints_what_happened_and_the_next_commands(demo_store: tuple[Path, str]) -> None:
    store, out = demo_store
    lines = out.splitlines()
    assert lines[0] == "Simulated a day of AI-assisted engineering: 16 tasks by 6 people in 3 teams,"
    assert f"Telemetry went to the local store {store}." in lines[1]
    assert lines[3] == "Next:"
    assert lines[4].startswith(f"  otel-tokens report --store {store}")
    assert lines[6].startswith("  otel-tokens trace ")


def _report(store: Path, *args: str) -> dict[str | None, dict[str, object]]:
    result = cli("report", "--store", str(store), "--json", *args)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout, parse_float=Decimal)
    key = args[args.index("--by") + 1] if "--by" in args else "task"
    return {row[key]: row for row in rows}


def test_demo_day_contains_every_story(demo_store: tuple[Path, str]) -> None:
    store, out = demo_store
    runaway = out.splitlines()[6].split()[2]
    tasks = _report(store)
    flagged = [o["task_id"] for o in tasks["fix-flaky-test"]["outliers"]]  # type: ignore[union-attr]
    assert flagged == [runaway]  # the runaway loop stands out against its M peers
    assert tasks["fix-flaky-test"]["loop_depth_max"] == 42  # planner + 40 iterations + reviewer
    assert tasks["review-pr"]["retries"] == 8  # two 429s before each of the 4 rate-limited steps
    assert tasks["triage-incident"]["failed_tasks"] >= 1  # the stream cut mid-way
    assert tasks["generate-tests"]["unpriced_calls"] == tasks["generate-tests"]["calls"]  # no known price
    pipelines = _report(store, "--by", "pipeline")
    assert pipelines["nightly-triage"]["calls"] == 10  # the CI job's two agent subprocesses
    models = _report(store, "--by", "model")
    assert {"claude-opus-4-5", "gpt-4.1", "o3-mini", "text-embedding-3-small", "acme-coder-7b"} <= set(models)
    assert tasks["fix-flaky-test"]["loop_repeats"] == 39  # identical requests: all but the first
    trace = cli("trace", runaway, "--store", str(store)).stdout
    assert "  repeat" in trace and " more spans, $" in trace  # a long loop is folded in the middle
    users = _report(store, "--by", "user")
    assert list(users) == sorted(users, key=lambda u: (u is None, u))


def test_demo_trace_shows_the_ci_subprocesses(demo_store: tuple[Path, str]) -> None:
    store, _ = demo_store
    top = json.loads(cli("top", "--store", str(store), "--json", "--limit", "100").stdout)
    ci = next(r for r in top if r["task"] == "nightly-triage")
    out = cli("trace", ci["id"], "--store", str(store)).stdout
    assert out.count("(subprocess pid") >= 2  # the agents ran in their own processes
    assert "agent invoke_agent triager" in out and "agent invoke_agent fixer" in out


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        type(self).received.append(self.path)
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def otlp_endpoint() -> Iterator[str]:
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_demo_sends_to_otlp_when_an_endpoint_is_configured(otlp_endpoint: str, tmp_path: Path) -> None:
    env = cli_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=otlp_endpoint, HOME=str(tmp_path), XDG_DATA_HOME=str(tmp_path / "xdg")
    )
    result = cli("demo", "--tasks", "3", env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Telemetry went to OTLP." in result.stdout
    assert "/v1/traces" in _Collector.received and "/v1/metrics" in _Collector.received
    assert not any(tmp_path.rglob("*.db"))  # no local store unless OTEL_TOKENS_STORE asks for one
