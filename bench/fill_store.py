"""Fill a store fast with synthetic but realistic rows (executemany, not through OTel).

    python bench/fill_store.py /tmp/big.db --calls 1000000 --tasks 50000

Used by bench_report.py. Rows follow the exporter's layout exactly (same column lists),
so reports read them as they would read recorded spans.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from otel_tokens.store import schema
from otel_tokens.store.db import open_for_writing, write_tx

TASK_NAMES = [f"{verb}-{thing}" for verb in ("fix", "review", "refactor", "triage", "write") for thing in
              ("bug", "pr", "tests", "docs", "migration", "flaky-ci")]  # fmt: skip
SIZES = ("S", "M", "L")
SIZE_CALLS = {"S": 8, "M": 20, "L": 45}
USERS = [f"user-{i:02d}" for i in range(40)]
TEAMS = ("payments", "platform", "search", "mobile", "infra", "data")
MODELS = (
    ("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("openai", "o3-mini"),
    ("anthropic", "claude-sonnet-4-5"), ("anthropic", "claude-haiku-4-5"), ("anthropic", "claude-opus-4-1"),
)  # fmt: skip
AGENTS = ("planner", "coder", "reviewer", "tester")
PIPELINES = (None, None, None, "ci.yml", "nightly")


def fill(path: Path, calls: int, tasks: int, days: float = 30.0, seed: int = 7) -> None:
    rng = random.Random(seed)
    conn = open_for_writing(path)
    conn.execute("PRAGMA synchronous = OFF")
    now = time.time_ns()
    span_no = 0
    # Distribute calls over tasks by size, then scale to hit the requested total exactly.
    plan = []
    for t in range(tasks):
        size = rng.choice(SIZES)
        plan.append((t, size, max(1, int(rng.lognormvariate(0, 0.5) * SIZE_CALLS[size]))))
    scale = calls / sum(p[2] for p in plan)
    counts = [max(1, round(p[2] * scale)) for p in plan]
    counts[-1] += calls - sum(counts)
    llm_rows: list[tuple[object, ...]] = []
    task_rows: list[tuple[object, ...]] = []
    span_rows: list[tuple[object, ...]] = []

    def flush() -> None:
        def body(c: object) -> None:
            last = conn.execute("SELECT coalesce(max(rowid), 0) FROM llm_calls").fetchone()[0]
            conn.executemany(schema.insert_sql("llm_calls", schema.LLM_CALL_COLUMNS), llm_rows)
            conn.execute(schema.ROLLUP_UPSERT, (last,))
            conn.executemany(schema.insert_sql("tasks", schema.TASK_COLUMNS), task_rows)
            conn.executemany(schema.insert_sql("spans", schema.SPAN_COLUMNS), span_rows)

        write_tx(conn, body)
        llm_rows.clear()
        task_rows.clear()
        span_rows.clear()

    for (t, size, _), n_calls in zip(plan, counts, strict=True):
        name = TASK_NAMES[t % len(TASK_NAMES)]
        user = rng.choice(USERS)
        team = TEAMS[USERS.index(user) % len(TEAMS)]
        pipeline = rng.choice(PIPELINES)
        trace = rng.getrandbits(128).to_bytes(16, "big")
        task_id = f"{t:08x}-{rng.getrandbits(32):08x}"
        start = now - int(rng.random() * days * 86400e9)
        span_no += 1
        task_span = span_no.to_bytes(8, "big")
        agent = rng.choice(AGENTS)
        span_no += 1
        agent_span = span_no.to_bytes(8, "big")
        clock = start
        total = 0
        models = rng.sample(MODELS, rng.choice((1, 1, 2)))
        for i in range(n_calls):
            provider, model = rng.choice(models)
            inp = rng.randint(200, 20000)
            cache_read = rng.randint(0, inp // 2)
            out = rng.randint(20, 2000)
            priced = rng.random() > 0.01
            cost = rng.randint(1_000, 50_000_000_000) if priced else None
            total += cost or 0
            retries = 1 if rng.random() < 0.03 else 0
            span_no += 1
            dur = rng.randint(300_000_000, 9_000_000_000)
            llm_rows.append((
                trace, span_no.to_bytes(8, "big"), agent_span, clock, clock + dur,
                "chat", provider, model, model, inp, out, cache_read, 0, 0,
                cost, "priced" if priced else "unpriced", cache_read * 1_000_000 if priced else None,
                "success", None, retries, 0, i + 1,
                user, team, name, task_id, size, agent, pipeline, "agent" if pipeline else None,
                f"{rng.getrandbits(40)}" if pipeline else None, "ci" if pipeline else "local",
                json.dumps({"server.address": f"api.{provider}.com",
                            "gen_ai.response.id": f"resp_{rng.getrandbits(64):016x}"}),
                None,
            ))  # fmt: skip
            clock += dur
        outcome = "success" if rng.random() > 0.1 else "failure"
        task_rows.append((
            trace, task_span, None, start, clock, name, task_id, size, user, team, outcome,
            1 if outcome == "success" else 2, total, n_calls, 0, 0, 0, 0, 0, 0, 0,
            pipeline, None, None, "ci" if pipeline else "local", None, None,
        ))  # fmt: skip
        span_rows.append((trace, agent_span, task_span, start, clock, f"invoke_agent {agent}", 0,
                          "invoke_agent", agent, 0, None, None, None))  # fmt: skip
        if len(llm_rows) >= 50_000:
            flush()
    flush()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", type=Path)
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--tasks", type=int, default=50_000)
    ap.add_argument("--days", type=float, default=30.0)
    args = ap.parse_args()
    if args.path.exists():
        print(f"{args.path} exists; remove it first", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    fill(args.path, args.calls, args.tasks, args.days)
    print(f"filled {args.path}: {args.calls} calls, {args.tasks} tasks in {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
