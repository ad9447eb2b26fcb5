"""Per-call mutable state, visible to hooks that run *inside* an instrumented SDK call.

The core sets it for the duration of one instrumented call (contextvar, so threads and
asyncio tasks each see their own). SDK retry hooks (``retries.py``) report each failed
attempt through `CallState.add_retry`; the recorder turns that into
``otel_tokens.retry.count``, one span event per failed attempt and the retries counter.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass(slots=True)
class RetryAttempt:
    reason: str  # "rate_limit" | "server_error" | "timeout" | "connection" | "other"
    status_code: int | None
    wait_s: float


@dataclass(slots=True)
class CallState:
    retries: tuple[RetryAttempt, ...] = ()  # a tuple: no list built for the calls that never retry

    def add_retry(self, reason: str, status_code: int | None, wait_s: float) -> None:
        self.retries += (RetryAttempt(reason, status_code, wait_s),)


_current: contextvars.ContextVar[CallState | None] = contextvars.ContextVar("otel_tokens_call", default=None)


def current_call() -> CallState | None:
    """The state of the instrumented call running in this context, if any."""
    return _current.get()


def enter_call() -> tuple[CallState, contextvars.Token[CallState | None]]:
    state = CallState()
    return state, _current.set(state)


def exit_call(token: contextvars.Token[CallState | None]) -> None:
    _current.reset(token)
