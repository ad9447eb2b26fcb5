"""Attribution context: who, which task, which agent, which CI run.

The recorder depends only on this contract:

* ``current_scope() -> Scope``: the innermost task/agent scope (kept in the OpenTelemetry
  context under `SCOPE_KEY`, so whatever carries OTel context carries it), or the
  process-wide root scope built from the environment (``OTEL_TOKENS_*`` variables and the
  ``OTEL_TOKENS_PARENT`` carrier a parent process passed down; never W3C baggage).
* ``Scope.span_attributes``: attributes for every LLM span inside the scope (fixed).
* ``Scope.metric_attributes``: the bounded subset allowed on metrics (fixed; no ids; each
  value passed through `bounded`).
* ``Scope.next_iteration() -> int``: the 1-based index of the next LLM call in the scope.
* ``Scope.add_call(record, cost)``: roll a finished call up into this scope and all its
  parents. ``cost`` is a `Decimal` (exact) or float USD, ``None`` when unpriced; the
  call's retries are read from ``record.retries``.
* ``Scope.is_repeat(fingerprint) -> bool``: whether an identical request was seen before
  in this scope (bounded memory); a repeat is counted in the rollup.

Rollups are exact: costs are summed as `Decimal`, so a task's ``otel_tokens.task.cost``
equals the sum of its calls' costs, not a float accumulation of them.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
import shutil
import tempfile
import threading
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otel_tokens import names as n
from otel_tokens.attribution import ci
from otel_tokens.attribution.cardinality import (
    DEFAULT_MAX_ATTR_VALUES,
    bounded,
    max_attr_values,
    reset_bounds,
)
from otel_tokens.record import CallRecord

AttrValue = str | int | float | bool

logger = logging.getLogger("otel_tokens")

SCOPE_KEY = otel_context.create_key("otel_tokens.scope")

# Attributes that cross to child processes we start, in OTEL_TOKENS_PARENT (ids included:
# it is not a metric). Never in baggage, so never in outbound HTTP. Only `METRIC_KEYS` may
# reach metrics.
CARRIED_KEYS: tuple[str, ...] = (n.TASK_NAME, n.TASK_ID, n.TASK_SIZE, n.USER_ID, n.TEAM)
METRIC_KEYS: tuple[str, ...] = (
    n.TASK_NAME,
    n.TASK_SIZE,
    n.USER_ID,
    n.TEAM,
    n.GEN_AI_AGENT_NAME,
    *ci.METRIC_KEYS,
)
_ENV_ATTRS: tuple[tuple[str, str], ...] = (
    (n.ENV_TASK, n.TASK_NAME),
    (n.ENV_TASK_ID, n.TASK_ID),
    (n.ENV_TASK_SIZE, n.TASK_SIZE),
    (n.ENV_USER, n.USER_ID),
    (n.ENV_TEAM, n.TEAM),
)
REPEAT_MEMORY = 4096  # fingerprints remembered per scope
__all__ = ["DEFAULT_MAX_ATTR_VALUES", "Scope", "Totals", "bounded", "current_scope", "max_attr_values"]


# --- rollup -------------------------------------------------------------------------------
@dataclass(slots=True)
class Totals:
    """What the calls inside a scope consumed; `cost` is exact (`Decimal` USD)."""

    cost: Decimal = Decimal(0)
    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    retries: int = 0
    unpriced_calls: int = 0
    loop_repeats: int = 0

    def add(self, other: Totals) -> None:
        for name in _TOTALS_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def is_empty(self) -> bool:
        return self == Totals()

    def span_attributes(self) -> dict[str, AttrValue]:
        return {
            n.TASK_COST: float(self.cost),
            n.TASK_LLM_CALLS: self.llm_calls,
            n.TASK_INPUT_TOKENS: self.input_tokens,
            n.TASK_OUTPUT_TOKENS: self.output_tokens,
            n.TASK_CACHE_READ_TOKENS: self.cache_read_tokens,
            n.TASK_CACHE_WRITE_TOKENS: self.cache_write_tokens,
            n.TASK_REASONING_TOKENS: self.reasoning_tokens,
            n.TASK_RETRIES: self.retries,
            n.TASK_UNPRICED_CALLS: self.unpriced_calls,
            n.TASK_LOOP_REPEATS: self.loop_repeats,
        }

    def to_json(self) -> str:
        data = asdict(self)
        data["cost"] = str(self.cost)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Totals:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        totals = cls(cost=Decimal(str(data.get("cost", "0"))))
        for f in fields(cls):
            if f.name != "cost" and f.name in data:
                value = data[f.name]
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"{f.name} must be a non-negative integer, got {value!r}")
                setattr(totals, f.name, value)
        return totals


_TOTALS_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Totals))


def _as_decimal(cost: Decimal | float | None) -> Decimal:
    if cost is None:
        return Decimal(0)
    if isinstance(cost, Decimal):
        return cost
    return Decimal(repr(float(cost)))  # the shortest decimal that round-trips the float


# --- pseudonymised user ids ----------------------------------------------------------------
def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _key_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "otel-tokens" / "user-hash-key"


@functools.cache
def _hash_key() -> bytes:
    configured = os.environ.get(n.ENV_USER_HASH_KEY)
    if configured:
        return configured.encode()
    path = _key_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            key = path.read_text().strip()
            if key:
                return key.encode()
            raise OSError(f"{path} is empty") from None
        with os.fdopen(fd, "w") as f:
            key = secrets.token_hex(32)
            f.write(key + "\n")
        return key.encode()
    except OSError as exc:
        logger.warning(
            "otel-tokens: cannot read or create the user hash key %s (%s); user ids are hashed with "
            "a key for this process only. Set %s to a secret shared by your team.",
            path,
            exc,
            n.ENV_USER_HASH_KEY,
        )
        return secrets.token_bytes(32)


def _looks_pseudonymised(user: str) -> bool:
    return len(user) == 18 and user.startswith("u_") and all(c in "0123456789abcdef" for c in user[2:])


def pseudonymise_user(user: str) -> str:
    """``user`` as is, or ``u_<16 hex>`` (HMAC-SHA256) when OTEL_TOKENS_HASH_USER_IDS is on.

    Idempotent: a value that is already a pseudonym (e.g. passed down by a parent process) is kept.
    """
    if not _truthy(os.environ.get(n.ENV_HASH_USER_IDS)) or _looks_pseudonymised(user):
        return user
    return "u_" + hmac.new(_hash_key(), user.encode(), hashlib.sha256).hexdigest()[:16]


# --- scopes --------------------------------------------------------------------------------
_live: weakref.WeakSet[Scope] = weakref.WeakSet()  # for the fork hook below


class Scope:
    """One attribution scope: the process root, a task, an agent, or a remote continuation."""

    def __init__(
        self,
        span_attrs: Mapping[str, AttrValue],
        metric_attrs: Mapping[str, AttrValue] | None = None,
        *,
        kind: str = "root",
        name: str | None = None,
        parent: Scope | None = None,
        report_dir: str | None = None,
    ) -> None:
        if metric_attrs is None:
            metric_attrs = bounded({k: span_attrs[k] for k in METRIC_KEYS if k in span_attrs})
        self.span_attributes: Mapping[str, AttrValue] = MappingProxyType(dict(span_attrs))
        self.metric_attributes: Mapping[str, AttrValue] = MappingProxyType(dict(metric_attrs))
        # hashable and fixed: the recorder keys its per-call-shape metric attributes by it
        self.metric_key: tuple[tuple[str, AttrValue], ...] = tuple(self.metric_attributes.items())
        self.kind = kind
        self.name = name
        self.parent = parent
        self.report_dir = report_dir  # where this scope reports its totals at its end
        # the scope's span (ids only, never the span): the parent of spans started in the
        # scope where no span is current, e.g. in a thread or pool worker it was handed to
        self.span_context: trace.SpanContext | None = None
        self.ended = False  # set when a task/agent scope has reported its rollup
        self._lock = threading.Lock()
        self._iterations = 0
        self._seen: dict[int, None] = {}
        self._totals = Totals()
        self._children_dir: str | None = None
        _live.add(self)

    def __repr__(self) -> str:
        return f"<Scope {self.kind} {self.name!r}>"

    def _after_fork(self) -> None:
        self._lock = threading.Lock()  # another thread of the parent may have held it

    def child(
        self, kind: str, name: str, attrs: Mapping[str, AttrValue | None], *, drop: tuple[str, ...] = ()
    ) -> Scope:
        """A nested scope: this scope's attributes less `drop`, overridden by the non-None `attrs`."""
        span = {k: v for k, v in self.span_attributes.items() if k not in drop}
        span.update({k: v for k, v in attrs.items() if v is not None})
        return Scope(span, kind=kind, name=name, parent=self)

    def next_iteration(self) -> int:
        with self._lock:
            self._iterations += 1
            return self._iterations

    def is_repeat(self, fingerprint: int) -> bool:
        with self._lock:
            if fingerprint not in self._seen:
                self._seen[fingerprint] = None
                if len(self._seen) > REPEAT_MEMORY:
                    del self._seen[next(iter(self._seen))]
                return False
        self.add_totals(Totals(loop_repeats=1))
        return True

    def add_call(self, record: CallRecord, cost: Decimal | float | None) -> None:
        """Add one call to this scope and every scope it is nested in (no `Totals` built)."""
        u = record.usage
        amount = _as_decimal(cost)
        unpriced = 1 if cost is None else 0
        scope: Scope | None = self
        while scope is not None:
            with scope._lock:
                t = scope._totals
                t.cost += amount
                t.llm_calls += 1
                t.input_tokens += u.input_tokens
                t.output_tokens += u.output_tokens
                t.cache_read_tokens += u.cache_read_tokens
                t.cache_write_tokens += u.cache_write_tokens
                t.reasoning_tokens += u.reasoning_tokens
                t.retries += record.retries
                t.unpriced_calls += unpriced
            scope = scope.parent

    def add_totals(self, totals: Totals) -> None:
        """Add `totals` to this scope and every scope it is nested in."""
        scope: Scope | None = self
        while scope is not None:
            with scope._lock:
                scope._totals.add(totals)
            scope = scope.parent

    def totals(self) -> Totals:
        """A snapshot of this scope's rollup so far."""
        with self._lock:
            snapshot = Totals()
            snapshot.add(self._totals)
            return snapshot

    # -- child processes report back through files in a per-scope directory --------------
    def children_report_dir(self) -> str:
        """The directory child processes started inside this scope write their totals to."""
        with self._lock:
            if self._children_dir is None:
                self._children_dir = tempfile.mkdtemp(prefix="otel-tokens-")
            return self._children_dir

    def collect_child_reports(self) -> None:
        """Roll up what child processes reported, then remove their directory."""
        with self._lock:
            directory, self._children_dir = self._children_dir, None
        if directory is None:
            return
        for path in sorted(Path(directory).glob("*.json")):
            try:
                self.add_totals(Totals.from_json(path.read_text()))
            except (OSError, ValueError, ArithmeticError) as exc:
                logger.warning("otel-tokens: ignoring child report %s: %s", path, exc)
        shutil.rmtree(directory, ignore_errors=True)

    def report_to_parent_process(self, *, reset: bool = False) -> None:
        """Write this scope's totals where the parent process collects them, if it asked.

        `reset` (before ``os.exec*``) zeroes them afterwards, so they are reported once.
        """
        self.collect_child_reports()
        with self._lock:
            totals = Totals()
            totals.add(self._totals)
            if reset:
                self._totals = Totals()
        if self.report_dir is None or totals.is_empty():
            return
        path = Path(self.report_dir) / f"{os.getpid()}-{uuid.uuid4().hex}.json"
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_text(totals.to_json())
            os.replace(tmp, path)
        except OSError as exc:  # the parent's scope has ended: nobody is listening any more
            logger.debug("otel-tokens: cannot report totals to %s: %s", self.report_dir, exc)


def span_parent(scope: Scope, ctx: otel_context.Context | None = None) -> otel_context.Context | None:
    """`ctx` (default: the current context) with the scope's span as the current span when
    no span is current there; None when nothing needs to change."""
    if scope.span_context is None or trace.get_current_span(ctx).get_span_context().is_valid:
        return ctx
    return trace.set_span_in_context(trace.NonRecordingSpan(scope.span_context), ctx)


def parent_carrier(scope: Scope) -> str | None:
    """The ``OTEL_TOKENS_PARENT`` value for a child process started inside `scope`."""
    carried = {k: str(scope.span_attributes[k]) for k in CARRIED_KEYS if k in scope.span_attributes}
    return json.dumps(carried, separators=(",", ":"), ensure_ascii=False) if carried else None


_warned_parent = False


def _parent_values(text: str | None) -> dict[str, str]:
    global _warned_parent
    if not text:
        return {}
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise ValueError("not a JSON object of strings")
    except ValueError as exc:
        if not _warned_parent:
            _warned_parent = True
            logger.warning(
                "otel-tokens: ignoring %s (%s); it is set by otel-tokens for the processes it starts, "
                'unset it or set it to a JSON object such as {"%s": "triage"}',
                n.ENV_PARENT,
                exc,
                n.TASK_NAME,
            )
        return {}
    return {k: v for k, v in data.items() if k in CARRIED_KEYS}


def scope_from_environ(environ: Mapping[str, str], *, kind: str = "root") -> Scope:
    """A parentless scope from ``OTEL_TOKENS_*`` variables and the ``OTEL_TOKENS_PARENT`` carrier.

    The carrier (what a parent process's task passed down) wins over the plain variables.
    """
    from_parent = _parent_values(environ.get(n.ENV_PARENT))
    attrs: dict[str, AttrValue] = dict(ci.attributes() if environ is os.environ else ci.detect(environ))
    for env, attr in _ENV_ATTRS:
        value = from_parent.get(attr) or environ.get(env, "").strip()
        if value:
            attrs[attr] = pseudonymise_user(value) if attr == n.USER_ID else value
    name = attrs.get(n.TASK_NAME)
    scope = Scope(
        attrs,
        kind=kind,
        name=str(name) if name is not None else None,
        report_dir=environ.get(n.ENV_REPORT_DIR) or None,
    )
    if environ.get(n.ENV_TRACEPARENT):
        headers = {"traceparent": environ[n.ENV_TRACEPARENT], "tracestate": environ.get(n.ENV_TRACESTATE, "")}
        ctx = TraceContextTextMapPropagator().extract(headers, context=otel_context.Context())
        span_context = trace.get_current_span(ctx).get_span_context()
        scope.span_context = span_context if span_context.is_valid else None
    return scope


_root: Scope | None = None
_root_pid = 0
_root_lock = threading.Lock()


def _report_root() -> None:
    root = _root
    if root is not None and _root_pid == os.getpid():  # not in a forked copy of the process
        root.report_to_parent_process()


atexit.register(_report_root)


def root_scope() -> Scope:
    """The process-wide scope: everything recorded in this process rolls up into it."""
    global _root, _root_pid
    root = _root
    if root is None:  # a forked child starts again from None (`_after_fork_in_child`): no
        with _root_lock:  # getpid() per call
            if _root is None:
                _root, _root_pid = scope_from_environ(os.environ), os.getpid()
            root = _root
    return root


def _after_fork_in_child() -> None:
    """A forked child (a gunicorn worker, a fork-started pool worker) starts its own root
    scope from zero (the parent's totals are the parent's to report) and gets fresh locks."""
    global _root, _root_lock
    _root_lock = threading.Lock()
    _root = None
    for scope in list(_live):
        scope._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def current_scope() -> Scope:
    """The innermost open task/agent scope in the current OpenTelemetry context, else the root.

    A scope that has ended (a thread started inside it outlived it) hands over to its
    nearest open parent: its totals were already reported.
    """
    scope = otel_context.get_value(SCOPE_KEY)
    while isinstance(scope, Scope):
        if not scope.ended:
            return scope
        scope = scope.parent
    return root_scope()


def reset_for_tests(environ: Mapping[str, str] | None = None) -> None:
    """Forget the root scope (rebuilt from `environ` if given, else lazily from os.environ)."""
    global _root, _root_pid
    with _root_lock:
        _root = scope_from_environ(environ) if environ is not None else None
        _root_pid = os.getpid()
    reset_bounds()
    _hash_key.cache_clear()
