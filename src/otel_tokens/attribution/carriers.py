"""What crosses a process boundary, and the bounded flush before a process ends.

A child process started inside a task gets, as environment variables, the W3C trace
context (``TRACEPARENT``, ``TRACESTATE``: ids and flags only), the task's attribution in a
carrier of our own, ``OTEL_TOKENS_PARENT`` (JSON: task name, id, size, user, team), and
``OTEL_TOKENS_REPORT_DIR``, a directory owned by the scope that started the child, where
the child writes its totals so the parent's rollup includes them. Never W3C baggage: the
app's own baggage is left alone and nothing of ours reaches outbound HTTP headers.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_tokens import deferred
from otel_tokens import names as n
from otel_tokens.attribution.context import SCOPE_KEY, Scope, parent_carrier, root_scope, span_parent
from otel_tokens.guard import internal_error

logger = logging.getLogger("otel_tokens")

_PROPAGATOR = TraceContextTextMapPropagator()  # trace context only: the app's baggage is its own
TRACE_VARIABLES = {"traceparent": n.ENV_TRACEPARENT, "tracestate": n.ENV_TRACESTATE}
CARRIER_VARIABLES: tuple[str, ...] = (*TRACE_VARIABLES.values(), n.ENV_PARENT, n.ENV_REPORT_DIR)

# The longest a process waits for its telemetry before it ends or is replaced (``os.exec*``,
# a pool work item, a multiprocessing child): an unreachable collector costs at most this.
FLUSH_TIMEOUT_S = 1.0


def carriers(ctx: otel_context.Context | None = None, *, for_exec: bool = False) -> dict[str, str]:
    """The environment carriers for `ctx` (default: the current context); empty outside a
    task, agent or span.

    ``OTEL_TOKENS_REPORT_DIR`` is the innermost scope's directory for child reports; for
    `os.exec*` (`for_exec`), the new image replaces this process, so it reports where this
    process would have.
    """
    ctx = ctx if ctx is not None else otel_context.get_current()
    found = otel_context.get_value(SCOPE_KEY, ctx)
    root = root_scope()
    scope = found if isinstance(found, Scope) else (root if root.report_dir is not None else None)
    if scope is not None:
        ctx = span_parent(scope, ctx)
    if scope is None and not trace.get_current_span(ctx).get_span_context().is_valid:
        return {}
    headers: dict[str, str] = {}
    _PROPAGATOR.inject(headers, context=ctx)
    out = {TRACE_VARIABLES[k]: v for k, v in headers.items() if k in TRACE_VARIABLES}
    parent = parent_carrier(scope) if scope is not None else None
    if parent is not None:
        out[n.ENV_PARENT] = parent
    if for_exec:
        if root.report_dir is not None:
            out[n.ENV_REPORT_DIR] = root.report_dir
    elif scope is not None:
        out[n.ENV_REPORT_DIR] = scope.children_report_dir()
    return out


def child_environ(base: Mapping[str, str] | None = None, *, for_exec: bool = False) -> dict[str, str] | None:
    """`base` (default os.environ) with the current carriers, or None when there are none.

    Stale carriers inherited in `base` are replaced, never merged.
    """
    found = carriers(for_exec=for_exec)
    if not found:
        return None
    env = dict(os.environ if base is None else base)
    for key in CARRIER_VARIABLES:
        env.pop(key, None)
    env.update(found)
    return env


def context_from_environ(environ: Mapping[str, str] | None = None) -> otel_context.Context:
    """The trace context a parent process passed down in ``TRACEPARENT``/``TRACESTATE``."""
    environ = os.environ if environ is None else environ
    headers = {k: environ[v] for k, v in TRACE_VARIABLES.items() if environ.get(v)}
    return _PROPAGATOR.extract(headers, context=otel_context.Context())


def flush(*providers: object, where: str = "propagation.flush", timeout_s: float = FLUSH_TIMEOUT_S) -> bool:
    """Force-flush `providers` (default: the global tracer and meter providers), waiting at
    most `timeout_s` in all; never raises. True when every flush finished in time.

    The SDK's span processors export on the caller's thread with the exporter's retries
    (seconds against an unreachable collector), so the flushes run on a daemon thread and
    the caller stops waiting at the deadline; an export still running then is abandoned.
    Finishes that finalisers queued (abandoned streams) are recorded first, on this stack.
    """
    try:
        deferred.drain()
    except Exception as exc:
        internal_error(where, exc)
    targets = providers or (trace.get_tracer_provider(), metrics.get_meter_provider())
    flushes = [f for f in (getattr(p, "force_flush", None) for p in targets) if callable(f)]
    if not flushes:
        return True
    millis = max(1, int(timeout_s * 1000))

    def run() -> None:
        for force_flush in flushes:
            try:
                force_flush(timeout_millis=millis)
            except TypeError:
                force_flush()
            except Exception as exc:
                internal_error(where, exc)

    worker = threading.Thread(target=run, name="otel-tokens-flush", daemon=True)
    started = time.monotonic()
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        logger.debug("otel-tokens: %s gave up after %.1f s (collector unreachable?)", where, timeout_s)
        return False
    logger.debug("otel-tokens: %s took %.3f s", where, time.monotonic() - started)
    return True
