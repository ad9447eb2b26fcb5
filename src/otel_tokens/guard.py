"""The internal-error guard: a bug in our telemetry never breaks the user's call.

Every telemetry entry point runs inside `guarded()` (or calls `internal_error()` from an
``except`` block). The error is logged once per call site with the message "your code
still runs, telemetry degraded", and re-raised only under pytest (so our bugs still fail
our tests) or when ``OTEL_TOKENS_RAISE_INTERNAL_ERRORS=true``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("otel_tokens")

_reported: set[str] = set()


def _should_raise() -> bool:
    if os.environ.get("OTEL_TOKENS_RAISE_INTERNAL_ERRORS", "").lower() in ("1", "true", "yes"):
        return True
    return "pytest" in sys.modules and os.environ.get("OTEL_TOKENS_SWALLOW_INTERNAL_ERRORS") != "1"


def internal_error(where: str, exc: BaseException) -> None:
    """Report an internal error once per `where`; re-raise it under pytest."""
    if _should_raise():
        raise exc
    if where not in _reported:
        _reported.add(where)
        logger.warning(
            "otel-tokens internal error in %s: %r (your code still runs, telemetry degraded)",
            where,
            exc,
            exc_info=exc,
        )


@contextmanager
def guarded(where: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        internal_error(where, exc)
