"""Budget-check overhead of this tree against another revision, paired run by run.

Exports ``src/`` of REV (default ``main``) with ``git archive`` and runs `bench_budgets.py`
alternately on it and on this tree (same bench code, same interpreter, same Redis and SQLite;
only the package differs), PAIRS times, swapping which goes first every pair. Per variant it
reports the median over runs of each side's overhead above the uninstrumented SDK measured
in the same run (wall time, and the calling thread's CPU time, which a busy machine disturbs
far less), and the median of the paired differences; for the budget variants the overhead
is also given above the instrumented call without budgets (the budget check's own cost).

Run:  .venv/bin/python bench/compare_budgets.py [--rev main] [--pairs 5] [--rounds 3 --calls 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VARIANTS = ("otel_tokens", "budgets_sqlite", "budgets_redis")


def _export(rev: str, into: Path) -> Path:
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True, capture_output=True)
    with tarfile.open(fileobj=BytesIO(blob.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def _run(src: Path, rounds: int, calls: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    args = [sys.executable, str(HERE / "bench_budgets.py"), "--json", "--rounds", str(rounds)]
    done = subprocess.run([*args, "--calls", str(calls)], env=env, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _over(run: dict[str, Any], name: str, base: str, field: str) -> float | None:
    if name not in run:
        return None
    return float(run[name][field]) - float(run[base][field])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rev", default="main")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="otel-tokens-compare-") as tmp:
        before_src, after_src = _export(args.rev, Path(tmp)), ROOT / "src"
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
        for i in range(args.pairs):
            order = [("before", before_src), ("after", after_src)]
            for side, src in order if i % 2 == 0 else order[::-1]:
                runs[side].append(_run(src, args.rounds, args.calls))
    sdk = statistics.median(r["sdk"]["us_per_call"] for side in runs.values() for r in side)
    print(f"{args.pairs} pairs, {args.rounds} rounds x {args.calls} calls each; SDK call {sdk:.0f} us")
    print(f"{'overhead of':20s} {'before':>16s} {'after':>16s} {'paired change':>16s}")
    rows = [(name, "sdk") for name in VARIANTS]
    rows += [(name, "otel_tokens") for name in VARIANTS if name.startswith("budgets")]
    for field in ("us_per_call", "cpu_us_per_call"):
        print("wall time" if field == "us_per_call" else "CPU time of the calling thread")
        _table(runs, rows, field)
    return 0


def _table(runs: dict[str, list[dict[str, Any]]], rows: list[tuple[str, str]], field: str) -> None:
    for name, base in rows:
        before = [_over(r, name, base, field) for r in runs["before"]]
        after = [_over(r, name, base, field) for r in runs["after"]]
        pairs = [(b, a) for b, a in zip(before, after, strict=True) if b is not None and a is not None]
        label = name if base == "sdk" else f"{name}-otel"
        if not pairs:
            print(f"{label:20s} skipped")
            continue
        b = statistics.median(p[0] for p in pairs)
        a = statistics.median(p[1] for p in pairs)
        d = statistics.median(p[1] - p[0] for p in pairs)
        each = " ".join(f"{p[0]:.0f}/{p[1]:.0f}" for p in pairs)
        print(f"{label:20s} {b:+13.0f} us {a:+13.0f} us {d:+13.0f} us   runs before/after: {each}")


if __name__ == "__main__":
    sys.exit(main())
