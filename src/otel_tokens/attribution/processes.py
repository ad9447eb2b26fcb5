"""Child processes: ``subprocess``, ``os.exec*`` and ``multiprocessing.Process``.

A child started inside a task gets the carriers (`carriers.carriers`) in its environment
(``subprocess.Popen``, hence ``subprocess.run`` and asyncio subprocesses; ``os.exec*``) or
on the Process object (``multiprocessing``, any start method). Worker processes that pools
start get none: their work items carry their own (`workers.RemoteItem`).

``os.exec*`` replaces this process: first its totals go where its parent collects them
and its telemetry is flushed, waiting at most `carriers.FLUSH_TIMEOUT_S`, once per exec
however the ``exec*`` variants call each other (``execvp`` tries each ``PATH`` entry).
A ``multiprocessing`` child runs as the parent's task, and at its end (it leaves by
``os._exit``: no ``atexit``) reports its totals and flushes traces and metrics, bounded.
"""

from __future__ import annotations

import inspect
import multiprocessing.process
import os
import subprocess
import threading
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context

from otel_tokens.attribution.carriers import carriers, child_environ, context_from_environ, flush
from otel_tokens.attribution.context import SCOPE_KEY, root_scope, scope_from_environ
from otel_tokens.attribution.workers import Patch, starting_workers
from otel_tokens.guard import internal_error

_exec = threading.local()  # .active: inside an exec* wrapper, the hook has run


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


def before_exec(base: Mapping[str, str] | None) -> dict[str, str] | None:
    """The process image is about to be replaced: hand this process's totals to its parent,
    export what is buffered (bounded; spans still open are lost) and build the new image's
    environment (None: keep `base`)."""
    try:
        env = child_environ(base, for_exec=True)
        if env is not None or base is not None:
            root_scope().report_to_parent_process(reset=True)
            flush(where="propagation.exec")
        return env
    except Exception as exc:
        internal_error("propagation.exec", exc)
        return None


def _exec_wrapper(original: Callable[..., Any], with_env: str | None) -> Callable[..., Any]:
    """`original` is ``os.execv[p]e`` when `with_env` is None, else ``os.execv[p]``, which
    turns into ``os.<with_env>`` when there are carriers to pass."""

    def exec_(file: Any, args: Any, *rest: Any) -> Any:
        if getattr(_exec, "active", False):
            return original(file, args, *rest)  # the hook ran in the outer exec* call
        _exec.active = True
        try:
            env = before_exec(rest[0] if with_env is None and rest else None)
            if env is None:
                return original(file, args, *rest)
            if with_env is None:
                return original(file, args, env)
            return getattr(os, with_env)(file, args, env)
        finally:
            _exec.active = False  # exec failed (e.g. not found): the process goes on

    return exec_


def _process_start(original: Callable[..., Any]) -> Callable[..., Any]:
    def start(self: multiprocessing.process.BaseProcess) -> None:
        found = {} if starting_workers() else carriers()
        if found:
            self._otel_tokens_carriers = found  # type: ignore[attr-defined]
        original(self)

    return start


def _process_bootstrap(original: Callable[..., Any]) -> Callable[..., Any]:
    def _bootstrap(self: multiprocessing.process.BaseProcess, *args: Any, **kwargs: Any) -> Any:
        found: Mapping[str, str] | None = getattr(self, "_otel_tokens_carriers", None)
        if not found:
            try:
                return original(self, *args, **kwargs)
            finally:
                flush(where="propagation.process_exit")
        # In the child: continue the parent's trace and task; report the totals back at the end.
        scope = scope_from_environ({**os.environ, **found}, kind="remote")
        token = otel_context.attach(otel_context.set_value(SCOPE_KEY, scope, context_from_environ(found)))
        try:
            return original(self, *args, **kwargs)
        finally:
            otel_context.detach(token)
            scope.report_to_parent_process()
            flush(where="propagation.process_exit")

    return _bootstrap


PATCHES: tuple[Patch, ...] = (
    (subprocess.Popen, "__init__", _popen_init),
    (os, "execv", lambda original: _exec_wrapper(original, "execve")),
    (os, "execve", lambda original: _exec_wrapper(original, None)),
    (os, "execvp", lambda original: _exec_wrapper(original, "execvpe")),
    (os, "execvpe", lambda original: _exec_wrapper(original, None)),
    (multiprocessing.process.BaseProcess, "start", _process_start),
    (multiprocessing.process.BaseProcess, "_bootstrap", _process_bootstrap),
)
