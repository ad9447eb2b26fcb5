"""The first-use hook: configure providers when they are first needed, not at start-up.

The distro role registers, with `defer()`, how to configure OpenTelemetry from the
environment; the attribution role registers, with `then()`, what starts once providers are
known (the environment task's span). Nothing runs then: until the first instrumented LLM
call (telemetry), the first task or agent scope (attribution) or the exit of an
environment-task process calls `ensure_configured()`, our tracer and meter are the
OpenTelemetry API's proxies, which re-bind to whatever providers the application sets in
the meantime. `ensure_configured()` runs the registered functions once, in the first
thread that needs it (others wait for it), and costs one global read afterwards. The
registered functions must not raise (their owners guard them). Imports nothing of ours.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

_pending: Callable[[], None] | None = None
_after: list[Callable[[], None]] = []
_ready = True  # nothing registered, or all of it has run
_lock = threading.RLock()
_running: list[bool] = []  # non-empty while the owning thread runs them


def defer(configure: Callable[[], None] | None) -> None:
    """Run `configure` at the first `ensure_configured()` (None: forget a pending one)."""
    global _pending, _ready
    with _lock:
        _pending = configure
        _ready = _pending is None and not _after


def then(callback: Callable[[], None]) -> None:
    """Run `callback` at the first `ensure_configured()`, after the configuration."""
    global _ready
    with _lock:
        _after.append(callback)
        _ready = False


def pending() -> bool:
    return not _ready


def ensure_configured() -> None:
    """Run the deferred configuration, then the callbacks, once."""
    global _pending, _ready
    if _ready:
        return
    with _lock:  # re-entrant: a callback that records finds nothing left to run
        if _running:
            return
        _running.append(True)
        try:
            while _pending is not None or _after:
                configure, _pending = _pending, None
                callbacks = list(_after)
                _after.clear()
                if configure is not None:
                    configure()
                for callback in callbacks:
                    callback()
            _ready = True
        finally:
            _running.clear()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()
    _running.clear()  # a thread of the parent may have held it


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
