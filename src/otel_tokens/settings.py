"""Checks of the environment variables whose readers would otherwise fall back silently.

Readers across the package keep their lenient behaviour (an unrecognised boolean is "off", a
missing report directory loses only this process's report). `check()` says so, once per
process and variable, as one line naming the variable and the fix, so a typo such as
``OTEL_TOKENS_HASH_USER_IDS=ture`` does not go unnoticed. Variables with their own messages
(``OTEL_TOKENS_PRICES``, ``OTEL_TOKENS_PROVIDERS``, ``OTEL_TOKENS_MAX_ATTR_VALUES``,
``OTEL_TOKENS_STORE``, ``OTEL_TOKENS_PARENT``) are reported where they are read.

Layer 1: imports only `names` and the standard library.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from otel_tokens import names as n

logger = logging.getLogger("otel_tokens")

TRUE = ("1", "true", "yes", "on")
FALSE = ("", "0", "false", "no", "off")

_reported: set[str] = set()


def _boolean(name: str, value: str) -> str | None:
    if value.strip().lower() in TRUE + FALSE:
        return None
    return f"{name}={value!r} is not a boolean; it is taken as false (fix: {name}=true or {name}=false)"


def _report_dir(name: str, value: str) -> str | None:
    if not value or (os.path.isdir(value) and os.access(value, os.W_OK | os.X_OK)):
        return None
    return (
        f"{name}={value!r} is not a writable directory; this process's totals will not reach its "
        f"parent task (fix: unset {name}; otel-tokens sets it for the processes it starts)"
    )


CHECKS: dict[str, Callable[[str, str], str | None]] = {
    n.ENV_ENABLED: _boolean,
    n.ENV_HASH_USER_IDS: _boolean,
    n.ENV_CAPTURE_CONTENT: _boolean,
    n.ENV_REPORT_DIR: _report_dir,
}


def problems(environ: Mapping[str, str]) -> list[str]:
    """One line per malformed variable of `environ`, each naming it and the fix."""
    out = []
    for name, check in CHECKS.items():
        value = environ.get(name)
        if value is not None:
            problem = check(name, value)
            if problem is not None:
                out.append("otel-tokens: " + problem)
    return out


def check(environ: Mapping[str, str] | None = None) -> None:
    """Log each problem of the environment once per process (never raises)."""
    try:
        for line in problems(os.environ if environ is None else environ):
            if line not in _reported:
                _reported.add(line)
                logger.warning("%s", line)
    except Exception:  # a check must never stop instrumentation
        logger.debug("otel-tokens: environment check failed", exc_info=True)
