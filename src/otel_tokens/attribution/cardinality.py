"""The cardinality guard for metric attributes.

Each metric attribute key may take at most ``OTEL_TOKENS_MAX_ATTR_VALUES`` (default 200)
distinct values in a process; later new values are reported as ``_other``. Ids (task,
trace, run, conversation) never reach metrics at all; this bounds the rest (task names,
users, teams, agents, pipelines, models, server addresses, task outcomes).

A per-key cap still lets the *series* count grow as the product of the keys' caps, so
`bounded_series` also caps the distinct attribute sets of each family of metrics at
``OTEL_TOKENS_MAX_SERIES`` (default 1000): a new set past the cap is counted in one
overflow series, ``{otel.metric.overflow: true}`` (the SDK's own convention), so totals
stay exact, admitted series never reset and memory stays bounded.
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
DEFAULT_MAX_SERIES = 1000
OVERFLOW_SERIES: Mapping[str, AttrValue] = {n.METRIC_OVERFLOW: True}

_bounded_lock = threading.Lock()
_bounded_seen: dict[str, set[AttrValue]] = {}


def _positive(variable: str, default: int) -> int:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        logger.warning(
            "otel-tokens: %s=%r is not a positive integer; using %d (fix: e.g. %s=%d)",
            variable,
            raw,
            default,
            variable,
            default,
        )
        return default
    return value


@functools.cache
def max_attr_values() -> int:
    return _positive(n.ENV_MAX_ATTR_VALUES, DEFAULT_MAX_ATTR_VALUES)


@functools.cache
def max_series() -> int:
    return _positive(n.ENV_MAX_SERIES, DEFAULT_MAX_SERIES)


_series_lock = threading.Lock()
_series_seen: dict[str, set[frozenset[tuple[str, AttrValue]]]] = {}


def bounded_series(family: str, attrs: Mapping[str, AttrValue]) -> Mapping[str, AttrValue]:
    """`attrs`, or the overflow series once `family` has `max_series()` other sets."""
    key = frozenset(attrs.items())
    with _series_lock:
        seen = _series_seen.setdefault(family, set())
        if key in seen:
            return attrs
        if len(seen) < max_series():
            seen.add(key)
            return attrs
        first = len(seen) == max_series()
        if first:
            seen.add(frozenset())  # marks "said"; no real attribute set is empty
    if first:
        logger.warning(
            "otel-tokens: %s metrics reached %d attribute sets; new ones are counted in the overflow "
            "series {%s: true} (raise %s, or keep free text out of task names and outcomes)",
            family,
            max_series(),
            n.METRIC_OVERFLOW,
            n.ENV_MAX_SERIES,
        )
    return OVERFLOW_SERIES


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


# bumped by `reset_bounds`: caches of bounded attribute sets (the recorder's) drop their entries
generation = 0


def reset_bounds() -> None:
    """Forget the values seen and re-read the cap (tests)."""
    global generation
    generation += 1
    with _bounded_lock:
        _bounded_seen.clear()
    with _series_lock:
        _series_seen.clear()
    max_attr_values.cache_clear()
    max_series.cache_clear()
