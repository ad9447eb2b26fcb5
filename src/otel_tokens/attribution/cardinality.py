"""The cardinality guard for metric attributes.

Each metric attribute key may take at most ``OTEL_TOKENS_MAX_ATTR_VALUES`` (default 200)
distinct values in a process; later new values are reported as ``_other``. Ids (task,
trace, run, conversation) never reach metrics at all; this bounds the rest (task names,
users, teams, agents, pipelines, models).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Mapping

from otel_tokens import names as n

AttrValue = str | int | float | bool

logger = logging.getLogger("otel_tokens")

DEFAULT_MAX_ATTR_VALUES = 200

_bounded_lock = threading.Lock()
_bounded_seen: dict[str, set[AttrValue]] = {}


@functools.cache
def max_attr_values() -> int:
    raw = os.environ.get(n.ENV_MAX_ATTR_VALUES, "").strip()
    if not raw:
        return DEFAULT_MAX_ATTR_VALUES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        logger.warning(
            "otel-tokens: %s=%r is not a positive integer; using %d (fix: e.g. %s=%d)",
            n.ENV_MAX_ATTR_VALUES,
            raw,
            DEFAULT_MAX_ATTR_VALUES,
            n.ENV_MAX_ATTR_VALUES,
            DEFAULT_MAX_ATTR_VALUES,
        )
        return DEFAULT_MAX_ATTR_VALUES
    return value


def bounded(attrs: Mapping[str, AttrValue]) -> dict[str, AttrValue]:
    """Cap the distinct values each metric attribute key takes in this process.

    The first `max_attr_values()` distinct values of a key pass; later new values become
    ``_other`` (`names.OVERFLOW_VALUE`). Values already admitted always pass.
    """
    cap = max_attr_values()
    out: dict[str, AttrValue] = {}
    with _bounded_lock:
        for key, value in attrs.items():
            seen = _bounded_seen.setdefault(key, set())
            if value in seen:
                out[key] = value
            elif len(seen) < cap:
                seen.add(value)
                out[key] = value
            else:
                out[key] = n.OVERFLOW_VALUE
    return out


def reset_bounds() -> None:
    """Forget the values seen and re-read the cap (tests)."""
    with _bounded_lock:
        _bounded_seen.clear()
    max_attr_values.cache_clear()
