"""cProfile of N instrumented calls of the bench's workload (non-streaming; one in 50 streaming
with --stream); writes ``<out>.pstats`` and ``<out>.txt``: function calls per call (deterministic,
so comparable between runs on a busy machine) and the otel-tokens / OpenTelemetry rows by
internal time (cProfile inflates small calls: read shares and counts, not µs).

Run:  .venv/bin/python bench/bench_profile.py 3000 bench/results/profile_after
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_overhead

import otel_tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("calls", type=int)
    parser.add_argument("out", help="path without suffix, e.g. bench/results/profile_after")
    args = parser.parse_args(argv)
    bench = bench_overhead.Bench(bench_overhead.QUICK)
    otel_tokens.instrument(tracer_provider=bench.tracer_provider, meter_provider=bench.meter_provider)
    try:
        for _ in range(300):
            bench.plain()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(args.calls):
            bench.plain()
        prof.disable()
    finally:
        otel_tokens.uninstrument()
    prof.dump_stats(args.out + ".pstats")
    text = io.StringIO()
    stats = pstats.Stats(prof, stream=text)
    rows = stats.stats  # type: ignore[attr-defined]
    n = args.calls

    def per_call(part: str) -> float:
        return float(sum(v[1] for k, v in rows.items() if part in k[0])) / n

    text.write(f"{n} non-streaming calls; function calls per call, all: {stats.total_calls / n:.1f}\n")  # type: ignore[attr-defined]
    text.write(f"  otel_tokens functions: {per_call('/otel_tokens/'):.1f}\n")
    text.write(f"  opentelemetry functions: {per_call('/opentelemetry/'):.1f}\n")
    text.write(f"  openai + httpx2 (the SDK itself): {per_call('/openai/') + per_call('/httpx2/'):.1f}\n\n")
    stats.sort_stats("tottime").print_stats(r"otel_tokens|opentelemetry", 45)
    Path(args.out + ".txt").write_text(text.getvalue())
    print(text.getvalue()[:4000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
