"""What propagation costs: a thread start, an executor item and a process-pool item, with and
without `propagation.install()`, inside a task. No LLM call, so no flush (a pool item flushes
only when it recorded something). Prints medians in microseconds; writes nothing.

    .venv/bin/python bench/bench_propagation.py [--quick]
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from otel_tokens.attribution import propagation, scopes


def noop(_: object = None) -> None:
    return None


def median_us(fn: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


def thread_start() -> None:
    t = threading.Thread(target=noop)
    t.start()
    t.join()


def measure(rounds: int) -> dict[str, float]:
    with ThreadPoolExecutor(1) as tpe, ProcessPoolExecutor(1) as ppe, scopes.task("bench"):
        ppe.submit(noop).result()  # warm: the worker is started
        return {
            "thread start+join": median_us(thread_start, rounds),
            "ThreadPoolExecutor item": median_us(lambda: tpe.submit(noop).result(), rounds),
            "ProcessPoolExecutor item": median_us(lambda: ppe.submit(noop).result(), rounds // 4),
        }


def main() -> None:
    rounds = 400 if "--quick" in sys.argv else 4000
    off = measure(rounds)
    propagation.install()
    try:
        on = measure(rounds)
    finally:
        propagation.uninstall()
    for name in off:
        print(f"{name:26} {off[name]:9.1f} µs  installed {on[name]:9.1f} µs  (+{on[name] - off[name]:.1f})")


if __name__ == "__main__":
    main()
