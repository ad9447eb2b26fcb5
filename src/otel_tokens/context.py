"""Attribution context: who, which task, which agent, which CI run (STUB — issue 3 owns it).

The recorder depends only on this contract:

* ``current_scope() -> Scope``: the innermost task/agent scope, or a process-wide root
  scope built from the ``OTEL_TOKENS_*`` environment variables.
* ``Scope.span_attributes``: attributes for every LLM span inside the scope (cached).
* ``Scope.metric_attributes``: the bounded subset allowed on metrics (cached).
* ``Scope.next_iteration() -> int``: the 1-based index of the next LLM call in the scope.
* ``Scope.add_call(record, cost)``: roll a finished call up into this scope and its parents.
* ``Scope.is_repeat(fingerprint) -> bool``: whether an identical request was seen before.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from types import MappingProxyType

from . import names as n
from .record import CallRecord

AttrValue = str | int | float | bool


class Scope:
    def __init__(self, span_attrs: Mapping[str, AttrValue], metric_attrs: Mapping[str, AttrValue]) -> None:
        self.span_attributes: Mapping[str, AttrValue] = MappingProxyType(dict(span_attrs))
        self.metric_attributes: Mapping[str, AttrValue] = MappingProxyType(dict(metric_attrs))
        self._lock = threading.Lock()
        self._iterations = 0
        self._seen: set[int] = set()

    def next_iteration(self) -> int:
        with self._lock:
            self._iterations += 1
            return self._iterations

    def add_call(self, record: CallRecord, cost: float | None) -> None:
        return None

    def is_repeat(self, fingerprint: int) -> bool:
        with self._lock:
            if fingerprint in self._seen:
                return True
            self._seen.add(fingerprint)
            return False


_root: Scope | None = None


def _env_root() -> Scope:
    span: dict[str, AttrValue] = {}
    metric: dict[str, AttrValue] = {}
    for env, attr, on_metrics in (
        (n.ENV_USER, n.USER_ID, True),
        (n.ENV_TEAM, n.TEAM, True),
        (n.ENV_TASK, n.TASK_NAME, True),
        (n.ENV_TASK_ID, n.TASK_ID, False),
        (n.ENV_TASK_SIZE, n.TASK_SIZE, True),
    ):
        value = os.environ.get(env)
        if value:
            span[attr] = value
            if on_metrics:
                metric[attr] = value
    return Scope(span, metric)


def current_scope() -> Scope:
    global _root
    if _root is None:
        _root = _env_root()
    return _root


def reset_for_tests() -> None:
    global _root
    _root = None
