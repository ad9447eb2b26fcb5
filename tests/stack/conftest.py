"""The live stack for tests marked `stack`: the built collector and Prometheus on loopback.

`stack` (session) runs `scripts/stack-local up` in a temporary directory and yields its
endpoints; `down` runs at the end of the session. The collector binary comes from
OTEL_TOKENS_COLLECTOR_BIN (CI sets it from `scripts/build-collector | tail -n 1`).
Without it the stack tests skip locally and fail in CI (CI=true).

Sampling is made deterministic for tests: no probabilistic share, a 2 s decision wait.
Thresholds keep the config defaults (LLM call 0.50 USD, task 2.00 USD, 25 calls, 30 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
STACK_LOCAL = REPO / "scripts" / "stack-local"
TEST_ENV = {
    "OTEL_TOKENS_SAMPLE_PERCENT": "0",
    "OTEL_TOKENS_SAMPLE_DECISION_WAIT": "2s",
    "OTEL_TOKENS_COLLECTOR_BATCH_TIMEOUT": "200ms",
    "OTEL_TOKENS_COLLECTOR_METRICS_INTERVAL": "1s",
}
DECISION_WAIT_S = 2.0


@dataclass(frozen=True)
class Stack:
    otlp_endpoint: str  # OTLP/HTTP base URL, e.g. http://127.0.0.1:PORT
    otlp_grpc_endpoint: str
    prometheus_url: str
    trace_file: Path  # OTLP/JSON export requests that passed tail sampling, one per line
    collector_bin: Path
    dir: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query's result vector (asserts the query succeeded)."""
        url = f"{self.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The first series' value of an instant query, or None when it returns nothing."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None


def collector_bin() -> Path | None:
    """The binary from OTEL_TOKENS_COLLECTOR_BIN; skip (locally) or fail (CI) without it."""
    configured = os.environ.get("OTEL_TOKENS_COLLECTOR_BIN", "")
    path = Path(configured) if configured else None
    if path is not None and path.is_file() and os.access(path, os.X_OK):
        return path
    why = (
        f"OTEL_TOKENS_COLLECTOR_BIN={configured!r} is not an executable"
        if configured
        else "OTEL_TOKENS_COLLECTOR_BIN is not set"
    )
    fix = "run: export OTEL_TOKENS_COLLECTOR_BIN=$(scripts/build-collector | tail -n 1)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{why}; CI must run the stack tests ({fix})", pytrace=False)
    pytest.skip(f"{why} ({fix})")
    return None


@pytest.fixture(scope="session")
def collector() -> Path:
    path = collector_bin()
    assert path is not None
    return path


@pytest.fixture(scope="session")
def stack(collector: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("stack")
    env = os.environ | TEST_ENV | {"OTEL_TOKENS_COLLECTOR_BIN": str(collector)}
    cmd = [sys.executable, str(STACK_LOCAL)]
    up = subprocess.run(
        [*cmd, "up", "--dir", str(state)], env=env, capture_output=True, text=True, timeout=120
    )
    if up.returncode != 0:
        pytest.fail(f"scripts/stack-local up failed:\n{up.stderr}", pytrace=False)
    values = dict(line.split("=", 1) for line in up.stdout.splitlines() if "=" in line)
    try:
        yield Stack(
            otlp_endpoint=values["OTLP_ENDPOINT"],
            otlp_grpc_endpoint=values["OTLP_GRPC_ENDPOINT"],
            prometheus_url=values["PROMETHEUS_URL"],
            trace_file=Path(values["TRACE_FILE"]),
            collector_bin=collector,
            dir=state,
        )
    finally:
        subprocess.run([*cmd, "down", "--dir", str(state)], env=env, timeout=60, check=False)
