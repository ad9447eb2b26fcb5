"""The ledgers alone, this tree against another revision, in one process: reserve + settle.

Loads ``ledger_sqlite`` and ``ledger_redis`` of REV (default ``main``, via ``git archive``)
beside this tree's and times, in rotating order within each round, one reservation of one
hard budget's key and one settlement of it plus a soft budget's key (what one call under
`bench_budgets.py`'s file costs the ledger), on a fresh SQLite file each and one
``redis-server`` on loopback. Wall and calling-thread CPU µs per call, medians over rounds.

Run:  .venv/bin/python bench/compare_ledgers.py [--rev main] [--rounds 12] [--calls 300]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_budgets import _redis

from otel_tokens.budgets import ledger_redis, ledger_sqlite
from otel_tokens.budgets.ledger import Charge, Hold, reservation_id

ROOT = Path(__file__).resolve().parent.parent


def _old(rev: str, into: Path, name: str) -> ModuleType:
    path = f"src/otel_tokens/budgets/{name}.py"
    blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, path], check=True, capture_output=True)
    with tarfile.open(fileobj=BytesIO(blob.stdout)) as tar:
        tar.extractall(into, filter="data")
    spec = importlib.util.spec_from_file_location(f"before_{name}", into / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _block(ledger: Any, tag: str, calls: int) -> tuple[float, float]:
    hard, soft = (
        (f"alice-monthly{tag}", "user=alice", "m2026-12"),
        (f"team-daily{tag}", "team=search", "d2026-12-03"),
    )
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(calls):
        now = time.time()
        rid = reservation_id()
        ledger.reserve(rid, [Hold(hard, 1000, 10**18, now + 1e6)], now + 900, now)
        charges = [Charge(hard, 900, (1, 2, 3), now + 1e6), Charge(soft, 900, (1, 2, 3), now + 1e6, False)]
        ledger.settle(rid, charges, now)
    return (time.perf_counter() - wall) / calls * 1e6, (time.thread_time() - cpu) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rev", default="main")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="otel-tokens-ledgers-") as name:
        tmp = Path(name)
        old_sqlite, old_redis = (
            _old(args.rev, tmp / "old", "ledger_sqlite"),
            _old(args.rev, tmp / "old", "ledger_redis"),
        )
        ledgers: dict[str, Any] = {
            "sqlite before": old_sqlite.SQLiteLedger(tmp / "before.db"),
            "sqlite after": ledger_sqlite.SQLiteLedger(tmp / "after.db"),
        }
        server = _redis(tmp)
        if server is not None:
            ledgers["redis before"] = old_redis.RedisLedger(server[1])
            ledgers["redis after"] = ledger_redis.RedisLedger(server[1])
        try:
            got: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in ledgers}
            for key, ledger in ledgers.items():
                _block(ledger, key, 50)  # warm up: connections, scripts, pages
            for r in range(args.rounds):
                names = list(ledgers)
                for key in names[r % len(names) :] + names[: r % len(names)]:
                    wall, cpu = _block(ledgers[key], key, args.calls)
                    got[key][0].append(wall)
                    got[key][1].append(cpu)
        finally:
            for ledger in ledgers.values():
                ledger.close()
            if server is not None:
                server[0].terminate()
                server[0].wait()
    print(f"reserve + settle per call, {args.rounds} rounds x {args.calls} calls, medians")
    for key, (wall, cpu) in got.items():
        print(f"{key:14s} {statistics.median(wall):7.0f} us wall {statistics.median(cpu):7.0f} us CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
