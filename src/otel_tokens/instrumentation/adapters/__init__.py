"""Thin per-SDK adapters: which methods to patch and how to read usage. Pure functions."""

from __future__ import annotations

from typing import Any


def get(obj: Any, name: str) -> Any:
    """Field `name` of an SDK model or a decoded JSON dict, or None."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def count(obj: Any, *path: str) -> int | None:
    """An integer token count at `path`, or None when absent or not an int."""
    for name in path:  # get(), inlined: this runs for every count of every call
        if obj is None:
            return None
        obj = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return obj if isinstance(obj, int) and not isinstance(obj, bool) else None


def texts(obj: Any, fields: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """Record fields from non-empty string fields of `obj`: `texts(r, (("response_id", "id"),))`
    (pairs, not keywords: no dict is built for the arguments on every call)."""
    out: dict[str, Any] = {}
    for field, name in fields:
        value = get(obj, name)
        if isinstance(value, str) and value:
            out[field] = value
    return out
