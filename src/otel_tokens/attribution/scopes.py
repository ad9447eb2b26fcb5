"""`task()` and `agent()`: attribution scopes as context managers and decorators.

    with otel_tokens.task("triage", size="S", user="alice", team="support") as t:
        with otel_tokens.agent("planner"):
            client.chat.completions.create(...)   # carries task, user, team, agent, iteration
        t.set_outcome("escalated")

Both work as ``with``, ``async with`` and as decorators of plain and ``async`` functions
(a decorated function opens a fresh scope, with a fresh task id, on every call). A scope
opens an INTERNAL span (``invoke_workflow {name}`` / ``invoke_agent {name}``), puts itself
into the OpenTelemetry context (never into baggage: nothing of it reaches outbound HTTP
headers), and at its end sets
the rollup of everything inside it on its span. A finished task also records the task
cost, LLM-calls-per-task histograms and the finished-tasks counter.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import os
import sys
import threading
import uuid
from collections.abc import Callable, Mapping
from contextvars import Token
from types import TracebackType
from typing import Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_tokens import deferred
from otel_tokens import names as n
from otel_tokens.attribution.cardinality import bounded, bounded_series
from otel_tokens.attribution.context import (
    SCOPE_KEY,
    AttrValue,
    Scope,
    Totals,
    current_scope,
    pseudonymise_user,
    span_parent,
)
from otel_tokens.firstuse import ensure_configured, then
from otel_tokens.guard import internal_error

F = TypeVar("F", bound=Callable[..., Any])

_default_tracer_provider: trace.TracerProvider | None = None
_default_meter_provider: metrics.MeterProvider | None = None


def configure(
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> None:
    """Providers for scopes that are not given one (``None``: the global providers).

    ``instrument(tracer_provider=..., meter_provider=...)`` calls this, so task and agent
    spans go where the LLM spans go.
    """
    global _default_tracer_provider, _default_meter_provider
    _default_tracer_provider, _default_meter_provider = tracer_provider, meter_provider


class _TaskInstruments:
    def __init__(self, meter: metrics.Meter) -> None:
        self.cost = meter.create_histogram(
            n.M_TASK_COST,
            unit=n.UNIT_USD,
            description="Cost of each finished task",
            explicit_bucket_boundaries_advisory=list(n.TASK_COST_BUCKETS),
        )
        self.llm_calls = meter.create_histogram(
            n.M_TASK_LLM_CALLS,
            unit=n.UNIT_CALL,
            description="LLM calls per finished task (agent loop depth)",
            explicit_bucket_boundaries_advisory=list(n.TASK_CALLS_BUCKETS),
        )
        self.tasks = meter.create_counter(n.M_TASKS, unit="{task}", description="Finished tasks by outcome")


_instruments: dict[int, tuple[metrics.MeterProvider, _TaskInstruments]] = {}
_instruments_lock = threading.Lock()


def _task_instruments(provider: metrics.MeterProvider) -> _TaskInstruments:
    with _instruments_lock:
        entry = _instruments.get(id(provider))
        if entry is None or entry[0] is not provider:
            entry = (provider, _TaskInstruments(provider.get_meter(n.SCOPE)))
            _instruments[id(provider)] = entry
        return entry[1]


class ScopeManager:
    """One `task()` or `agent()` scope; use it once with ``with``/``async with`` or as a decorator."""

    def __init__(
        self,
        kind: str,
        name: str,
        attrs: Mapping[str, AttrValue | None],
        tracer_provider: trace.TracerProvider | None,
        meter_provider: metrics.MeterProvider | None,
    ) -> None:
        self.kind = kind
        self.name = name
        self._attrs = dict(attrs)
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._outcome: str | None = None
        self._extra: dict[str, AttrValue] = {}
        self._token: Token[otel_context.Context] | None = None
        self.scope: Scope | None = None
        self.span: trace.Span = trace.INVALID_SPAN

    @property
    def id(self) -> str | None:
        """The task id (generated when not given) once the scope is entered."""
        value = (
            self.scope.span_attributes.get(n.TASK_ID)
            if self.scope is not None
            else self._attrs.get(n.TASK_ID)
        )
        return None if value is None else str(value)

    def set_outcome(self, outcome: str) -> None:
        """Record the task's outcome explicitly (default: success, or failure on an exception)."""
        self._outcome = outcome

    def set_attribute(self, key: str, value: AttrValue) -> None:
        """Set an attribute on the scope's span when it ends (e.g. the exit code of a command)."""
        self._extra[key] = value

    def totals(self) -> Totals:
        """The rollup so far (all zero before the scope is entered)."""
        return self.scope.totals() if self.scope is not None else Totals()

    # -- context manager ------------------------------------------------------------------
    def __enter__(self) -> ScopeManager:
        self._token = otel_context.attach(self._open())
        return self

    def _open(self) -> otel_context.Context:
        """Start the scope (its span, its rollup); the context to run its work in."""
        ensure_configured()  # providers from the environment, unless the app set its own
        parent = current_scope()
        return self._start_span(self._open_scope(parent), span_parent(parent))

    def _open_scope(self, parent: Scope) -> Scope:
        """The scope's attribution and rollup, without its span."""
        if self.scope is not None:
            raise RuntimeError(f"{self.kind}({self.name!r}) is already in use; open a new one for each block")
        attrs = dict(self._attrs)
        if self.kind == "task" and attrs.get(n.TASK_ID) is None:
            attrs[n.TASK_ID] = uuid.uuid4().hex
        # A nested task has its own id and size; user and team are inherited when unset.
        drop = (n.TASK_SIZE,) if self.kind == "task" else ()
        scope = self.scope = parent.child(self.kind, self.name, attrs, drop=drop)
        return scope

    def _start_span(self, scope: Scope, parent_ctx: otel_context.Context | None) -> otel_context.Context:
        """Start the scope's span under `parent_ctx`; the context with both in it."""
        try:
            tracer = trace.get_tracer(
                n.SCOPE, tracer_provider=self._tracer_provider or _default_tracer_provider
            )
            op = n.OP_INVOKE_WORKFLOW if self.kind == "task" else n.OP_INVOKE_AGENT
            name_key = n.GEN_AI_WORKFLOW_NAME if self.kind == "task" else n.GEN_AI_AGENT_NAME
            span_attrs: dict[str, AttrValue] = {
                n.GEN_AI_OPERATION_NAME: op,
                name_key: self.name,
                **scope.span_attributes,
            }
            self.span = tracer.start_span(
                f"{op} {self.name}", parent_ctx, kind=SpanKind.INTERNAL, attributes=span_attrs
            )
            scope.span_context = self.span.get_span_context()
            ctx = otel_context.set_value(SCOPE_KEY, scope, trace.set_span_in_context(self.span, parent_ctx))
        except Exception as exc:
            internal_error("attribution.enter", exc)
            ctx = otel_context.set_value(SCOPE_KEY, scope)
        return ctx

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self._close(exc)
        finally:
            if self._token is not None:
                otel_context.detach(self._token)
                self._token = None

    def _close(self, exc: BaseException | None) -> None:
        scope = self.scope
        if scope is None:
            return
        try:
            self._finish(scope, exc)
        except Exception as error:
            internal_error("attribution.exit", error)
        finally:
            scope.ended = True  # threads started inside it fall back to its parent from now on

    async def __aenter__(self) -> ScopeManager:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _finish(self, scope: Scope, exc: BaseException | None) -> None:
        deferred.drain()  # streams collected inside the scope roll up before it reports
        scope.collect_child_reports()
        totals = scope.totals()
        outcome = self._outcome or (n.OUTCOME_FAILURE if exc is not None else n.OUTCOME_SUCCESS)
        span = self.span
        span.set_attributes({**totals.span_attributes(), n.TASK_OUTCOME: outcome, **self._extra})
        if exc is not None:
            span.record_exception(exc)
            span.set_attribute(n.ERROR_TYPE, type(exc).__qualname__)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        span.end()
        if self.kind == "task":
            provider = self._meter_provider or _default_meter_provider or metrics.get_meter_provider()
            instruments = _task_instruments(provider)
            attrs: Mapping[str, AttrValue] = {
                **{k: v for k, v in scope.metric_attributes.items() if k != n.GEN_AI_AGENT_NAME},
                **bounded({n.TASK_OUTCOME: outcome}),  # set_outcome() takes free text: spans keep it
            }
            attrs = bounded_series(n.M_TASKS, attrs)
            instruments.cost.record(float(totals.cost), attrs)
            instruments.llm_calls.record(totals.llm_calls, attrs)
            instruments.tasks.add(1, attrs)

    # -- decorator ------------------------------------------------------------------------
    def __call__(self, func: F) -> F:
        def fresh() -> ScopeManager:
            return ScopeManager(
                self.kind, self.name, self._attrs, self._tracer_provider, self._meter_provider
            )

        if inspect.isasyncgenfunction(func):

            @functools.wraps(func)
            def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
                return _scoped_async_generator(fresh(), func, args, kwargs)

            return cast(F, agen_wrapper)
        if inspect.isgeneratorfunction(func):

            @functools.wraps(func)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                return _scoped_generator(fresh(), func, args, kwargs)

            return cast(F, gen_wrapper)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with fresh():
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with fresh():
                return func(*args, **kwargs)

        return cast(F, wrapper)


# A decorated generator function's scope lives from its first item to its end, not from the
# call that creates the generator (that call runs none of its body). Its context is attached
# only while the body runs, around each step, so the consumer's code between items is not
# attributed to it. A generator closed early or collected ends its scope at the next safe
# point (`otel_tokens.deferred`): a finaliser never records.


class _GeneratorLifetime:
    """Ends a scoped generator's scope: with the error that ended it (None at its end), or at
    the next safe point when it is closed early or collected (GeneratorExit)."""

    def __init__(self, manager: ScopeManager) -> None:
        self._manager = manager

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, GeneratorExit):
            deferred.defer(functools.partial(self._manager._close, None))
        else:
            self._manager._close(exc)


class _Attached:
    """``with _Attached(ctx):`` runs its body with the scope's context attached."""

    __slots__ = ("_ctx", "_token")

    def __init__(self, ctx: otel_context.Context) -> None:
        self._ctx = ctx

    def __enter__(self) -> None:
        self._token = otel_context.attach(self._ctx)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        otel_context.detach(self._token)


def _scoped_generator(manager: ScopeManager, func: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    ctx = manager._open()
    inner = func(*args, **kwargs)
    sent: Any = None
    thrown: BaseException | None = None
    with _GeneratorLifetime(manager):
        while True:
            try:
                with _Attached(ctx):
                    if thrown is not None:
                        exc, thrown = thrown, None
                        item = inner.throw(exc)
                    else:
                        item = inner.send(sent)
            except StopIteration as stop:
                return stop.value
            try:
                sent = yield item
            except GeneratorExit:
                with _Attached(ctx):
                    inner.close()
                raise
            except BaseException as exc:
                thrown = exc


async def _scoped_async_generator(
    manager: ScopeManager, func: Callable[..., Any], args: Any, kwargs: Any
) -> Any:
    ctx = manager._open()
    inner = func(*args, **kwargs)
    sent: Any = None
    thrown: BaseException | None = None
    with _GeneratorLifetime(manager):
        while True:
            try:
                with _Attached(ctx):
                    if thrown is not None:
                        exc, thrown = thrown, None
                        item = await inner.athrow(exc)
                    else:
                        item = await inner.asend(sent)
            except StopAsyncIteration:
                return
            try:
                sent = yield item
            except GeneratorExit:
                with _Attached(ctx):
                    await inner.aclose()
                raise
            except BaseException as exc:
                thrown = exc


def task(
    name: str,
    *,
    id: str | None = None,
    size: str | None = None,
    user: str | None = None,
    team: str | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> ScopeManager:
    """A task scope: every LLM call inside is attributed to it and rolled up into its span.

    ``id`` defaults to a fresh unique id per run; ``size`` is the team's rough class for
    the work (``S``/``M``/``L``); ``user`` is pseudonymised when OTEL_TOKENS_HASH_USER_IDS
    is on. Unset fields are inherited from the enclosing task or the environment.
    """
    attrs: dict[str, AttrValue | None] = {
        n.TASK_NAME: name,
        n.TASK_ID: id,
        n.TASK_SIZE: size,
        n.USER_ID: pseudonymise_user(user) if user else None,
        n.TEAM: team,
    }
    return ScopeManager("task", name, attrs, tracer_provider, meter_provider)


def agent(
    name: str,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
) -> ScopeManager:
    """An agent scope (``invoke_agent {name}``): LLM calls inside carry ``gen_ai.agent.name``
    and an iteration count of their own."""
    return ScopeManager("agent", name, {n.GEN_AI_AGENT_NAME: name}, tracer_provider, meter_provider)


# --- a process attributed only by the environment is one task run ---------------------------
# Its attribution holds from start-up; its span and the providers wait for first use (the
# first LLM call or task/agent scope), so an app may still set its own providers after
# import. A process that never gets there (zero LLM calls) still emits its task, at exit:
# it was one run (a failed one, if it crashed before its first call), with zero calls and
# zero cost, as under `otel-tokens run`.
_environment_task: ScopeManager | None = None
_environment_pid = 0


class _LateSpan(trace.NonRecordingSpan):
    """Stands in the context for the environment task's span: the parent a parent process
    passed down (or none) until the span starts, the span's ids from then on."""

    def __init__(self, before: trace.SpanContext) -> None:
        super().__init__(before)
        self.started: trace.SpanContext | None = None

    def get_span_context(self) -> trace.SpanContext:
        return self.started or super().get_span_context()


def _has_parent_task(environ: Mapping[str, str]) -> bool:
    """A parent process's task reached us (its carrier or a report directory): we are part of it."""
    if environ.get(n.ENV_REPORT_DIR):
        return True
    carried = environ.get(n.ENV_PARENT, "")
    return any(key in carried for key in (n.TASK_ID, n.TASK_NAME))


def start_environment_task(environ: Mapping[str, str] | None = None) -> ScopeManager | None:
    """At start-up: with ``OTEL_TOKENS_TASK`` set and no parent task, this process is one task
    run, as under ``otel-tokens run``. Its attribution is in the context now (for the main
    thread and every thread or child started after it); its span starts at first use
    (`otel_tokens.firstuse`), or at exit, and ends at interpreter exit before the providers
    shut down, emitting the task span and task metrics; its outcome is ``failure`` when the
    process dies of an uncaught exception."""
    global _environment_task, _environment_pid
    env = os.environ if environ is None else environ
    name = env.get(n.ENV_TASK, "").strip()
    if not name or _has_parent_task(env) or _environment_task is not None:
        return None
    manager = task(
        name,
        id=env.get(n.ENV_TASK_ID, "").strip() or None,
        size=env.get(n.ENV_TASK_SIZE, "").strip() or None,
        user=env.get(n.ENV_USER, "").strip() or None,
        team=env.get(n.ENV_TEAM, "").strip() or None,
    )
    scope = manager._open_scope(current_scope())
    late = _LateSpan(trace.get_current_span().get_span_context())
    manager.span = late
    ctx = otel_context.set_value(SCOPE_KEY, scope, trace.set_span_in_context(late))
    manager._token = otel_context.attach(ctx)
    _environment_task, _environment_pid = manager, os.getpid()
    atexit.register(_end_environment_task, _environment_pid)
    register = getattr(threading, "_register_atexit", None)  # before atexit (3.9+; as concurrent.futures)
    if register is not None:
        try:
            register(_open_before_exit)
        except RuntimeError:  # the interpreter is already shutting down
            pass
    then(_open_environment_span)
    return manager


def _open_environment_span() -> None:
    """At first use: start the environment task's span, and move its end to run before the
    exit hooks registered so far (the app's providers', ours): LIFO, they shut down after it."""
    manager = _environment_task
    if manager is None or _environment_pid != os.getpid() or not isinstance(manager.span, _LateSpan):
        return
    late, scope = manager.span, manager.scope
    if scope is None:
        return
    root = scope.parent or current_scope()
    manager._start_span(scope, span_parent(root, otel_context.Context()))
    if manager.span is late:  # the span could not start: report under the parent's ids
        manager.span = trace.NonRecordingSpan(late.get_span_context())
    late.started = manager.span.get_span_context()
    atexit.unregister(_end_environment_task)
    atexit.register(_end_environment_task, _environment_pid)


def _open_before_exit() -> None:
    """When the main thread ends (before any atexit hook): a task not started yet starts now,
    configuring providers if the app set none, so its end still runs before their shutdown."""
    if _environment_task is not None and _environment_pid == os.getpid():
        try:
            ensure_configured()
        except Exception as exc:
            internal_error("attribution.task_exit", exc)


def _end_environment_task(pid: int) -> None:
    global _environment_task
    if pid != os.getpid() or _environment_task is None:  # a forked copy, or ended or discarded
        return
    try:
        ensure_configured()  # not started yet (threading's exit hook did not run): now
    except Exception as exc:
        internal_error("attribution.task_exit", exc)
    manager, _environment_task = _environment_task, None
    error = getattr(sys, "last_value", None)
    if isinstance(error, BaseException) and not isinstance(error, (SystemExit, KeyboardInterrupt)):
        manager.set_outcome(n.OUTCOME_FAILURE)
    manager._token = None  # the context dies with the process; nothing to detach
    manager.__exit__(None, None, None)
    from otel_tokens.attribution.propagation import flush

    flush(trace.get_tracer_provider(), metrics.get_meter_provider(), where="attribution.task_exit")


def discard_environment_task() -> None:
    """Forget the environment task without emitting it (``otel-tokens run`` opens its own)."""
    global _environment_task
    manager, _environment_task = _environment_task, None
    atexit.unregister(_end_environment_task)
    if manager is not None and manager._token is not None:
        otel_context.detach(manager._token)
        manager._token = None
