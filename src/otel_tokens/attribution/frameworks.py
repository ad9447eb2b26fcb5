"""Agent frameworks' own spans as attribution scopes.

A framework that marks its agent runs and tool calls with spans of the GenAI conventions
(``gen_ai.operation.name`` = ``invoke_agent`` / ``execute_tool``: pydantic-ai, the OpenAI
Agents SDK through its OpenTelemetry instrumentation, ...) gets, for each such span, a `Scope`
of ours: LLM calls under it take it as their agent scope (``otel_tokens.agent.iteration``,
repeat detection, ``gen_ai.agent.name``) and its rollup (cost, tokens, call count, as our own
task and agent spans carry it) is set on the framework's span just before it ends.

`FrameworkScopes` is a span processor added to the SDK tracer provider we instrument with. It
remembers each open span's parent (ids only, and only while a framework span is open: a
walk stops at the first one) so a call can find the nearest framework span
above it whatever spans lie between (a framework's own ``chat`` span, an HTTP span). Only our
own scope may be nearer: a `task()`/`agent()` opened inside the framework's span wins.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor

from otel_tokens import deferred
from otel_tokens import names as n
from otel_tokens.attribution.context import Scope, current_scope
from otel_tokens.guard import internal_error

_KINDS = {n.OP_INVOKE_AGENT: "agent", "execute_tool": "tool"}
_MAX_DEPTH = 64
_MAX_OPEN = 100_000


class FrameworkScopes(SpanProcessor):
    """Tracks open spans' parents and a `Scope` per open framework agent/tool span."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._parents: dict[int, int] = {}
        self._scopes: dict[int, Scope] = {}

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        try:
            parent = span.parent
            # a walk up from a span stops at the first framework scope, so a span's parent
            # is only worth keeping while one is open (a later one would be below it)
            if parent is not None and self._scopes:
                with self._lock:
                    if len(self._parents) < _MAX_OPEN:
                        self._parents[span.get_span_context().span_id] = parent.span_id
            if _ours(span):  # our own spans are never framework scopes
                return
            sid = span.get_span_context().span_id
            attrs = span.attributes or {}
            op = attrs.get(n.GEN_AI_OPERATION_NAME) or str(span.name).split(" ", 1)[0]
            kind = _KINDS.get(str(op))
            if kind is None:
                return
            outer = self._nearest(parent.span_id if parent is not None else None) or current_scope()
            name = _name(span, kind, attrs)
            child_attrs = {n.GEN_AI_AGENT_NAME: name} if kind == "agent" else {}
            scope = outer.child("agent", name, child_attrs)
            scope.span_context = span.get_span_context()
            with self._lock:
                self._scopes[sid] = scope
            _roll_up_at_end(span, scope)
        except Exception as exc:
            internal_error("framework span start", exc)

    def on_end(self, span: Any) -> None:
        if not self._scopes and not self._parents:  # nothing kept: nothing to forget
            return
        sid = span.get_span_context().span_id
        with self._lock:
            self._parents.pop(sid, None)
            scope = self._scopes.pop(sid, None)
        if scope is not None:
            scope.ended = True

    def _nearest(self, span_id: int | None, stop: int | None = None) -> Scope | None:
        with self._lock:
            for _ in range(_MAX_DEPTH):
                if span_id is None or span_id == stop:
                    return None
                scope = self._scopes.get(span_id)
                if scope is not None:
                    return scope
                span_id = self._parents.get(span_id)
        return None

    def scope_for(self, ours: Scope) -> Scope:
        """The scope of a call starting now: the nearest framework scope above the current
        span, unless our own scope's span is nearer."""
        if not self._scopes:  # no framework span is open: the common case, and cheap
            return ours
        current = trace.get_current_span().get_span_context()
        if not current.is_valid:
            return ours
        stop = ours.span_context.span_id if ours.span_context is not None else None
        return self._nearest(current.span_id, stop) or ours

    def shutdown(self) -> None:
        with self._lock:
            self._parents.clear()
            self._scopes.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _ours(span: Any) -> bool:
    scope = span.instrumentation_scope
    return scope is not None and scope.name == n.SCOPE


def _name(span: Any, kind: str, attrs: Any) -> str:
    """The agent's (tool's) name: the span name's ``invoke_agent NAME`` part first (some
    instrumentations set a placeholder ``gen_ai.agent.name`` at start), then the attribute."""
    head, _, tail = str(span.name).partition(" ")
    if head in _KINDS and tail.strip():
        return tail.strip()
    value = attrs.get(n.GEN_AI_AGENT_NAME) if kind == "agent" else attrs.get("gen_ai.tool.name")
    return str(value) if value is not None else kind


def _roll_up_at_end(span: Any, scope: Scope) -> None:
    """Set the rollup on the framework's span just before it ends (an ended span is read-only)."""
    original_end = span.end

    def end(end_time: int | None = None) -> None:
        try:
            deferred.drain()  # streams collected inside the scope roll up before it reports
            totals = scope.totals()
            if totals.llm_calls:
                span.set_attributes(totals.span_attributes())
        except Exception as exc:
            internal_error("framework span rollup", exc)
        original_end(end_time)

    span.end = end


_watching: list[FrameworkScopes] = []


def watch(tracer_provider: Any) -> None:
    """Add the processor to an SDK tracer provider once (others have no processors)."""
    if not hasattr(tracer_provider, "add_span_processor"):
        return
    if getattr(tracer_provider, "_otel_tokens_frameworks", None) is not None:
        return
    processor = FrameworkScopes()
    tracer_provider.add_span_processor(processor)
    tracer_provider._otel_tokens_frameworks = processor
    _watching.append(processor)
    del _watching[:-8]  # the providers of the latest instrument() calls


def scope_for(ours: Scope) -> Scope:
    for processor in reversed(_watching):
        scope = processor.scope_for(ours)
        if scope is not ours:
            return scope
    return ours
