"""Threads, executors and pools: hand our attribution (the scope), and only it, to work.

Only the attribution scope crosses, never the whole OpenTelemetry context: a thread or a
work item does not keep the submitter's span or its other context values alive, and
spans started where no span is current are parented on the scope's span by ids
(`Scope.span_context`). Everything here uses public APIs only, so it holds whatever a
Python version does inside its thread bootstrap (3.14 runs a thread in its own
``Thread._context``, reached through ``self.run`` looked up on the instance):

* ``Thread.start``: the thread's ``run`` (the subclass's own override included) becomes
  an instance attribute that runs the original inside the scope current at ``start()``;
* executors and pools: per work item, where it is submitted. ``ThreadPoolExecutor.submit``
  and the ``multiprocessing.pool`` methods wrap each item with the submitter's scope (or
  explicitly none), so a worker started lazily during task A runs task B's item for B;
  worker threads and processes those pools start are given no scope of their own.
  Process pools (``ProcessPoolExecutor``, ``multiprocessing.Pool``) wrap the item in a
  picklable `RemoteItem` carrying the carriers; in the worker it runs the item as the
  parent's task, writes the item's totals where the parent collects them and flushes
  (bounded) before the result goes back, so ``terminate()`` loses nothing already returned.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing.pool
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context

from otel_tokens.attribution.carriers import carriers, context_from_environ, flush
from otel_tokens.attribution.context import SCOPE_KEY, Scope, scope_from_environ, span_parent

Patch = tuple[object, str, Callable[[Any], Any]]
_NO_RUN = object()

_local = threading.local()  # .starting_workers: a pool is starting its own threads/processes


def starting_workers() -> bool:
    return bool(getattr(_local, "starting_workers", False))


@contextmanager
def _pool_machinery() -> Iterator[None]:
    previous = starting_workers()
    _local.starting_workers = True
    try:
        yield
    finally:
        _local.starting_workers = previous


def _scope_here() -> Scope | None:
    found = otel_context.get_value(SCOPE_KEY)
    return found if isinstance(found, Scope) else None


@contextmanager
def in_scope(scope: Scope | None, base: otel_context.Context | None = None) -> Iterator[None]:
    """Run inside `scope` (None: explicitly no task, the process's root scope)."""
    ctx = otel_context.set_value(SCOPE_KEY, scope, base)
    if scope is not None:
        ctx = span_parent(scope, ctx) or ctx
    token = otel_context.attach(ctx)
    try:
        yield
    finally:
        otel_context.detach(token)


# --- threads ---------------------------------------------------------------------------------
def _thread_start(original: Callable[..., Any]) -> Callable[..., Any]:
    def start(self: threading.Thread) -> None:
        scope = None if starting_workers() else _scope_here()
        own = self.__dict__.get("run", _NO_RUN)  # a run the app set on the instance, if any

        def restore() -> None:
            if own is _NO_RUN:
                self.__dict__.pop("run", None)
            else:
                self.__dict__["run"] = own

        if scope is not None:
            run = self.run

            def run_in_scope() -> None:
                try:
                    with in_scope(scope):
                        run()
                finally:
                    restore()  # drop the scope with the thread's work

            try:
                self.run = run_in_scope  # type: ignore[method-assign]
            except (AttributeError, TypeError):
                pass  # a class that forbids it runs unattributed
        try:
            original(self)
        except BaseException:
            if scope is not None:
                restore()  # not started (e.g. started twice): leave it as it was
            raise

    return start


def _bound(scope: Scope | None, fn: Callable[..., Any]) -> Callable[..., Any]:
    def in_submitters_scope(*args: Any, **kwargs: Any) -> Any:
        with in_scope(scope):
            return fn(*args, **kwargs)

    return in_submitters_scope


def _thread_executor_submit(original: Callable[..., Any]) -> Callable[..., Any]:
    def submit(
        self: concurrent.futures.Executor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Any:
        with _pool_machinery():
            return original(self, _bound(_scope_here(), fn), *args, **kwargs)

    return submit


# --- processes -------------------------------------------------------------------------------
class RemoteItem:
    """A work item for another process, with the carriers of the task that submitted it.

    Picklable whenever the function is; a pool worker calls it like the function.
    """

    __slots__ = ("carriers", "fn")

    def __init__(self, fn: Callable[..., Any], found: Mapping[str, str]) -> None:
        self.fn = fn
        self.carriers = dict(found)

    def __getstate__(self) -> tuple[Callable[..., Any], dict[str, str]]:
        return self.fn, self.carriers

    def __setstate__(self, state: tuple[Callable[..., Any], dict[str, str]]) -> None:
        self.fn, self.carriers = state

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.carriers:
            with in_scope(None, otel_context.Context()):
                return self.fn(*args, **kwargs)
        scope, ctx = _remote_scope(self.carriers)
        try:
            with in_scope(scope, ctx):
                return self.fn(*args, **kwargs)
        finally:
            recorded = not scope.totals().is_empty()
            scope.report_to_parent_process(reset=True)  # each item's totals reported once
            if recorded:
                flush(where="propagation.pool_item")


_last_remote: tuple[int, tuple[tuple[str, str], ...], Scope, otel_context.Context] | None = None


def _remote_scope(found: Mapping[str, str]) -> tuple[Scope, otel_context.Context]:
    """The worker's continuation of the submitting task; consecutive items of one task reuse
    it (a worker runs one item at a time; totals are reset as each item reports)."""
    global _last_remote
    key = tuple(sorted(found.items()))
    last = _last_remote
    if last is not None and last[0] == os.getpid() and last[1] == key:
        return last[2], last[3]
    scope = scope_from_environ({**os.environ, **found}, kind="remote")
    ctx = context_from_environ(found)
    _last_remote = (os.getpid(), key, scope, ctx)
    return scope, ctx


def remote(fn: Callable[..., Any]) -> Callable[..., Any]:
    return fn if isinstance(fn, RemoteItem) else RemoteItem(fn, carriers())


def _process_executor_submit(original: Callable[..., Any]) -> Callable[..., Any]:
    def submit(
        self: concurrent.futures.Executor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Any:
        with _pool_machinery():
            return original(self, remote(fn), *args, **kwargs)

    return submit


def _is_thread_pool(pool: object) -> bool:
    return isinstance(pool, multiprocessing.pool.ThreadPool)


def _pool_method(original: Callable[..., Any]) -> Callable[..., Any]:
    def method(self: multiprocessing.pool.Pool, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if _is_thread_pool(self):
            wrapped = func if getattr(func, "__otel_tokens_item__", False) else _bound(_scope_here(), func)
            wrapped.__otel_tokens_item__ = True  # type: ignore[attr-defined]
        else:
            wrapped = remote(func)
        return original(self, wrapped, *args, **kwargs)

    return method


def _pool_init(original: Callable[..., Any]) -> Callable[..., Any]:
    def __init__(self: multiprocessing.pool.Pool, *args: Any, **kwargs: Any) -> None:
        with _pool_machinery():
            original(self, *args, **kwargs)

    return __init__


_POOL_METHODS = ("apply_async", "map", "map_async", "starmap", "starmap_async", "imap", "imap_unordered")

PATCHES: tuple[Patch, ...] = (
    (threading.Thread, "start", _thread_start),
    (concurrent.futures.ThreadPoolExecutor, "submit", _thread_executor_submit),
    (concurrent.futures.ProcessPoolExecutor, "submit", _process_executor_submit),
    (multiprocessing.pool.Pool, "__init__", _pool_init),
    *((multiprocessing.pool.Pool, name, _pool_method) for name in _POOL_METHODS),
)
