"""Carry attribution across threads and processes.

Processes: the W3C ``traceparent``/``tracestate`` trace context travels as the environment
variables ``TRACEPARENT`` and ``TRACESTATE`` (the OpenTelemetry environment-carrier
convention); the task's attribution (name, id, size, user, team) in a carrier of our own,
``OTEL_TOKENS_PARENT`` (JSON), never in W3C baggage, so no HTTP instrumentation sends it
anywhere; and ``OTEL_TOKENS_REPORT_DIR``: a directory owned by the scope that started the
child, where the child writes its totals when it exits, so the parent's rollup includes
them. `child_environ()` builds a child's environment;
`context_from_environ()` is what a child attaches at start-up. With `install()`,
``subprocess.Popen`` (so ``subprocess.run``, ``asyncio.create_subprocess_*``), ``os.exec*``
and ``multiprocessing`` processes started inside a task get the carriers automatically.

Threads: with `install()`, ``threading.Thread`` runs in the OpenTelemetry context that was
current when ``start()`` was called, and ``ThreadPoolExecutor.submit`` runs each work item
in the submitter's context. asyncio tasks inherit context by themselves.
"""

from __future__ import annotations

import concurrent.futures
import inspect
import multiprocessing.process
import os
import subprocess
import threading
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_tokens import names as n
from otel_tokens.attribution.context import (
    SCOPE_KEY,
    Scope,
    parent_carrier,
    root_scope,
    scope_from_environ,
)
from otel_tokens.guard import internal_error

_PROPAGATOR = TraceContextTextMapPropagator()  # trace context only: the app's baggage is its own
_CARRIER_ENV = {"traceparent": n.ENV_TRACEPARENT, "tracestate": n.ENV_TRACESTATE}
CARRIER_VARIABLES: tuple[str, ...] = (*_CARRIER_ENV.values(), n.ENV_PARENT, n.ENV_REPORT_DIR)


def carriers(ctx: otel_context.Context | None = None, *, for_exec: bool = False) -> dict[str, str]:
    """The environment carriers for `ctx` (default: the current context); empty outside a
    task, agent or span.

    ``OTEL_TOKENS_REPORT_DIR`` is the innermost scope's directory for child reports; for
    `os.exec*` (`for_exec`), the new image replaces this process, so it reports where this
    process would have.
    """
    ctx = ctx if ctx is not None else otel_context.get_current()
    scope = otel_context.get_value(SCOPE_KEY, ctx)
    has_span = trace.get_current_span(ctx).get_span_context().is_valid
    root = root_scope()
    if not isinstance(scope, Scope):
        scope = root if root.report_dir is not None else None  # we are a child: pass it on
    if scope is None and not has_span:
        return {}
    headers: dict[str, str] = {}
    _PROPAGATOR.inject(headers, context=ctx)
    out = {_CARRIER_ENV[k]: v for k, v in headers.items() if k in _CARRIER_ENV}
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
    headers = {k: environ[v] for k, v in _CARRIER_ENV.items() if environ.get(v)}
    return _PROPAGATOR.extract(headers, context=otel_context.Context())


# --- patches ---------------------------------------------------------------------------------
_originals: dict[tuple[object, str], Any] = {}
_installs = 0
_install_lock = threading.Lock()


def _patch(owner: object, attr: str, make: Callable[[Any], Any]) -> None:
    original = getattr(owner, attr)
    _originals[(owner, attr)] = original
    setattr(owner, attr, make(original))


def _thread_start(original: Callable[..., Any]) -> Callable[..., Any]:
    def start(self: threading.Thread) -> None:
        self._otel_tokens_context = otel_context.get_current()  # type: ignore[attr-defined]
        original(self)

    return start


def _thread_bootstrap_inner(original: Callable[..., Any]) -> Callable[..., Any]:
    def _bootstrap_inner(self: threading.Thread) -> None:
        ctx = getattr(self, "_otel_tokens_context", None)
        if ctx is None:
            original(self)
            return
        token = otel_context.attach(ctx)
        try:
            original(self)
        finally:
            otel_context.detach(token)

    return _bootstrap_inner


def _executor_submit(original: Callable[..., Any]) -> Callable[..., Any]:
    def submit(
        self: concurrent.futures.Executor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any
    ) -> Any:
        ctx = otel_context.get_current()

        def in_context(*a: Any, **kw: Any) -> Any:
            token = otel_context.attach(ctx)
            try:
                return fn(*a, **kw)
            finally:
                otel_context.detach(token)

        return original(self, in_context, *args, **kwargs)

    return submit


def _popen_init(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    def __init__(self: subprocess.Popen[Any], *args: Any, **kwargs: Any) -> None:
        try:
            bound = signature.bind(self, *args, **kwargs)
            env = child_environ(bound.arguments.get("env"))
            if env is not None:
                bound.arguments["env"] = env
                args, kwargs = bound.args[1:], bound.kwargs
        except TypeError:
            pass  # bad arguments: let Popen raise its own error
        except Exception as exc:
            internal_error("propagation.popen", exc)
        original(self, *args, **kwargs)

    return __init__


def _execv(original: Callable[..., Any]) -> Callable[..., Any]:
    def execv(path: Any, argv: Any) -> None:
        env = _before_exec(None)
        if env is None:
            original(path, argv)
        else:
            os.execve(path, argv, env)

    return execv


def _execve(original: Callable[..., Any]) -> Callable[..., Any]:
    def execve(path: Any, argv: Any, env: Mapping[str, str]) -> None:
        child = _before_exec(env)
        original(path, argv, env if child is None else child)

    return execve


def _before_exec(base: Mapping[str, str] | None) -> dict[str, str] | None:
    """The process image is about to be replaced: hand this process's totals to its parent,
    export what is buffered (spans still open are lost) and build the new image's environment."""
    try:
        env = child_environ(base, for_exec=True)
        if env is not None or base is not None:
            root_scope().report_to_parent_process(reset=True)
            flush()
        return env
    except Exception as exc:
        internal_error("propagation.exec", exc)
        return None


def flush(*providers: object, where: str = "propagation.flush") -> None:
    """Force-flush the given providers (default: the global tracer provider); never raises."""
    for provider in providers or (trace.get_tracer_provider(),):
        force_flush = getattr(provider, "force_flush", None)
        if callable(force_flush):
            try:
                force_flush()
            except Exception as exc:
                internal_error(where, exc)


def _process_start(original: Callable[..., Any]) -> Callable[..., Any]:
    def start(self: multiprocessing.process.BaseProcess) -> None:
        found = carriers()
        if found:
            self._otel_tokens_carriers = found  # type: ignore[attr-defined]
        original(self)

    return start


def _process_bootstrap(original: Callable[..., Any]) -> Callable[..., Any]:
    def _bootstrap(self: multiprocessing.process.BaseProcess, *args: Any, **kwargs: Any) -> Any:
        found: Mapping[str, str] | None = getattr(self, "_otel_tokens_carriers", None)
        if not found:
            return original(self, *args, **kwargs)
        # In the child: continue the parent's trace and task; report the totals back at the end.
        scope = scope_from_environ({**os.environ, **found}, kind="remote")
        token = otel_context.attach(otel_context.set_value(SCOPE_KEY, scope, context_from_environ(found)))
        try:
            return original(self, *args, **kwargs)
        finally:
            otel_context.detach(token)
            scope.report_to_parent_process()
            flush()

    return _bootstrap


def install() -> None:
    """Patch threads, executors, subprocess, os.exec* and multiprocessing (idempotent, counted)."""
    global _installs
    with _install_lock:
        _installs += 1
        if _installs > 1:
            return
        _patch(threading.Thread, "start", _thread_start)
        _patch(threading.Thread, "_bootstrap_inner", _thread_bootstrap_inner)
        _patch(concurrent.futures.ThreadPoolExecutor, "submit", _executor_submit)
        _patch(subprocess.Popen, "__init__", _popen_init)
        _patch(os, "execv", _execv)
        _patch(os, "execve", _execve)
        _patch(multiprocessing.process.BaseProcess, "start", _process_start)
        _patch(multiprocessing.process.BaseProcess, "_bootstrap", _process_bootstrap)


def uninstall() -> None:
    """Undo `install` once every caller of `install` has called `uninstall`."""
    global _installs
    with _install_lock:
        if _installs == 0:
            return
        _installs -= 1
        if _installs > 0:
            return
        for (owner, attr), original in reversed(list(_originals.items())):
            setattr(owner, attr, original)
        _originals.clear()


def installed() -> bool:
    return _installs > 0


def attach_from_environ() -> None:
    """At process start-up: join the trace a parent process passed down, if any (kept for the
    whole process; the task it belongs to is the root scope, built from the same carriers)."""
    if any(os.environ.get(v) for v in _CARRIER_ENV.values()):
        otel_context.attach(context_from_environ())
