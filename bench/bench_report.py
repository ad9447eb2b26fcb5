"""`otel-tokens report` / `top` over a store of 1,000,000 LLM calls and 50,000 tasks.

Fills the store once with `fill_store.py` (executemany, ~1-2 min), then runs each command
as a user would (`python -m otel_tokens ...`, a fresh interpreter each time, output to a
pipe) and reports the median wall time and the child's CPU time over a few runs, plus
the store's size per call. Target: every report <= 2 s.

Run:  .venv/bin/python bench/bench_report.py [--store PATH] [--runs N]
Writes bench/results/report.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from fill_store import fill

RESULTS = Path(__file__).with_name("results")
CALLS, TASKS = 1_000_000, 50_000
COMMANDS = [
    ["report"],
    ["report", "--json"],
    ["report", "--by", "model", "--since", "7d"],
    ["report", "--by", "user", "--csv"],
    ["report", "--task", "fix-bug", "--since", "24h"],
    ["top", "--limit", "20"],
]
TARGET_S = 2.0


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(store: Path, args: list[str], runs: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    walls, cpus = [], []
    for _ in range(runs):
        c0, t0 = _child_cpu(), time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "otel_tokens", *args, "--store", str(store)],
                              capture_output=True, text=True, env=env)  # fmt: skip
        walls.append(time.perf_counter() - t0)
        cpus.append(_child_cpu() - c0)
        if proc.returncode != 0:
            raise SystemExit(f"{args} failed: {proc.stderr}")
    return {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus), "max_wall_s": max(walls)}


def sizes(store: Path) -> dict[str, float]:
    conn = sqlite3.connect(store)
    calls = conn.execute("SELECT count(*) FROM llm_calls").fetchone()[0]
    by_object = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
    total = store.stat().st_size
    return {
        "calls": calls,
        "file_bytes": total,
        "bytes_per_call": total / calls,
        "llm_calls_table_per_call": by_object.get("llm_calls", 0) / calls,
        "llm_calls_indexes_per_call": sum(v for k, v in by_object.items() if k.startswith("llm_calls_"))
        / calls,
        "rollup_per_call": by_object.get("call_rollup", 0) / calls,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, default=Path("/tmp/otel-tokens-bench/report-1m.db"))
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not args.store.exists():
        args.store.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        fill(args.store, CALLS, TASKS)
        print(f"filled {args.store} in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    results: dict[str, object] = {"load_avg_1m_before": os.getloadavg()[0], "store": sizes(args.store)}
    timings = {}
    for command in COMMANDS:
        timings[" ".join(command)] = time_command(args.store, command, args.runs)
        print(f"{' '.join(command):45s} {timings[' '.join(command)]}", file=sys.stderr)
    results["commands"] = timings
    results["load_avg_1m_after"] = os.getloadavg()[0]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "report.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0 if all(t["wall_s"] <= TARGET_S for t in timings.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
