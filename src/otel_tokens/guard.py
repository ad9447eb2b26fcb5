"""The internal-error guard: a bug in our telemetry never breaks the user's call.

Every telemetry entry point runs inside `guarded()` (or calls `internal_error()` from an
``except`` block). The error is logged once per call site with the message "your code
still runs, telemetry degraded", and re-raised only under the explicit switch
``OTEL_TOKENS_RAISE_INTERNAL_ERRORS=true``, which otel-tokens' own test suite sets (so our
bugs fail our tests). Being imported by pytest is no reason: users run their evals under
pytest too, and a telemetry bug must not break their calls there either.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

logger = logging.getLogger("otel_tokens")

_reported: set[str] = set()
# = names.ENV_RAISE_INTERNAL_ERRORS (the guard sits beside names in layer 0 and imports nothing)
SWITCH = "OTEL_TOKENS_RAISE_INTERNAL_ERRORS"


def _should_raise() -> bool:
    return os.environ.get(SWITCH, "").strip().lower() in ("1", "true", "yes", "on")


def internal_error(where: str, exc: BaseException) -> None:
    """Report an internal error once per `where`; re-raise it under the explicit switch."""
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
