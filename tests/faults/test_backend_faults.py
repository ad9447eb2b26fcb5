"""Back-end faults: the real collector down at start, killed and restarted, a black hole, a slow one.

The fault app runs as a subprocess with ``OTEL_EXPORTER_OTLP_ENDPOINT`` set (metrics every
500 ms, cumulative, the SDK default). Each case compares the app's call latencies with a run
against a healthy collector, bounds its memory, and — where the collector is reachable in the
end — checks that the cumulative cost in Prometheus equals the workload's total (genai-prices
over the known usage of every call).
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.faults import app
from tests.faults.backend import BlackHole, LiveStack, SlowProxy
from tests.faults.runapp import REPO, AppRun, app_env

pytestmark = [pytest.mark.faults, pytest.mark.stack, pytest.mark.timeout(600)]

CALLS = 200
PACE = 0.03  # seconds between calls: the run lasts several export intervals
QUEUE = 256  # OTEL_BSP_MAX_QUEUE_SIZE for these runs, so the memory bound is reached quickly
RESULTS: dict[str, Any] = {}


def _expected_cost(calls: int) -> float:
    import genai_prices

    total = Decimal(0)
    for i in range(calls):
        usage = genai_prices.Usage(input_tokens=app.input_tokens(i), output_tokens=app.output_tokens(i))
        total += genai_prices.calc_price(usage, app.OPENAI_MODEL, provider_id="openai").total_price
    return float(total)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    from tests.stack.conftest import collector_bin

    binary = collector_bin()
    assert binary is not None
    stack = LiveStack(tmp_path_factory.mktemp("faultstack"), binary)
    try:
        yield stack
    finally:
        stack.down()


def _env(endpoint: str, service: str) -> dict[str, str]:
    return app_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_SERVICE_NAME=service,
        OTEL_METRIC_EXPORT_INTERVAL="500",
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BSP_MAX_QUEUE_SIZE=str(QUEUE),
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE=str(QUEUE // 2),
    )


def _start(
    env: dict[str, str], calls: int = CALLS, pace: float = PACE, hold: Path | None = None
) -> subprocess.Popen[str]:
    cmd = [
        sys.executable,
        "-m",
        "tests.faults.app",
        str(calls),
        "--anthropic-every",
        "0",
        "--pace",
        str(pace),
    ]
    if hold is not None:
        cmd += ["--hold", str(hold)]
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[AppRun, float]:
    out, err = proc.communicate(timeout=timeout)
    return AppRun(proc.returncode, out, err), time.monotonic()


def _latency(run: AppRun) -> dict[str, float]:
    lat = run.summary["latencies"]
    return {
        "median_ms": statistics.median(lat) * 1000,
        "p95_ms": sorted(lat)[int(len(lat) * 0.95)] * 1000,
        "max_ms": max(lat) * 1000,
    }


def _cost(live: LiveStack, service: str, want: float) -> float:
    return live.wait_delivered("otel_tokens_cost_USD_total", service, want, timeout=30)


@pytest.fixture(scope="module")
def healthy(live: LiveStack) -> dict[str, Any]:
    service = "faults-healthy"
    run, _ = _finish(_start(_env(live.otlp, service)))
    assert run.returncode == 0, run.stderr
    want = _expected_cost(CALLS)
    got = _cost(live, service, want)
    figures = {**_latency(run), "rss_kib": run.summary["max_rss_kib"], "cost": got, "want": want}
    RESULTS["healthy"] = figures
    assert got == pytest.approx(want, rel=1e-9)
    return figures


def _not_slowed(run: AppRun, healthy: dict[str, Any], name: str) -> dict[str, float]:
    assert run.returncode == 0, run.stderr
    assert run.summary["answers"] == [app.ANSWER] * CALLS
    assert "Traceback" not in run.stderr
    lat = _latency(run)
    # the exporters run on their own threads: a call never waits for the back end
    assert lat["median_ms"] <= 2 * healthy["median_ms"] + 5, (name, lat, healthy)
    assert lat["max_ms"] < 1000, (name, lat)
    return lat


def test_collector_down_at_start(live: LiveStack, healthy: dict[str, Any], tmp_path: Path) -> None:
    """The exporter retries a failed export for up to its timeout (10 s): a collector that comes
    up within that loses nothing."""
    service = "faults-late"
    hold = tmp_path / "exit-now"
    live.kill_collector()
    proc = _start(_env(live.otlp, service), hold=hold)
    time.sleep(2.0)  # the app starts and calls with no collector
    live.start_collector()
    hold.touch()
    run, _ = _finish(proc)
    lat = _not_slowed(run, healthy, "late")
    want = _expected_cost(CALLS)
    got = _cost(live, service, want)
    RESULTS["down_at_start"] = {**lat, "rss_kib": run.summary["max_rss_kib"], "cost": got, "want": want}
    assert got == pytest.approx(want, rel=1e-9)


def test_collector_killed_and_restarted_mid_run(
    live: LiveStack, healthy: dict[str, Any], tmp_path: Path
) -> None:
    """What a collector crash loses, measured: the app exports deltas, so (1) what the collector
    had acknowledged but not yet written to Prometheus (it sums in memory and writes every
    OTEL_TOKENS_COLLECTOR_METRICS_INTERVAL, 5 s) and (2) the deltas of exports that failed for
    the exporter's whole retry budget (OTEL_EXPORTER_OTLP_TIMEOUT, 10 s) while it was down.
    What Prometheus had stays: the restarted collector's series is a counter reset, which rate()
    and increase() (and `delivered`) handle. Calls are never slowed."""
    service = "faults-restart"
    calls_total = f'sum(otel_tokens_calls_total{{job="{service}"}})'
    hold = tmp_path / "exit-now"
    proc = _start(_env(live.otlp, service), hold=hold)
    deadline = time.monotonic() + 60
    while not (live.value(calls_total) or 0) and time.monotonic() < deadline:
        time.sleep(0.2)  # wait for a first write to Prometheus
    first = live.value(calls_total) or 0
    live.kill_collector()  # killed mid-run
    time.sleep(1.5)
    live.start_collector()  # and back
    hold.touch()  # the app finishes after the recovery and exits normally
    run, _ = _finish(proc)
    lat = _not_slowed(run, healthy, "restart")
    want = _expected_cost(CALLS)
    got = _cost(live, service, want)
    calls = live.delivered("otel_tokens_calls_total", service)
    RESULTS["restart"] = {
        **lat,
        "rss_kib": run.summary["max_rss_kib"],
        "calls_in_prometheus_before_the_crash": first,
        "calls_delivered": calls,
        "calls_lost": CALLS - calls,
        "cost": got,
        "want": want,
    }
    assert 0 < first < CALLS, first  # the outage really was mid-run
    assert first <= calls <= CALLS and got <= want * (1 + 1e-9)


def test_a_black_hole_never_slows_calls_and_memory_stays_bounded(
    live: LiveStack, healthy: dict[str, Any]
) -> None:
    hole = BlackHole()
    try:
        start = time.monotonic()
        run, end = _finish(
            _start(_env(f"http://127.0.0.1:{hole.port}", "faults-blackhole"), calls=CALLS * 2, pace=0)
        )
    finally:
        hole.close()
    lat = _latency(run)
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert lat["median_ms"] <= 2 * healthy["median_ms"] + 5, (lat, healthy)
    assert lat["max_ms"] < 1000, lat
    growth = run.summary["max_rss_kib"] - healthy["rss_kib"]
    RESULTS["blackhole"] = {**lat, "rss_kib": run.summary["max_rss_kib"], "wall_s": end - start}
    # twice the calls with nothing ever exported: the span queue (QUEUE spans) and the metric
    # series are all that is held
    assert growth < 16 * 1024, growth


def test_a_slow_collector_never_slows_calls(live: LiveStack, healthy: dict[str, Any]) -> None:
    import urllib.parse

    proxy = SlowProxy(urllib.parse.urlparse(live.otlp).port or 0, delay=1.0)
    service = "faults-slow"
    try:
        run, _ = _finish(_start(_env(f"http://127.0.0.1:{proxy.port}", service)))
    finally:
        proxy.close()
    lat = _not_slowed(run, healthy, "slow")
    want = _expected_cost(CALLS)
    got = _cost(live, service, want)
    RESULTS["slow"] = {**lat, "rss_kib": run.summary["max_rss_kib"], "cost": got, "want": want}
    assert got == pytest.approx(want, rel=1e-9)


def test_a_process_killed_during_an_outage_loses_what_was_not_exported(live: LiveStack) -> None:
    """Cumulative metrics are re-sent whole by the next export, so an outage alone loses nothing;
    a process that dies during one loses everything since its last successful export."""
    service = "faults-died"
    calls_total = f'sum(otel_tokens_calls_total{{job="{service}"}})'
    proc = _start(_env(live.otlp, service), calls=CALLS, pace=PACE)
    deadline = time.monotonic() + 60
    while not (live.value(calls_total) or 0) and time.monotonic() < deadline:
        time.sleep(0.2)
    live.kill_collector()
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    live.start_collector()
    time.sleep(2.0)
    got_calls = live.delivered("otel_tokens_calls_total", service)
    got = live.delivered("otel_tokens_cost_USD_total", service)
    want = _expected_cost(CALLS)
    RESULTS["died"] = {"calls_in_prometheus": got_calls, "cost": got, "workload_cost_if_finished": want}
    assert 0 < got_calls < CALLS and 0 < got < want


SECRETS = {
    "openai API key": app.API_KEY.encode(),
    "anthropic API key": app.ANTHROPIC_KEY.encode(),
    "key fragment": b"SECRET-",
    "raw user id (hashing on)": app.USER.encode(),
    "prompt text (capture off)": app.PROMPT.encode(),
    "completion text (capture off)": app.ANSWER.encode(),
}


def _findings(where: str, data: bytes) -> list[tuple[str, str]]:
    return [(where, name) for name, needle in SECRETS.items() if needle in data]


def _traces_of(live: LiveStack, service: str) -> bytes:
    """The collector's trace output for one service (the file also holds the other runs')."""
    out = []
    for line in (live.dir / "traces.jsonl").read_text().splitlines():
        for rs in json.loads(line).get("resourceSpans", []):
            attrs = {a["key"]: a["value"].get("stringValue") for a in rs["resource"].get("attributes", [])}
            if attrs.get("service.name") == service:
                out.append(json.dumps(rs))
    return "\n".join(out).encode()


def test_no_secret_in_any_exported_byte(live: LiveStack, tmp_path: Path) -> None:
    """Spans and metrics as the app sent them (OTLP bytes through a recording proxy), the local
    store, the app's logs, the collector's output (trace file, Prometheus series, its logs) and
    the app's outbound HTTP headers: no API key, no raw user id, no prompt or completion."""
    import urllib.parse

    service = "faults-secrets"
    store = tmp_path / "telemetry.db"
    requests_file = tmp_path / "requests.jsonl"
    proxy = SlowProxy(urllib.parse.urlparse(live.otlp).port or 0, delay=0)
    env = _env(f"http://127.0.0.1:{proxy.port}", service) | {
        "OTEL_TOKENS_STORE": str(store),
        "OTEL_TOKENS_HASH_USER_IDS": "true",
        "OTEL_TOKENS_USER_HASH_KEY": "fault-campaign-key",
    }
    cmd = [sys.executable, "-m", "tests.faults.app", "30", "--requests", str(requests_file)]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, timeout=180)
    proxy.close()
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout.decode().splitlines()[-1])["answers"] == [app.ANSWER] * 30
    live.wait_delivered("otel_tokens_calls_total", service, 30)
    time.sleep(2.0)  # tail sampling's decision wait, then the trace sink
    scanned: dict[str, bytes] = {
        "OTLP export (spans, metrics)": b"".join(proxy.sent),
        "app stderr": done.stderr,
        "store": b"".join(p.read_bytes() for p in tmp_path.glob("telemetry.db*")),
        "collector trace output": _traces_of(live, service),
        "collector logs": b"".join(p.read_bytes() for p in live.dir.glob("collector*.log")),
        "prometheus series": json.dumps(live.query(f'{{job="{service}"}}')).encode(),
    }
    assert len(scanned["OTLP export (spans, metrics)"]) > 10_000
    assert app.TASK.encode() in scanned["OTLP export (spans, metrics)"]  # readable text: a scan can hit
    assert b"otel_tokens" in scanned["collector trace output"] and b"u_" in scanned["store"]
    assert b"u_" in scanned["collector trace output"]  # the pseudonym is there, the raw id is not
    # outbound: headers the LLM server received, except the two that must carry the key
    outbound = b""
    for line in requests_file.read_text().splitlines():
        headers = json.loads(line)["headers"]
        for name, value in headers.items():
            if name.lower() in ("authorization", "x-api-key"):
                continue
            outbound += f"{name}: {value}\n".encode()
        assert "baggage" not in {k.lower() for k in headers}
    scanned["outbound HTTP headers"] = outbound
    findings = [f for where, data in scanned.items() for f in _findings(where, data)]
    RESULTS["secrets"] = {
        "bytes_scanned": sum(len(d) for d in scanned.values()),
        "by_source": {k: len(v) for k, v in scanned.items()},
        "findings": findings,
    }
    assert findings == []


def test_report_the_figures() -> None:
    """Print the figures the README quotes (run with -s)."""
    print("\nback-end faults:", json.dumps(RESULTS, indent=1, default=str))
    assert os.environ is not None
