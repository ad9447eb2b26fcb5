"""The propagator role: carry attribution across threads and processes.

`install()` patches, counted and idempotent; `uninstall()` restores once every installer
has uninstalled. What each patch does and why it holds across Python versions:

* `workers`: ``threading.Thread.start``, ``ThreadPoolExecutor.submit``,
  ``ProcessPoolExecutor.submit`` and the ``multiprocessing.pool`` methods hand the
  attribution scope, and only it, to each thread or work item (public APIs only);
* `processes`: ``subprocess.Popen``, ``os.exec*`` and ``multiprocessing.Process`` pass the
  carriers of `carriers` to child processes started inside a task.

asyncio tasks and ``asyncio.to_thread`` inherit context by themselves.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from opentelemetry import context as otel_context

from otel_tokens.attribution import processes, workers
from otel_tokens.attribution.carriers import (
    CARRIER_VARIABLES,
    FLUSH_TIMEOUT_S,
    carriers,
    child_environ,
    context_from_environ,
    flush,
)
from otel_tokens.attribution.carriers import TRACE_VARIABLES as _TRACE_VARIABLES

__all__ = [
    "CARRIER_VARIABLES",
    "FLUSH_TIMEOUT_S",
    "attach_from_environ",
    "carriers",
    "child_environ",
    "context_from_environ",
    "flush",
    "install",
    "installed",
    "uninstall",
]

_originals: dict[tuple[object, str], Any] = {}
_installs = 0
_install_lock = threading.Lock()


def install() -> None:
    """Patch threads, executors, pools, subprocess, os.exec* and multiprocessing."""
    global _installs
    with _install_lock:
        _installs += 1
        if _installs > 1:
            return
        for owner, attr, make in (*workers.PATCHES, *processes.PATCHES):
            original = getattr(owner, attr)
            _originals[(owner, attr)] = original
            setattr(owner, attr, make(original))


def uninstall() -> None:
    """Undo `install` once every caller of `install` has called `uninstall`."""
    global _installs
    with _install_lock:
        if _installs == 0:
            return
        _installs -= 1
        if _installs > 0:
            return
        for (owner, attr), original in reversed(list(_originals.items())):
            setattr(owner, attr, original)
        _originals.clear()


def installed() -> bool:
    return _installs > 0


def attach_from_environ() -> None:
    """At process start-up: join the trace a parent process passed down, if any (kept for the
    whole process; the task it belongs to is the root scope, built from the same carriers)."""
    if any(os.environ.get(v) for v in _TRACE_VARIABLES.values()):
        otel_context.attach(context_from_environ())


def _after_fork_in_child() -> None:
    global _install_lock
    _install_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
