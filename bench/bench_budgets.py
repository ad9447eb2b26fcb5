"""Per-call overhead of budget checking, with each ledger, as a ratio to the uninstrumented call.

Workload: the real `openai` SDK over the in-process canned transport of `_transport.py` (no
sockets for the LLM call, so the figures are the SDK plus our work), a non-streaming chat
completion with ``max_tokens``. Variants, in rotating order within each round:

* ``sdk``            the uninstrumented SDK;
* ``otel_tokens``    instrumented, no budget file;
* ``budgets_sqlite`` instrumented, ``OTEL_TOKENS_BUDGETS`` with one hard (user, month) and one
  soft (team, day) budget that both match: per call one estimate, one reservation and one
  settlement of two keys in the default SQLite ledger (a file in a temporary directory);
* ``budgets_redis``  the same against ``redis-server`` on loopback (Debian's package; skipped
  when it is not installed), one Lua script call to reserve and one to settle.

Wall-clock time per call (``time.perf_counter``: the ledger's work is I/O, which CPU time
would miss) and the calling thread's CPU time, means over each block of calls; figures are
medians over rounds. On a shared, busy machine the wall figures carry its scheduling noise.

Run:  .venv/bin/python bench/bench_budgets.py [--quick] [--rounds N --calls M] [--json]
Writes bench/results/budgets.json (not with --quick); ``--json`` prints the figures as one
JSON line instead (for `compare_budgets.py`, which pairs two revisions run by run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _transport import MODEL, canned_openai_client

RESULTS = Path(__file__).resolve().parent / "results" / "budgets.json"
BUDGETS = """\
budgets:
  - {name: alice-monthly, match: {user: alice}, limit_usd: 1000000, period: month, action: block}
  - {name: team-daily, match: {team: search}, limit_usd: 1000000, period: day}
"""
MESSAGES = [{"role": "user", "content": "Summarise the build log in three bullet points."}]


def _redis(workdir: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    exe = shutil.which("redis-server")
    if exe is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    proc = subprocess.Popen([*args, "--dir", str(workdir)], stdout=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    for _ in range(200):
        try:
            client.ping()
            return proc, f"redis://127.0.0.1:{port}/0"
        except redis.ConnectionError:
            time.sleep(0.02)
    proc.kill()
    return None


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--calls", type=int)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON, write nothing")
    args = parser.parse_args()
    rounds, calls = (3, 100) if args.quick else (9, 500)
    rounds, calls = args.rounds or rounds, args.calls or calls

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider

    import otel_tokens
    from otel_tokens.instrumentation import core

    tmp = Path(tempfile.mkdtemp(prefix="otel-tokens-bench-budgets-"))
    budget_file = tmp / "budgets.yaml"
    budget_file.write_text(BUDGETS)
    os.environ["OTEL_TOKENS_STORE"] = str(tmp / "store" / "telemetry.db")
    redis_server = _redis(tmp)
    tp, mp = TracerProvider(), MeterProvider(metric_readers=[InMemoryMetricReader()])
    client = canned_openai_client()

    def call() -> None:
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=400)  # type: ignore[arg-type]

    def setup(budgets: bool, ledger: str | None) -> Callable[[], None]:
        def apply() -> None:
            if budgets:
                os.environ["OTEL_TOKENS_BUDGETS"] = str(budget_file)
            else:
                os.environ.pop("OTEL_TOKENS_BUDGETS", None)
            if ledger:
                os.environ["OTEL_TOKENS_LEDGER"] = ledger
            else:
                os.environ.pop("OTEL_TOKENS_LEDGER", None)
            otel_tokens.instrument(tracer_provider=tp, meter_provider=mp)

        return apply

    variants: dict[str, Callable[[], None]] = {
        "sdk": otel_tokens.uninstrument,
        "otel_tokens": setup(False, None),
        "budgets_sqlite": setup(True, None),
    }
    if redis_server is not None:
        variants["budgets_redis"] = setup(True, redis_server[1])
    times: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    try:
        with otel_tokens.task("bench", user="alice", team="search"):
            for r in range(rounds):
                names = list(variants)
                names = names[r % len(names) :] + names[: r % len(names)]
                for name in names:
                    variants[name]()
                    assert (core.active.gate is not None) == name.startswith("budgets"), name
                    for _ in range(20):  # warm up: the pricer's card, the ledger connection
                        call()
                    start, start_cpu = time.perf_counter(), time.thread_time()
                    for _ in range(calls):
                        call()
                    times[name].append((time.perf_counter() - start) / calls)
                    cpu[name].append((time.thread_time() - start_cpu) / calls)
    finally:
        otel_tokens.uninstrument()
        if redis_server is not None:
            redis_server[0].terminate()
            redis_server[0].wait()
        shutil.rmtree(tmp, ignore_errors=True)
    sdk = statistics.median(times["sdk"])
    sdk_cpu = statistics.median(cpu["sdk"])
    out: dict[str, Any] = {"rounds": rounds, "calls_per_round": calls, "python": sys.version.split()[0]}
    for name, samples in times.items():
        med, med_cpu = statistics.median(samples), statistics.median(cpu[name])
        out[name] = {
            "us_per_call": round(med * 1e6, 1),
            "ratio_to_sdk": round(med / sdk, 3),
            "cpu_us_per_call": round(med_cpu * 1e6, 1),
            "cpu_ratio_to_sdk": round(med_cpu / sdk_cpu, 3),
        }
        extra = "" if name == "sdk" else f"  (+{(med - sdk) * 1e6:.0f} us, x{med / sdk:.2f} the SDK)"
        if not args.json:
            print(f"{name:15s} {med * 1e6:8.1f} us/call wall, {med_cpu * 1e6:8.1f} us CPU{extra}")
    if args.json:
        print(json.dumps(out))
        return 0
    if redis_server is None:
        print("budgets_redis   skipped: redis-server is not installed")
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
