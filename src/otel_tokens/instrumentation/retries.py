"""Hooks into the openai and anthropic clients' own retry loops.

Both SDKs (Stainless-generated) retry 429, 408, 409, 5xx, timeouts and connection errors
inside ``SyncAPIClient.request`` / ``AsyncAPIClient.request``, calling
``_sleep_for_retry(retries_taken=, max_retries=, options=, response=)`` before every retry
(``response`` is the failed HTTP response, ``None`` after a timeout or connection error,
which is then the exception being handled). That method computes the wait with
``_calculate_retry_timeout`` and sleeps. We wrap both: the sleep wrapper classifies the
failed attempt, the timeout wrapper reports it with the exact wait the SDK chose, through
`callstate.current_call().add_retry(reason, status_code, wait_s)`, before the sleep (so a
retry cut short by a cancellation is still counted). Outside an instrumented call nothing
is recorded. `patch_*` and `unpatch_*` are idempotent.
"""

from __future__ import annotations

import contextvars
import importlib
import sys
import time
from collections.abc import Callable
from typing import Any

from otel_tokens import names as n
from otel_tokens.guard import internal_error
from otel_tokens.telemetry.callstate import current_call

_pending: contextvars.ContextVar[tuple[str, int | None] | None] = contextvars.ContextVar(
    "otel_tokens_retry_pending", default=None
)
_originals: dict[str, list[tuple[type, str, Any]]] = {}


def classify(status_code: int | None, error: BaseException | None) -> str:
    """The retry reason for a failed attempt (`names.RETRY_*`)."""
    if status_code is not None:
        if status_code == 429:
            return n.RETRY_RATE_LIMIT
        if status_code >= 500:
            return n.RETRY_SERVER_ERROR
        if status_code == 408:
            return n.RETRY_TIMEOUT
        return n.RETRY_OTHER
    if error is not None:
        if any("timeout" in cls.__name__.lower() for cls in type(error).__mro__):
            return n.RETRY_TIMEOUT
        return n.RETRY_CONNECTION
    return n.RETRY_OTHER


def _begin(response: Any) -> contextvars.Token[tuple[str, int | None] | None] | None:
    if current_call() is None:
        return None
    status = getattr(response, "status_code", None) if response is not None else None
    status = status if isinstance(status, int) else None
    error = None if response is not None else sys.exc_info()[1]
    return _pending.set((classify(status, error), status))


def _report(wait_s: float) -> None:
    pending = _pending.get()
    call = current_call()
    if pending is None or call is None:
        return
    _pending.set(None)
    call.add_retry(pending[0], pending[1], wait_s)


def _end(token: contextvars.Token[tuple[str, int | None] | None] | None, started: float) -> None:
    if token is None:
        return
    _report(time.monotonic() - started)  # only when the SDK did not call the timeout hook
    _pending.reset(token)


def _wrap_timeout(original: Callable[..., float]) -> Callable[..., float]:
    def _calculate_retry_timeout(self: Any, *args: Any, **kwargs: Any) -> float:
        timeout = original(self, *args, **kwargs)
        try:
            _report(float(timeout))
        except Exception as exc:
            internal_error("retries.timeout", exc)
        return timeout

    return _calculate_retry_timeout


def _guarded_begin(kwargs: dict[str, Any]) -> contextvars.Token[tuple[str, int | None] | None] | None:
    try:
        return _begin(kwargs.get("response"))
    except Exception as exc:
        internal_error("retries.sleep", exc)
        return None


def _wrap_sleep(original: Callable[..., None]) -> Callable[..., None]:
    def _sleep_for_retry(self: Any, *args: Any, **kwargs: Any) -> None:
        token = _guarded_begin(kwargs)
        started = time.monotonic()
        try:
            original(self, *args, **kwargs)
        finally:
            _end(token, started)

    return _sleep_for_retry


def _wrap_async_sleep(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _sleep_for_retry(self: Any, *args: Any, **kwargs: Any) -> None:
        token = _guarded_begin(kwargs)
        started = time.monotonic()
        try:
            await original(self, *args, **kwargs)
        finally:
            _end(token, started)

    return _sleep_for_retry


def _patch(package: str) -> bool:
    if package in _originals:
        return True
    try:
        base = importlib.import_module(f"{package}._base_client")
    except ImportError:
        return False
    targets: list[tuple[type, str, Callable[[Any], Any]]] = [
        (base.BaseClient, "_calculate_retry_timeout", _wrap_timeout),
        (base.SyncAPIClient, "_sleep_for_retry", _wrap_sleep),
        (base.AsyncAPIClient, "_sleep_for_retry", _wrap_async_sleep),
    ]
    if not all(callable(vars(owner).get(attr)) for owner, attr, _ in targets):
        return False  # an SDK without this seam: calls still work, retries go unseen
    saved: list[tuple[type, str, Any]] = []
    for owner, attr, wrap in targets:
        original = owner.__dict__[attr]
        saved.append((owner, attr, original))
        setattr(owner, attr, wrap(original))
    _originals[package] = saved
    return True


def _unpatch(package: str) -> None:
    for owner, attr, original in reversed(_originals.pop(package, [])):
        setattr(owner, attr, original)


def patch_openai() -> bool:
    """Hook the openai client's retry loop; False when openai is missing or has no such seam."""
    return _patch("openai")


def unpatch_openai() -> None:
    _unpatch("openai")


def patch_anthropic() -> bool:
    """Hook the anthropic client's retry loop; False when anthropic is missing or has no such seam."""
    return _patch("anthropic")


def unpatch_anthropic() -> None:
    _unpatch("anthropic")
