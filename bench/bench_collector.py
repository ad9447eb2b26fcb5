"""What one otel-tokens collector sustains: spans/s and metric points/s, with its memory.

The collector built from collector/builder.yaml runs collector/config.yaml unchanged (content
filter, privacy transform, redaction and tail sampling on the traces; identity drop,
deltatocumulative, interval and zero-start on the metrics) with its exporters pointed at
a loopback sink that answers 200 and discards (so the backends are not what is measured).
Load: OTLP/HTTP protobuf requests prepared up front, sent over keep-alive connections by
client processes for a fixed time.

* ``traces``: requests of 50 traces x 4 spans (a task span and three LLM call spans with
  the ~25 attributes the recorder sets); 1 in 10 traces is expensive (kept by tail
  sampling), the rest is dropped after the decision wait.
* ``metrics``: requests of 200 delta points each (sums and 14-bucket histograms) from
  distinct process identities across 1,000 label sets: what a fleet's exports at exit look
  like to the collector.

Throughput is what the collector accepted (its own otelcol_receiver_accepted_* counters)
per second; refused requests (memory limiter) are reported. Memory is the collector's peak
RSS (VmHWM). The load generator shares the machine's cores with the collector, so the
figures are a lower bound of what a collector on its own cores sustains.

Run:  .venv/bin/python bench/bench_collector.py [--seconds S] [--clients N] [--quick]
Needs OTEL_TOKENS_COLLECTOR_BIN (scripts/build-collector | tail -n 1) or the cached build.
Writes bench/results/collector.json (not with --quick).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import multiprocessing
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from otel_tokens import names as n

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "collector" / "config.yaml"
RESULTS = Path(__file__).with_name("results")
TRACES_PER_REQUEST, SPANS_PER_TRACE, POINTS_PER_REQUEST = 50, 4, 200


def kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def resource(i: int) -> list[KeyValue]:
    return [kv("service.name", f"bench-svc-{i % 5}"), kv("service.instance.id", f"inst-{i}")]


def call_attrs(rng: random.Random, expensive: bool) -> list[KeyValue]:
    cost = 0.9 if expensive else 0.0012 + rng.random() / 1000
    return [kv(k, v) for k, v in {
        n.GEN_AI_OPERATION_NAME: n.OP_CHAT, n.GEN_AI_PROVIDER_NAME: n.PROVIDER_OPENAI,
        n.GEN_AI_REQUEST_MODEL: "gpt-4o", n.GEN_AI_RESPONSE_MODEL: "gpt-4o-2024-08-06",
        n.GEN_AI_RESPONSE_ID: f"chatcmpl-{rng.getrandbits(64):x}", n.SERVER_ADDRESS: "api.openai.com",
        n.SERVER_PORT: 443, n.GEN_AI_REQUEST_STREAM: False, n.GEN_AI_USAGE_INPUT_TOKENS: 1200,
        n.GEN_AI_USAGE_OUTPUT_TOKENS: 300, n.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 1024,
        n.GEN_AI_USAGE_COST: cost, n.COST_STATUS: "priced", n.OUTCOME: "success",
        n.TASK_NAME: "triage", n.TASK_ID: f"{rng.getrandbits(64):x}", n.TASK_SIZE: "S",
        n.TEAM: "bench", n.USER_ID: "alice", n.AGENT_ITERATION: 1, n.RETRY_COUNT: 0,
        n.TRIGGER: n.TRIGGER_LOCAL, "otel_tokens.bench.key": "sk-" + "x" * 24,  # redacted
    }.items()]  # fmt: skip


def trace_request(seed: int) -> bytes:
    rng = random.Random(seed)
    now = time.time_ns()
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend(resource(seed))
    ss = rs.scope_spans.add()
    ss.scope.name = n.SCOPE
    for t in range(TRACES_PER_REQUEST):
        trace_id = rng.getrandbits(128).to_bytes(16, "big")
        expensive = t % 10 == 0
        root = rng.getrandbits(64).to_bytes(8, "big")
        task = ss.spans.add(trace_id=trace_id, span_id=root, name="invoke_workflow triage")
        task.start_time_unix_nano, task.end_time_unix_nano = now, now + 2_000_000_000
        task.kind = trace_pb2.Span.SPAN_KIND_INTERNAL
        task.attributes.extend(
            [kv(n.GEN_AI_OPERATION_NAME, n.OP_INVOKE_WORKFLOW), kv(n.TASK_COST, 3.0 if expensive else 0.01)]
        )
        for _ in range(SPANS_PER_TRACE - 1):
            span = ss.spans.add(
                trace_id=trace_id, span_id=rng.getrandbits(64).to_bytes(8, "big"), name="chat gpt-4o"
            )
            span.parent_span_id = root
            span.kind = trace_pb2.Span.SPAN_KIND_CLIENT
            span.start_time_unix_nano, span.end_time_unix_nano = now, now + 500_000_000
            span.attributes.extend(call_attrs(rng, expensive))
    return req.SerializeToString()


def metric_request(seed: int) -> bytes:
    rng = random.Random(seed)
    now = time.time_ns()
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend(resource(seed))
    sm = rm.scope_metrics.add()
    sm.scope.name = n.SCOPE
    cost = sm.metrics.add(name=n.M_COST, unit=n.UNIT_USD)
    cost.sum.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    cost.sum.is_monotonic = True
    hist = sm.metrics.add(name=n.M_TOKEN_USAGE, unit=n.UNIT_TOKEN)
    hist.histogram.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA
    bounds = [float(b) for b in n.TOKEN_BUCKETS]
    for i in range(POINTS_PER_REQUEST // 2):
        labels = [
            kv(n.GEN_AI_REQUEST_MODEL, f"model-{rng.randrange(50)}"),
            kv(n.TEAM, f"team-{rng.randrange(20)}"),
        ]
        p = cost.sum.data_points.add(
            start_time_unix_nano=now - 10**9, time_unix_nano=now, as_double=0.001 * (i + 1)
        )
        p.attributes.extend(labels)
        h = hist.histogram.data_points.add(
            start_time_unix_nano=now - 10**9, time_unix_nano=now, count=1, sum=1200.0
        )
        h.attributes.extend(labels)
        h.explicit_bounds.extend(bounds)
        counts = [0] * (len(bounds) + 1)
        counts[rng.randrange(len(counts))] = 1
        h.bucket_counts.extend(counts)
    return req.SerializeToString()


class Discard(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def free_ports(count: int) -> list[int]:
    socks = [socket.socket() for _ in range(count)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def collector_bin() -> Path:
    configured = os.environ.get("OTEL_TOKENS_COLLECTOR_BIN")
    if configured:
        return Path(configured)
    digest = hashlib.sha256((REPO / "collector" / "builder.yaml").read_bytes()).hexdigest()
    cache = Path(os.environ.get("OTEL_TOKENS_CACHE", Path.home() / ".cache" / "otel-tokens"))
    return cache / "collector" / digest / "otelcol-otel-tokens"


def client(port: int, path: str, payloads: list[bytes], seconds: float, out: Any) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    sent = refused = 0
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        conn.request("POST", path, payloads[i % len(payloads)], {"Content-Type": "application/x-protobuf"})
        response = conn.getresponse()
        response.read()
        if response.status == 200:
            sent += 1
        else:
            refused += 1
        i += 1
    out.put((sent, refused))


def scrape(url: str) -> dict[str, float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(kind: str, seconds: float, clients: int) -> dict[str, Any]:
    grpc, http_port, health, metrics_port, sink_port = free_ports(5)
    sink = ThreadingHTTPServer(("127.0.0.1", sink_port), Discard)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_TOKENS_")} | {
        "OTEL_TOKENS_COLLECTOR_GRPC": f"127.0.0.1:{grpc}",
        "OTEL_TOKENS_COLLECTOR_HTTP": f"127.0.0.1:{http_port}",
        "OTEL_TOKENS_COLLECTOR_HEALTH": f"127.0.0.1:{health}",
        "OTEL_TOKENS_COLLECTOR_METRICS_HOST": "127.0.0.1",
        "OTEL_TOKENS_COLLECTOR_METRICS_PORT": str(metrics_port),
        "OTEL_TOKENS_PROMETHEUS_REMOTE_WRITE": f"http://127.0.0.1:{sink_port}/api/v1/write",
        "OTEL_TOKENS_TEMPO_ENDPOINT": f"http://127.0.0.1:{sink_port}",
        "OTEL_TOKENS_SAMPLE_DECISION_WAIT": "2s",
    }
    log = tempfile.NamedTemporaryFile(prefix="bench-collector-", suffix=".log", delete=False)
    proc = subprocess.Popen([str(collector_bin()), f"--config={CONFIG}"], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{health}/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit(f"collector did not start; see {log.name}") from None
                time.sleep(0.2)
        make, path = (trace_request, "/v1/traces") if kind == "traces" else (metric_request, "/v1/metrics")
        payloads = [make(seed) for seed in range(64)]
        out: multiprocessing.Queue[tuple[int, int]] = multiprocessing.Queue()
        procs = [
            multiprocessing.Process(target=client, args=(http_port, path, payloads, seconds, out))
            for _ in range(clients)
        ]
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        before = scrape(metrics_url)
        start = time.monotonic()
        for p in procs:
            p.start()
        results = [out.get(timeout=seconds + 60) for _ in procs]
        elapsed = time.monotonic() - start
        for p in procs:
            p.join()
        after = scrape(metrics_url)
        unit = "spans" if kind == "traces" else "metric_points"

        def delta(name: str) -> float:
            return max(after.get(k, 0) - before.get(k, 0) for k in (name, name + "_total"))

        accepted = delta(f"otelcol_receiver_accepted_{unit}")
        refused = delta(f"otelcol_receiver_refused_{unit}")
        cpu = delta("otelcol_process_cpu_seconds")
        return {
            "kind": kind,
            "seconds": round(elapsed, 2),
            "clients": clients,
            "requests_ok": sum(r[0] for r in results),
            "requests_refused": sum(r[1] for r in results),
            f"accepted_{unit}_per_s": round(accepted / elapsed),
            f"refused_{unit}": int(refused),
            "collector_cpu_s": round(cpu, 2),
            f"{unit}_per_cpu_second": round(accepted / cpu) if cpu else None,
            "peak_rss_mib": round(peak_rss_mib(proc.pid), 1),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        sink.shutdown()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="5 s per kind, writes nothing")
    args = parser.parse_args(argv)
    seconds = 5.0 if args.quick else args.seconds
    rows = [run(kind, seconds, args.clients) for kind in ("traces", "metrics")]
    for row in rows:
        print(json.dumps(row))
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        info = {"cpus": os.cpu_count(), "collector": str(collector_bin().parent.name)[:12]}
        (RESULTS / "collector.json").write_text(
            json.dumps({"machine": info, "results": rows}, indent=2) + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
