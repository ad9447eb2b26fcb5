"""Threads started inside a task are attributed to it once propagation is installed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from otel_tokens import names as n
from otel_tokens.attribution import context, propagation
from tests.attribution_helpers import Providers, add, providers

__all__ = ["providers"]


@pytest.fixture
def installed() -> Iterator[None]:
    propagation.install()
    try:
        yield
    finally:
        propagation.uninstall()


def task_seen_in_thread() -> str | None:
    value = context.current_scope().span_attributes.get(n.TASK_NAME)
    add(Decimal("0.001"))
    return None if value is None else str(value)


def via_pool() -> list[str | None]:
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda _: task_seen_in_thread(), range(4)))


def via_thread() -> list[str | None]:
    out: list[str | None] = []
    threads = [threading.Thread(target=lambda: out.append(task_seen_in_thread())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


class Worker(threading.Thread):
    """A Thread subclass overriding run(), the case patching Thread.run alone would miss."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: str | None = None

    def run(self) -> None:
        self.seen = task_seen_in_thread()


def via_subclass() -> list[str | None]:
    w = Worker()
    w.start()
    w.join()
    return [w.seen]


@pytest.mark.parametrize(("start", "calls"), [(via_pool, 4), (via_thread, 3), (via_subclass, 1)])
def test_threads_inherit_the_task(
    providers: Providers, installed: None, start: Callable[[], list[str | None]], calls: int
) -> None:
    with providers.task("fan-out") as t:
        seen = start()
    assert seen == ["fan-out"] * calls
    assert t.totals().llm_calls == calls
    assert t.totals().cost == Decimal("0.001") * calls


def test_without_propagation_a_plain_thread_is_not_attributed(providers: Providers) -> None:
    assert not propagation.installed()
    with providers.task("fan-out") as t:
        seen = via_thread()
    assert seen == [None, None, None]
    assert t.totals().llm_calls == 0


def test_pool_created_inside_a_task_does_not_leak_it(providers: Providers, installed: None) -> None:
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        with providers.task("first"):
            assert pool.submit(task_seen_in_thread).result() == "first"
        assert pool.submit(task_seen_in_thread).result() is None  # later work, outside any task
        with providers.task("second"):
            assert pool.submit(task_seen_in_thread).result() == "second"
    finally:
        pool.shutdown()


async def test_asyncio_to_thread_and_executor(providers: Providers, installed: None) -> None:
    async with providers.task("async-io") as t:
        a = await asyncio.to_thread(task_seen_in_thread)
        b = await asyncio.get_running_loop().run_in_executor(None, task_seen_in_thread)
    assert (a, b) == ("async-io", "async-io")
    assert t.totals().llm_calls == 2


def test_install_is_counted_and_uninstall_restores() -> None:
    original = threading.Thread.start
    propagation.install()
    propagation.install()
    propagation.uninstall()
    assert threading.Thread.start is not original
    propagation.uninstall()
    assert threading.Thread.start is original
    propagation.uninstall()  # extra uninstall: harmless
    assert threading.Thread.start is original


def test_a_run_set_on_the_instance_is_kept_and_a_failed_start_changes_nothing(
    providers: Providers, installed: None
) -> None:
    seen: list[str | None] = []
    t = threading.Thread()
    t.run = lambda: seen.append(task_seen_in_thread())  # type: ignore[method-assign]
    own = t.__dict__["run"]
    with providers.task("mine"):
        t.start()
        t.join()
        assert t.__dict__["run"] is own  # restored once the thread's work is done
        with pytest.raises(RuntimeError, match="only be started once"):
            t.start()
    assert t.__dict__["run"] is own and seen == ["mine"]
