"""Work deferred off a finaliser's stack, run at the next safe point.

A stream the user abandons is finalised by the garbage collector, and the collector runs
wherever an allocation happens to trigger it: inside a metric reader's snapshot, inside
the OpenTelemetry SDK's locked sections, inside our own. Recording a call there can wait
forever on a lock its own thread holds, or mutate a table being iterated. So a finaliser
only `defer()`s the work (`queue.SimpleQueue.put`, which CPython documents as reentrant:
safe from ``__del__`` and weakref callbacks), and `drain()` runs it where no lock of ours
or the SDK's is held: at the start of every instrumented call, when a task or agent scope
ends, before a flush, and at interpreter exit (`drain_at_exit`).

Queued work guards itself (it reports its own errors through the guard); this module
imports nothing of ours. Side effects: one ``atexit`` handler, registered by the first
`drain_at_exit()` call.
"""

from __future__ import annotations

import atexit
import queue
from collections.abc import Callable

_queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
_at_exit = False


def defer(work: Callable[[], None]) -> None:
    """Queue `work` for the next `drain()`. Safe from any stack, finalisers included."""
    _queue.put(work)


def pending() -> bool:
    return not _queue.empty()


def drain() -> None:
    """Run the queued work on this (safe) stack; work queued meanwhile runs too.

    If a piece of work raises (only under the guard's re-raise switch), the rest stays
    queued for the next drain.
    """
    while not _queue.empty():
        try:
            work = _queue.get_nowait()
        except queue.Empty:
            return
        work()


def drain_at_exit() -> None:
    """Make sure queued work runs at exit, before providers registered earlier shut down.

    ``atexit`` runs handlers last-in first-out, so registering on first use (after the
    app's providers exist) drains before their shutdown exports.
    """
    global _at_exit
    if not _at_exit:  # a forked child inherits the registration
        _at_exit = True
        atexit.register(drain)
