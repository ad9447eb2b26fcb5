"""The first-use hook: configure providers when they are first needed, not at start-up.

The distro role registers, with `defer()`, how to configure OpenTelemetry from the
environment. Nothing runs then: until the first instrumented LLM call (telemetry) or the
first task or agent scope (attribution) calls `ensure_configured()`, our tracer and meter
are the OpenTelemetry API's proxies, which re-bind to whatever providers the application
sets in the meantime. `ensure_configured()` runs the registered function once, in the
first thread that needs it (others wait for it), and costs one global read afterwards.
The registered function must not raise (the distro guards it). Imports nothing of ours.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

_pending: Callable[[], None] | None = None
_lock = threading.RLock()


def defer(configure: Callable[[], None] | None) -> None:
    """Run `configure` at the first `ensure_configured()` (None: forget a pending one)."""
    global _pending
    with _lock:
        _pending = configure


def pending() -> bool:
    return _pending is not None


def ensure_configured() -> None:
    """Run the deferred configuration once."""
    global _pending
    if _pending is None:
        return
    with _lock:
        configure, _pending = _pending, None
        if configure is not None:
            configure()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()  # a thread of the parent may have held it


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
